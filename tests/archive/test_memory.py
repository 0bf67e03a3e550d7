"""The server's memory tools (issue 13 soak): glibc trimming gives held free pages back, and the
tracemalloc diagnostic writes snapshots that `python -m archive.memtrace` compares."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from archive import allocator, memtrace

glibc = pytest.mark.skipif(not allocator.is_glibc(), reason="glibc malloc only")


@glibc
def test_trim_returns_the_free_pages_malloc_keeps() -> None:
    """What the soak measured: memory freed by a thread stays in its arena (RSS does not go
    down) while a few live chunks pin its heap; malloc_trim hands the free pages back."""
    kept: list[bytes] = []

    def churn() -> None:
        blocks = [bytes(4000) for _ in range(40_000)]  # ~160 MB, above pymalloc's 512 B
        kept.extend(blocks[::64])  # one live block every 256 KB pins the heap
        del blocks

    allocator.trim()
    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    held = memtrace.rss_bytes()
    info = memtrace.malloc_info()
    assert info is not None and info["free"] > 100 * 2**20, info  # freed, yet kept by malloc
    assert allocator.trim()
    released = held - memtrace.rss_bytes()
    assert released > 80 * 2**20, f"trim released only {released / 2**20:.0f} MB"
    assert len(kept) == 625


@glibc
def test_tuned_trims_periodically_and_stops() -> None:
    async def run() -> None:
        async with allocator.tuned(arena_max=2, trim_seconds=0.05):
            names = {t.get_name() for t in asyncio.all_tasks()}
            assert "malloc-trim" in names
            await asyncio.sleep(0.2)  # a few trims run in a thread, the loop stays responsive
        assert "malloc-trim" not in {t.get_name() for t in asyncio.all_tasks()}

    asyncio.run(run())


def test_memtrace_writes_snapshots_and_compares_them(tmp_path: Path) -> None:
    def written() -> int:
        lines = tmp_path / "memtrace.jsonl"
        return len(lines.read_text().splitlines()) if lines.exists() else 0

    async def run() -> None:
        hoard: list[bytes] = []
        async with memtrace.tracing(tmp_path, every=0.1):
            for _ in range(4):  # grow, then wait for the next snapshot (however slow the box)
                hoard += [bytes(1000 + i) for i in range(2000)]
                seen = written()
                for _ in range(400):
                    if written() > seen:
                        break
                    await asyncio.sleep(0.05)
        assert len(hoard) == 8000

    asyncio.run(run())
    rows = [json.loads(line) for line in (tmp_path / "memtrace.jsonl").read_text().splitlines()]
    assert len(rows) >= 4
    assert all(r["rss"] > 0 and r["gc_objects"] > 0 for r in rows)
    assert rows[-1]["traced"] > rows[0]["traced"] + 4 * 2**20  # the hoard, traced
    assert len(list(tmp_path.glob("snapshot-*.tracemalloc"))) == len(rows)
    report = subprocess.run([sys.executable, "-m", "archive.memtrace", str(tmp_path)],
                            capture_output=True, text=True, check=True).stdout
    assert "RSS MB" in report and "KiB traced" in report
    assert "test_memory.py" in report  # the growth is pinned on the line that allocated it


def test_memtrace_is_off_by_default() -> None:
    from archive.config import Settings

    assert Settings().memtrace_dir is None

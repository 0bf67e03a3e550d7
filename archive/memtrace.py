"""Memory diagnostics of a running server (off by default): where does RSS go?

With `ARCHIVE_MEMTRACE_DIR` set, `archive serve` starts `tracemalloc` and every
`ARCHIVE_MEMTRACE_EVERY_SECONDS` writes a snapshot (`snapshot-NNN.tracemalloc`) and one line of
`memtrace.jsonl`: resident size, what tracemalloc traces (memory Python allocated), glibc's
`mallinfo2()` (bytes malloc hands out vs. holds free in its arenas) and the number of objects the
garbage collector tracks. Comparing the lines tells Python-object growth (traced and in-use grow)
from allocator growth (RSS and malloc's free bytes grow, traced does not); comparing two
snapshots names the lines of code that allocated what stayed. (Once `malloc_trim` runs —
archive.allocator — the pages it gave back still count in malloc's "free": then RSS is the
measure, not that column.)

    python -m archive.memtrace DIR              # the lines, then the top growth 2nd → last
    python -m archive.memtrace DIR 3 9          # snapshot 3 → snapshot 9

tracemalloc is the standard library's allocation tracer: no extra dependency, it runs inside the
server as it is deployed, and its snapshots diff by traceback — what a leak hunt needs. It
slows allocation noticeably, so it is a diagnostic for a soak or a staging box, never a default.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from archive.allocator import LIBC

log = logging.getLogger("archive.memtrace")
FRAMES = 12  # traceback depth kept per allocation: enough to reach our code through libraries


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def malloc_info() -> dict[str, int] | None:
    """glibc's view of the C heap (all arenas): `in_use` bytes handed out, `free` bytes it keeps
    in its arenas, `mmapped` large blocks. None on another C library."""
    fn = getattr(LIBC, "mallinfo2", None)
    if fn is None:
        return None
    fn.restype = _MallInfo2
    m = fn()
    return {"arena": m.arena, "in_use": m.uordblks, "free": m.fordblks, "mmapped": m.hblkhd}


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    import resource
    return pages * resource.getpagesize()


def sample(n: int) -> dict[str, Any]:
    traced, peak = tracemalloc.get_traced_memory()
    return {"n": n, "time": time.time(), "rss": rss_bytes(), "traced": traced,
            "traced_peak": peak, "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
            "malloc": malloc_info(), "gc_objects": len(gc.get_objects())}


def write(directory: Path, n: int) -> dict[str, Any]:
    """One snapshot and one line (blocking: run it in a thread)."""
    tracemalloc.take_snapshot().dump(str(directory / f"snapshot-{n:03d}.tracemalloc"))
    row = sample(n)
    with (directory / "memtrace.jsonl").open("a") as fp:
        fp.write(json.dumps(row) + "\n")
    return row


@contextlib.asynccontextmanager
async def tracing(directory: Path | None, every: float) -> AsyncIterator[None]:
    """Snapshots every `every` seconds into `directory` for the block's life (None: nothing)."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(FRAMES)
    log.warning("tracemalloc on: snapshots every %.0f s in %s (slower; a diagnostic)",
                every, directory)

    stop = asyncio.Event()

    async def loop() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await asyncio.to_thread(write, directory, n)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    task = asyncio.create_task(loop(), name="memtrace")
    try:
        yield
    finally:
        stop.set()  # a snapshot being written is finished, not cut off (it runs in a thread)
        await task
        tracemalloc.stop()


def compare(directory: Path, first: int | None = None, last: int | None = None,
            top: int = 25) -> str:
    """The lines of memtrace.jsonl, then the `top` allocation sites that grew the most between
    two snapshots (default: the second — after start-up — and the last)."""
    rows = [json.loads(line) for line in (directory / "memtrace.jsonl").read_text().splitlines()]
    out = ["  n  minutes   RSS MB  traced MB  malloc in use MB  malloc free MB  gc objects"]
    for r in rows:
        m = r.get("malloc") or {}
        out.append(f"{r['n']:3d} {(r['time'] - rows[0]['time']) / 60:8.1f} "
                   f"{r['rss'] / 2**20:8.1f} {r['traced'] / 2**20:10.1f} "
                   f"{m.get('in_use', 0) / 2**20:17.1f} {m.get('free', 0) / 2**20:15.1f} "
                   f"{r['gc_objects']:11d}")
    snaps = sorted(directory.glob("snapshot-*.tracemalloc"))
    if len(snaps) < 2:
        return "\n".join(out)
    a = directory / f"snapshot-{first:03d}.tracemalloc" if first else snaps[min(1, len(snaps) - 2)]
    b = directory / f"snapshot-{last:03d}.tracemalloc" if last else snaps[-1]
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    stats = tracemalloc.Snapshot.load(str(b)).filter_traces(ignore).compare_to(
        tracemalloc.Snapshot.load(str(a)).filter_traces(ignore), "traceback")
    out += ["", f"{a.name} → {b.name}: {sum(s.size_diff for s in stats) / 1024:+.0f} KiB traced"]
    for s in stats[:top]:
        out.append(f"{s.size_diff / 1024:+9.1f} KiB {s.count_diff:+7d} blocks "
                   f"(now {s.size / 1024:.1f} KiB)")
        out += [f"      {line}" for line in s.traceback.format(most_recent_first=True)[:12]]
    return "\n".join(out)


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        raise SystemExit(2)
    nums = [int(x) for x in args[1:3]]
    print(compare(Path(args[0]), *nums))

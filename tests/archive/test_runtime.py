"""archive.runtime.open_core: the one start-up of every command (serve, import, db, commons)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from archive.runtime import open_core
from tests.conftest import make_settings


def test_only_a_runtime_alone_on_its_data_dir_sweeps(tmp_path: Path, database_url: str) -> None:
    """`archive import` beside a running server must not delete the server's spool files;
    a runtime that starts alone clears leftovers of interrupted uploads."""
    settings = make_settings(tmp_path, database_url)

    async def go() -> None:
        async with open_core(settings) as first:
            stray = first.blobs.spool_dir() / "interrupted.part"
            stray.write_bytes(b"half an upload")
            async with open_core(settings, pool_size=1) as second:
                assert second.engine is not first.engine
                assert stray.exists()  # the first runtime is running: nothing swept
        assert stray.exists()
        async with open_core(settings, pool_size=1):
            assert not stray.exists()  # alone: the leftover is swept

    asyncio.run(go())


def test_the_runtime_owns_and_closes_its_worker_pools(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)

    async def go() -> None:
        async with open_core(settings, pool_size=1) as core:
            assert core.workers is not None
            pool = core.workers.parse.get()
            assert pool is not None
            assert await asyncio.get_running_loop().run_in_executor(pool, abs, -3) == 3
        assert core.workers.parse._pool is None  # closed with the runtime

    asyncio.run(go())

"""Worker process pools for CPU-heavy pydicom and codec work (header parsing, transcoding).

Such work in a thread would hold the event loop's GIL for tens of milliseconds; in `spawn`ed
processes it runs beside it. The pools are process-wide (like the default thread pool): every
archive started in one process shares them, which keeps many in-process servers (tests) cheap.
Workers watch their parent and exit with it, even after kill -9, so no orphans are left.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def _exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def process_pool(size: int) -> ProcessPoolExecutor:
    """A pool of `size` spawned workers that exit when this process does; OSError/ValueError
    where the platform cannot start processes (callers then fall back to threads)."""
    return ProcessPoolExecutor(
        max_workers=size,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )

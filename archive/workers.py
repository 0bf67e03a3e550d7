"""Worker process pools for CPU-heavy pydicom and codec work (header parsing, transcoding).

Such work in a thread would hold the event loop's GIL for tens of milliseconds; in `spawn`ed
processes it runs beside it. The pools belong to the runtime that opened them
(`archive.runtime.open_core`), not to the process: a caller that runs many archives in one
process (the test suite) hands one `Workers` to each of them, so cold spawns are paid once.
Workers watch their parent and exit with it, even after kill -9, so no orphans are left.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

log = logging.getLogger("archive.workers")
DEFAULT_SIZE = max(1, min(4, os.cpu_count() or 1))


def _init_worker(parent: int, warm: Callable[[], object] | None) -> None:
    """A new worker: exit with the parent; then `warm` (imports, first-use caches) before its
    first job, so that no job pays them."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    if warm is not None:
        try:
            warm()
        except Exception:  # a cold first job is slower, not wrong
            log.exception("warming a worker failed")


def process_pool(size: int, warm: Callable[[], object] | None = None) -> ProcessPoolExecutor:
    """A pool of `size` spawned workers that exit when this process does, each running `warm`
    when it starts; OSError/ValueError where the platform cannot start processes (callers then
    fall back to threads)."""
    return ProcessPoolExecutor(
        max_workers=size,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(), warm),
    )


class WorkerPool:
    """One named pool, started on first use and replaced when a worker dies.

    `get()` is None where the platform cannot start processes: callers then use threads."""

    def __init__(self, name: str, size: int = DEFAULT_SIZE,
                 warm: Callable[[], object] | None = None) -> None:
        self.name, self.size, self.warm = name, size, warm
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  # several archives' loops may share one WorkerPool

    def get(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._pool is None:
                try:
                    self._pool = process_pool(self.size, self.warm)
                except (OSError, ValueError) as exc:  # no process support
                    log.warning("no %s worker processes (%s); using threads", self.name, exc)
            return self._pool

    def start(self) -> None:
        """Spawn the workers now (at start-up) rather than on the first job: a cold spawn costs
        seconds on a busy machine. Each worker runs `warm` as it starts (`process_pool`)."""
        pool = self.get()
        if pool is not None:
            for _ in range(self.size):
                pool.submit(os.getpid)

    def broken(self, pool: ProcessPoolExecutor) -> None:
        """A worker of `pool` died (killed, or a codec crashed): the next job gets a fresh pool."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class Workers:
    """The runtime's pools: instance-header parsing (ingest) and transcoding (retrieve)."""

    parse: WorkerPool
    transcode: WorkerPool

    def start(self) -> None:
        self.parse.start()
        self.transcode.start()

    def close(self) -> None:
        self.parse.close()
        self.transcode.close()


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a parse worker hands back for ingest: the instance's facts without their (large)
    header, and the header already encoded as the JSON the index stores.

    Pickling one string instead of the header's nested dicts, and encoding it here, beside the
    event loop, takes both costs off the server's main process (profile: docs/performance.md)."""

    facts: Any  # archive.instance.InstanceFacts with header={}
    header_json: str


def warm_parse() -> None:
    """Load what `parse_for_index` needs (archive.instance, pydicom's readers, dictionaries and
    JSON conversion) by parsing a small instance once: measured, a cold parse worker spent
    ~0.4 s of CPU importing on its first instances, inside the ingest being measured."""
    import tempfile

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5.6.7"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4.5", "1.2.3.4.5.6"
    ds.PatientName, ds.StudyDate, ds.StudyTime, ds.Modality = "Warm^Up", "20000101", "1200", "OT"
    ds.Rows = ds.Columns = 1
    ds.BitsAllocated, ds.PixelData = 8, b"\0\0"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    with tempfile.NamedTemporaryFile(suffix=".dcm") as f:
        ds.save_as(f.name, enforce_file_format=True)
        parse_for_index(Path(f.name), os.path.getsize(f.name))


def parse_for_index(path: Path, size: int) -> Parsed:
    """Parse and validate one spooled instance (`archive.instance.read_instance`) in a worker."""
    from archive.instance import read_instance

    facts = read_instance(path, size)
    header = facts.header_json
    if header is None:
        header = json.dumps(facts.header, separators=(",", ":"), ensure_ascii=False)
    return Parsed(replace(facts, header={}, header_json=None), header)

"""Filesystem blob store: spool → fsync → rename → fsync directory.

Spool files live on the same filesystem as blobs, so committing is a rename, never a copy, and a
crash leaves either no blob or a whole one. Blob paths are `blobs/ab/cd/<uuid hex>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from storage.base import Spooled

_KEY = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20


class SpoolLimitExceeded(Exception):
    """More bytes arrived than the caller allowed."""


class NoSpace(Exception):
    """The filesystem is full."""


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._spool = self.root / "spool"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._spool.mkdir(parents=True, exist_ok=True)

    def spool_dir(self) -> Path:
        return self._spool

    def _new_spool_path(self) -> Path:
        return self._spool / f"{uuid.uuid4().hex}.part"

    async def spool_stream(self, chunks: AsyncIterator[bytes], limit: int) -> Spooled:
        """Write an async byte stream to a spool file, hashing as it goes; removed on any failure."""
        path = self._new_spool_path()
        digest = hashlib.sha256()
        size = 0
        loop = asyncio.get_running_loop()
        f = open(path, "wb")  # noqa: SIM115 - closed in finally
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise SpoolLimitExceeded(f"instance larger than {limit} bytes")
                digest.update(chunk)
                if len(chunk) > 256 * 1024:
                    await loop.run_in_executor(None, _write, f, chunk)
                else:
                    _write(f, chunk)
        except BaseException:
            f.close()
            path.unlink(missing_ok=True)
            raise
        f.close()
        return Spooled(path, size, digest.hexdigest())

    def spool_bytes(self, data: bytes) -> Spooled:
        path = self._new_spool_path()
        try:
            with open(path, "wb") as f:
                _write(f, data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Spooled(path, len(data), hashlib.sha256(data).hexdigest())

    def spool_file(self, source: Path, limit: int) -> Spooled:
        """Copy a file into the spool (e.g. pynetdicom's temporary file), hashing it."""
        path = self._new_spool_path()
        digest = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as src, open(path, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise SpoolLimitExceeded(f"instance larger than {limit} bytes")
                    digest.update(chunk)
                    _write(dst, chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Spooled(path, size, digest.hexdigest())

    def commit(self, spooled: Spooled) -> str:
        """Make a spooled file durable under a fresh key and return the key."""
        key = uuid.uuid4().hex
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(spooled.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(spooled.path, target)
        _fsync_dir(target.parent)
        return key

    def commit_many(self, spooled: list[Spooled]) -> list[str | BaseException]:
        """Make several spooled files durable with one disk flush; a key or the error for each.

        All files are fdatasync'ed in parallel (the kernel folds concurrent flushes into one
        journal commit), then renamed, then each target directory is fsynced; a key is returned
        only once its file and directory entry are on disk.
        """
        if len(spooled) == 1:
            try:
                return [self.commit(spooled[0])]
            except Exception as exc:
                return [_classify(exc)]
        synced = list(_sync_pool().map(_fdatasync_path, [s.path for s in spooled]))
        out: list[str | BaseException] = []
        dirs: set[Path] = set()
        for s, err in zip(spooled, synced, strict=True):
            if err is not None:
                out.append(err)
                continue
            key = uuid.uuid4().hex
            target = self.path(key)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(s.path, target)
            except OSError as exc:
                out.append(_classify(exc))
                continue
            dirs.add(target.parent)
            out.append(key)
        errors = dict(zip(dirs, _sync_pool().map(_fsync_dir_safe, dirs), strict=True))
        for n, item in enumerate(out):
            if isinstance(item, str) and errors.get(self.path(item).parent) is not None:
                self.delete(item)
                out[n] = errors[self.path(item).parent]  # type: ignore[assignment]
        return out

    def discard(self, spooled: Spooled) -> None:
        spooled.path.unlink(missing_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self._blobs / key[:2] / key[2:4] / key

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def keys(self) -> Iterator[str]:
        for p in self._blobs.glob("*/*/*"):
            if _KEY.match(p.name):
                yield p.name

    def clear_spool(self) -> int:
        """Remove leftovers of interrupted uploads; only safe before serving starts."""
        n = 0
        for p in self._spool.iterdir():
            p.unlink(missing_ok=True)
            n += 1
        return n


def _write(f: object, data: bytes) -> None:
    try:
        f.write(data)  # type: ignore[attr-defined]
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise NoSpace(str(exc)) from exc
        raise


_POOL: ThreadPoolExecutor | None = None


def _sync_pool() -> ThreadPoolExecutor:
    """Threads that only wait on flushes (they hold no GIL while the disk works)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fsync")
    return _POOL


def _classify(exc: BaseException) -> BaseException:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(str(exc))
    return exc


def _fdatasync_path(path: Path) -> BaseException | None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return _classify(exc)
    return None


def _fsync_dir_safe(path: Path) -> BaseException | None:
    try:
        _fsync_dir(path)
    except OSError as exc:
        return _classify(exc)
    return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Filesystem blob store: spool → fsync → rename → fsync directory.

Spool files live on the same filesystem as blobs, so committing is a rename, never a copy, and a
crash leaves either no blob or a whole one. Blob paths are `blobs/ab/cd/<uuid hex>`; the identity
stamp is the file `STORAGE_ID` in the root. Every OSError of a write is raised as the matching
`storage.base` error; the fsync thread pool belongs to the instance and ends with `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, TypeVar

from storage.base import (
    BlobMissing,
    NoSpace,
    ReadOnly,
    Spooled,
    SpoolLimitExceeded,
    StorageError,
)

__all__ = ["FileBlobStore", "NoSpace", "SpoolLimitExceeded"]

_KEY = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20
STAMP_FILE = "STORAGE_ID"
T = TypeVar("T")


# Stored files and directories are not readable by other local users (issue 12), whatever the
# umask: files are created 0600 and directories 0700, then set explicitly (a umask only clears bits).
_FILE_MODE = 0o600
_DIR_MODE = 0o700


def _open_private(path: Path) -> BinaryIO:
    """A new file for writing, 0600 from its creation (never briefly readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                 _FILE_MODE)
    try:
        os.fchmod(fd, _FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def _mkdir_private(path: Path) -> None:
    """mkdir -p with every directory it creates (and `path` itself) at 0700."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    for p in (*missing, path):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(p, _DIR_MODE)


class FileBlobStore:
    def __init__(self, root: Path, sync_threads: int = 16) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._spool = self.root / "spool"
        _guard(lambda: _mkdir_private(self._blobs))
        _guard(lambda: _mkdir_private(self._spool))
        _guard(lambda: os.chmod(self.root, _DIR_MODE))
        self._sync_threads = sync_threads
        self._pool: ThreadPoolExecutor | None = None
        self._durable_dirs: set[Path] = set()  # blob directories whose entry is on disk
        self._dir_lock = threading.Lock()

    # -- spool -----------------------------------------------------------------------------
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
        f = _guard(lambda: _open_private(path))
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
            _guard(f.close)  # ENOSPC may surface only when the last buffer is flushed
        except BaseException:
            with contextlib.suppress(OSError):
                f.close()
            _unlink_quietly(path)
            raise
        return Spooled(path, size, digest.hexdigest())

    def spool_bytes(self, data: bytes) -> Spooled:
        path = self._new_spool_path()
        try:
            with _guard(lambda: _open_private(path)) as f:
                _write(f, data)
        except BaseException:
            _unlink_quietly(path)
            raise
        return Spooled(path, len(data), hashlib.sha256(data).hexdigest())

    def spool_file(self, source: Path, limit: int, *, take_over: bool = False) -> Spooled:
        """Spool a local file, hashing it; hard-linked instead of copied when `take_over` is set
        and both are on one filesystem (the caller unlinks its own name afterwards)."""
        size = source.stat().st_size
        if size > limit:
            raise SpoolLimitExceeded(f"instance larger than {limit} bytes")
        if take_over:
            linked = self._link(source, size)
            if linked is not None:
                return linked
        return self._copy(source, limit)

    def _link(self, source: Path, size: int) -> Spooled | None:
        path = self._new_spool_path()
        try:
            os.link(source, path)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                return None  # another filesystem, or no links here: copy instead
            raise _classify(exc) from exc
        try:
            os.chmod(path, _FILE_MODE)
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except BaseException:
            _unlink_quietly(path)
            raise
        return Spooled(path, size, digest)

    def _copy(self, source: Path, limit: int) -> Spooled:
        path = self._new_spool_path()
        digest = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as src, _guard(lambda: _open_private(path)) as dst:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise SpoolLimitExceeded(f"instance larger than {limit} bytes")
                    digest.update(chunk)
                    _write(dst, chunk)
        except BaseException:
            _unlink_quietly(path)
            raise
        return Spooled(path, size, digest.hexdigest())

    def discard(self, spooled: Spooled) -> None:
        """Best effort: a spool file that cannot be removed now is cleared at the next start."""
        _unlink_quietly(spooled.path)

    def clear_spool(self, older_than: float = 0.0) -> int:
        """Remove leftovers of interrupted uploads older than `older_than` seconds."""
        cutoff = time.time() - older_than
        n = 0
        for p in self._spool.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if older_than <= 0 or p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
        return n

    # -- commit ----------------------------------------------------------------------------
    def new_key(self) -> str:
        return uuid.uuid4().hex

    def commit(self, spooled: Spooled, key: str | None = None) -> str:
        """Make a spooled file durable under `key` (or a fresh key) and return the key."""
        key = key or self.new_key()
        target = self.path(key)
        try:
            self._durable_dir(target.parent)
            fd = os.open(spooled.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(spooled.path, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            raise _classify(exc) from exc
        return key

    def commit_many(
        self, spooled: list[Spooled], keys: list[str] | None = None
    ) -> list[str | BaseException]:
        """Make several spooled files durable with one disk flush; a key or the error for each.

        All files are fdatasync'ed in parallel (the kernel folds concurrent flushes into one
        journal commit), then renamed, then each target directory is fsynced; a key is returned
        only once its file and directory entry are on disk.
        """
        keys = keys or [self.new_key() for _ in spooled]
        if len(spooled) == 1:
            try:
                return [self.commit(spooled[0], keys[0])]
            except Exception as exc:
                return [exc]
        synced = list(self._sync_pool().map(_fdatasync_path, [s.path for s in spooled]))
        out: list[str | BaseException] = []
        dirs: set[Path] = set()
        for s, key, err in zip(spooled, keys, synced, strict=True):
            if err is not None:
                out.append(err)
                continue
            target = self.path(key)
            try:
                self._durable_dir(target.parent)
                os.rename(s.path, target)
            except OSError as exc:
                out.append(_classify(exc))
                continue
            dirs.add(target.parent)
            out.append(key)
        errors = dict(zip(dirs, self._sync_pool().map(_fsync_dir_safe, dirs), strict=True))
        for n, item in enumerate(out):
            if isinstance(item, str) and errors.get(self.path(item).parent) is not None:
                self.delete(item)
                out[n] = errors[self.path(item).parent]  # type: ignore[assignment]
        return out

    def _durable_dir(self, leaf: Path) -> None:
        """Create a blob directory (`ab/cd`) if needed and make sure its entry, and its
        parent's, are on disk before a file is renamed into it: fsyncing the file's own
        directory does not make a *new* directory's name in its parent durable, so a crash
        could lose an acknowledged file with it. Once per directory and process (a directory
        found existing may have been created by a process that died before its fsync); the
        lock keeps a second thread from using a directory whose entry is not durable yet."""
        if leaf in self._durable_dirs:
            return
        with self._dir_lock:
            if leaf in self._durable_dirs:
                return
            _mkdir_private(leaf)
            for d in (leaf.parent, leaf):  # ab (in blobs/), then cd (in ab/)
                if d not in self._durable_dirs:
                    _fsync_dir(d.parent)
                    self._durable_dirs.add(d)

    def _sync_pool(self) -> ThreadPoolExecutor:
        """Threads that only wait on flushes (they hold no GIL while the disk works)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._sync_threads, thread_name_prefix="fsync")
        return self._pool

    # -- read ------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """LocalFiles capability: the file of a blob (for sendfile and dcmread by path)."""
        if not _KEY.match(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self._blobs / key[:2] / key[2:4] / key

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError as exc:
            raise BlobMissing(f"no blob {key}") from exc

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with self.open(key) as f:
            return os.pread(f.fileno(), length, offset)

    async def stream(
        self, key: str, offset: int = 0, length: int | None = None, chunk: int = _CHUNK
    ) -> AsyncIterator[bytes]:
        end = self.size(key) if length is None else offset + length
        loop = asyncio.get_running_loop()
        with self.open(key) as f:
            while offset < end:
                data = await loop.run_in_executor(
                    None, os.pread, f.fileno(), min(chunk, end - offset), offset)
                if not data:
                    return
                offset += len(data)
                yield data

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError as exc:
            raise BlobMissing(f"no blob {key}") from exc

    # -- remove, list ----------------------------------------------------------------------
    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _classify(exc) from exc

    def keys(self, older_than: float = 0.0) -> Iterator[str]:
        cutoff = time.time() - older_than
        for p in self._blobs.glob("*/*/*"):
            if not _KEY.match(p.name):
                continue
            if older_than > 0:
                try:
                    if p.stat().st_mtime >= cutoff:
                        continue
                except FileNotFoundError:
                    continue
            yield p.name

    # -- identity stamp --------------------------------------------------------------------
    def read_stamp(self) -> str | None:
        try:
            return (self.root / STAMP_FILE).read_text().strip() or None
        except FileNotFoundError:
            return None

    def write_stamp(self, stamp: str) -> None:
        """Written to a temporary name, fsynced, renamed: a crash leaves the old stamp or the new."""
        tmp = self.root / f".{STAMP_FILE}.{uuid.uuid4().hex}"
        try:
            with _open_private(tmp) as f:
                f.write((stamp + "\n").encode())
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.root / STAMP_FILE)
            _fsync_dir(self.root)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise _classify(exc) from exc

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def _unlink_quietly(path: Path) -> None:
    """Clean-up after a failed write: the original error matters, not this one (on a
    read-only filesystem even unlinking a missing file fails)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _guard(fn: Callable[[], T]) -> T:
    """Run a write-side filesystem call, raising its OSError as a storage error."""
    try:
        return fn()
    except OSError as exc:
        raise _classify(exc) from exc


def _write(f: BinaryIO, data: bytes) -> None:
    try:
        f.write(data)
    except OSError as exc:
        raise _classify(exc) from exc


def _classify(exc: BaseException) -> BaseException:
    """The storage error for an OSError of a write (anything else is returned unchanged)."""
    if isinstance(exc, StorageError) or not isinstance(exc, OSError):
        return exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(str(exc))
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnly(f"storage is not writable: {exc}")
    return StorageError(f"storage error: {exc}")


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

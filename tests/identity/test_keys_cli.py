"""`archive keys create|list|revoke` as a subprocess against a real PostgreSQL; the server-side
ApiKeyStore sees creations and revocations made by the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archive.identity.apikeys import PREFIX, ApiKeyStore
from archive.identity.errors import InvalidToken
from archive.identity.roles import Kind, Role
from archive.index.engine import create_engine

REPO = Path(__file__).resolve().parents[2]


def archive(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ARCHIVE_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "archive", *args], capture_output=True,
                          text=True, env=env, timeout=120)


async def _identify(url: str, secret: str) -> object:
    engine = create_engine(url, pool_size=1)
    try:
        return await ApiKeyStore(engine, cache_seconds=0).identify(secret, "192.0.2.7")
    except InvalidToken as exc:
        return exc
    finally:
        await engine.dispose()


def test_create_list_revoke(database_url: str) -> None:
    r = archive("keys", "create", "--name", "gateway-a", "--role", "contributor", "--site",
                "SITE_A", "--expires-days", "30", database_url=database_url)
    assert r.returncode == 0, r.stderr
    secret = r.stdout.splitlines()[-1]
    assert secret.startswith(PREFIX) and len(secret) >= 40 and " " not in secret
    assert r.stdout.count(secret) == 1
    ident = asyncio.run(_identify(database_url, secret))
    assert (ident.subject, ident.role, ident.site, ident.kind, ident.source) == (  # type: ignore[attr-defined]
        "gateway-a", Role.CONTRIBUTOR, "SITE_A", Kind.API_KEY, "192.0.2.7")

    r2 = archive("keys", "create", "--name", "ops", "--role", "admin", database_url=database_url)
    admin_secret = r2.stdout.splitlines()[-1]
    listing = archive("keys", "list", database_url=database_url)
    assert listing.returncode == 0
    assert secret not in listing.stdout and admin_secret not in listing.stdout
    rows = [line.split("\t") for line in listing.stdout.splitlines()[1:]]
    assert [(n, role, site, status) for n, role, site, status, *_ in rows] == [
        ("gateway-a", "contributor", "SITE_A", "active"), ("ops", "admin", "-", "active")]
    # the database holds no secret, only its digest
    assert secret.encode() not in _dump(database_url)

    assert archive("keys", "revoke", "gateway-a", database_url=database_url).returncode == 0
    assert isinstance(asyncio.run(_identify(database_url, secret)), InvalidToken)
    again = archive("keys", "revoke", "gateway-a", database_url=database_url)
    assert again.returncode == 1 and "no active key" in again.stderr
    assert "revoked" in archive("keys", "list", database_url=database_url).stdout
    assert asyncio.run(_identify(database_url, admin_secret)).role is Role.ADMIN  # type: ignore[attr-defined]


@pytest.mark.parametrize(("args", "message"), [
    (["--name", "x", "--role", "contributor"], "needs --site"),
    (["--name", "bad name", "--role", "reader"], "bad key name"),
    (["--name", "x", "--role", "reader", "--expires-days", "0"], "positive"),
])
def test_create_rejects_bad_input(database_url: str, args: list[str], message: str) -> None:
    r = archive("keys", "create", *args, database_url=database_url)
    assert r.returncode == 1 and message in r.stderr and PREFIX not in r.stdout


def test_names_are_unique_and_unknown_secrets_fail(database_url: str) -> None:
    assert archive("keys", "create", "--name", "k", "--role", "reader",
                   database_url=database_url).returncode == 0
    dup = archive("keys", "create", "--name", "k", "--role", "curator", database_url=database_url)
    assert dup.returncode == 1 and "exists" in dup.stderr
    res = asyncio.run(_identify(database_url, PREFIX + "A" * 43))
    assert isinstance(res, InvalidToken)


def _dump(url: str) -> bytes:
    import asyncpg

    async def q() -> bytes:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT * FROM api_key")
            return repr([dict(r) for r in rows]).encode()
        finally:
            await conn.close()

    return asyncio.run(q())


def test_keys_against_embedded_postgres_of_a_running_archive() -> None:
    """`archive keys` on the data directory of a running archive (the embedded PostgreSQL is
    shared between processes): the key is usable, and the running database stays up."""
    import shutil
    import tempfile


    data = Path(tempfile.mkdtemp(prefix="archive-keys-"))  # pgserver's user must reach it
    try:
        _run_with_embedded(data)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _run_with_embedded(data: Path) -> None:
    from archive.index.engine import embedded_postgres, upgrade

    with embedded_postgres(data / "postgres") as url:  # what `archive serve` holds
        upgrade(url)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("ARCHIVE_DATABASE_URL", None)
        r = subprocess.run([sys.executable, "-m", "archive", "keys", "create", "--data-dir",
                            str(data), "--name", "cli-while-serving", "--role", "curator"],
                           capture_output=True, text=True, env=env, timeout=180)
        assert r.returncode == 0, r.stderr
        ident = asyncio.run(_identify(url, r.stdout.splitlines()[-1]))
        assert ident.subject == "cli-while-serving"  # type: ignore[attr-defined]


async def test_unreachable_index_is_unavailable_not_invalid() -> None:
    from archive.errors import ArchiveUnavailable
    from tests.conftest import free_port

    engine = create_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none", pool_size=1)
    try:
        with pytest.raises(ArchiveUnavailable):
            await ApiKeyStore(engine).identify(PREFIX + "x" * 43)
    finally:
        await engine.dispose()

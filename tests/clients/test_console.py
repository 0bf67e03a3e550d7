"""Issue 11.5: a quiet, human console; one clear line and exit code 2 for fixable start-up faults."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import requests

from archive.index.engine import sync_url
from tests import factories as f
from tests.conftest import RunningArchive, _with_db, free_port


def archive(*args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archive", *args], capture_output=True,
                          text=True, timeout=timeout, env=os.environ | (env or {}))


def one_clear_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("archive: ")
    return lines[0]


def test_version() -> None:
    proc = archive("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "archive 0.1.0"


def test_every_flag_help_shows_its_default_and_peer_shows_site() -> None:
    for command in (["serve"], ["import"], ["db", "upgrade"]):
        text = archive(*command, "--help").stdout
        assert "AET=HOST:PORT[@SITE]" in text or command != ["serve"]
        options = text.split("options:")[1]
        entries = [e for e in options.split("\n  -") if e.strip()]
        for entry in entries:
            flat = " ".join(entry.split())
            if flat.startswith("h, --help"):
                continue
            assert "default" in flat, f"{command}: {flat}"
    serve = " ".join(archive("serve", "--help").stdout.split())
    assert "(ARCHIVE_HTTP_PORT; default: 8080)" in serve
    assert "(ARCHIVE_CHECK_CALLED_AE; default: off)" in serve


def test_port_in_use_is_one_line_and_exit_2(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = archive("serve", "--database-url", database_url, "--data-dir", str(tmp_path / "d"),
                       "--http-port", str(port), "--dimse-port", str(free_port()))
    line = one_clear_line(proc)
    assert f"127.0.0.1:{port}" in line and "already in use" in line and "--http-port" in line


def test_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/archive"
    line = one_clear_line(archive("db", "upgrade", "--database-url", url,
                                  "--data-dir", str(tmp_path / "d")))
    assert "cannot reach the database server" in line


@pytest.fixture
def missing_database(pg_server_url: str) -> Iterator[str]:
    name = f"archive_missing_{uuid.uuid4().hex[:10]}"
    yield _with_db(pg_server_url, name)

    async def drop() -> None:
        conn = await asyncpg.connect(sync_url(_with_db(pg_server_url, "postgres")))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    import asyncio

    asyncio.run(drop())


def test_missing_database_is_created(missing_database: str, tmp_path: Path) -> None:
    proc = archive("db", "upgrade", "--database-url", missing_database,
                   "--data-dir", str(tmp_path / "d"))
    assert proc.returncode == 0, proc.stderr
    assert "created database" in proc.stderr and "Traceback" not in proc.stderr


def test_read_only_data_directory_is_one_line_and_exit_2(database_url: str, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    cmd = [sys.executable, "-m", "archive", "db", "upgrade", "--database-url", database_url,
           "--data-dir", str(ro)]
    if os.geteuid() == 0:  # root writes through chmod: make a truly read-only mount instead
        if not shutil.which("unshare"):
            pytest.skip("running as root without unshare: cannot make a read-only directory")
        script = (f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" && '
                  + " ".join(f"'{c}'" for c in cmd))
        cmd = ["unshare", "-rm", "sh", "-c", script]
    else:
        ro.chmod(0o555)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    line = one_clear_line(proc)
    assert "not writable" in line and str(ro) in line


def test_quiet_start_banner_then_json_when_asked(database_url: str, tmp_path: Path) -> None:
    http, dimse = free_port(), free_port()
    for fmt in ("human", "json"):
        p = subprocess.Popen([sys.executable, "-m", "archive", "serve", "--database-url",
                              database_url, "--data-dir", str(tmp_path / "d"), "--http-port",
                              str(http), "--dimse-port", str(dimse), "--log-format", fmt],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"http://127.0.0.1:{http}/", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    time.sleep(0.3)
        finally:
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert not any("alembic" in ln or "pgserver" in ln or "XDG_RUNTIME_DIR" in ln
                       for ln in lines), err
        if fmt == "human":
            assert lines[0].startswith("Imaging Commons Archive"), err
            assert f"http://127.0.0.1:{http}/dicom-web" in err and "AE ARCHIVE" in err
            assert len(lines) <= 10, err  # the banner, and a stop line
        else:
            records = [json.loads(ln) for ln in lines]
            serving = next(r for r in records if r["msg"] == "serving")
            assert serving["dicomweb"] == f"http://127.0.0.1:{http}/dicom-web"


def test_import_prints_no_line_per_instance(server: RunningArchive, tmp_path: Path) -> None:
    for d in f.series_of(5, "quiet"):
        f.write(d, tmp_path / "src" / f"{d.InstanceNumber}.dcm")
    proc = archive("import", "--no-progress", str(tmp_path / "src"), env={
        "ARCHIVE_DATABASE_URL": server.database_url,
        "ARCHIVE_DATA_DIR": str(server.settings.data_dir), "ARCHIVE_LOG_FORMAT": "json"})
    assert proc.returncode == 0, proc.stderr
    assert "stored 5" in proc.stdout
    assert proc.stderr.strip() == "", proc.stderr


def test_log_format_setting_and_auto_detection(tmp_path: Path) -> None:
    import io

    from archive import config
    from archive.errors import ConfigError
    from archive.logs import use_json

    assert config.load(environ={}).log_format == "auto"
    assert config.load(environ={"ARCHIVE_LOG_FORMAT": "json"}).log_format == "json"
    (tmp_path / "a.toml").write_text('log_format = "human"\n')
    assert config.load(environ={}, toml_path=tmp_path / "a.toml").log_format == "human"
    with pytest.raises(ConfigError):
        config.load(environ={"ARCHIVE_LOG_FORMAT": "xml"})
    pipe = io.StringIO()  # not a terminal
    assert use_json("auto", pipe) and use_json("json", pipe) and not use_json("human", pipe)

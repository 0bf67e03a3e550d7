"""The production topology files (deploy/) stay true to the code: Docker cannot run here, so
the Compose file is parsed and every `archive` command in it is parsed by the real `archive`
argument parser, every ARCHIVE_* variable is a real setting, and both load balancers point at
the nodes the file defines, on the ports the nodes listen on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from archive import config
from archive.cli import parser
from archive.config import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text()))


def archive_services(compose: dict[str, Any]) -> dict[str, list[str]]:
    return {name: list(svc["command"]) for name, svc in compose["services"].items()
            if isinstance(svc.get("command"), list) and svc["command"][:1] == ["archive"]}


def test_the_topology_is_all_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    commands = archive_services(compose)
    assert [n for n, c in commands.items() if c[1] == "serve"] == ["node1", "node2"]
    assert [n for n, c in commands.items() if c[1] == "worker"] == ["worker"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["http-lb"]["image"].startswith("nginx:")
    assert services["dicom-lb"]["image"].startswith("haproxy:")
    build = services["node1"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_every_archive_command_parses_with_the_real_cli(compose: dict[str, Any]) -> None:
    commands = archive_services(compose)
    assert len(commands) >= 4
    for name, cmd in commands.items():
        try:
            args = parser().parse_args(cmd[1:])
        except SystemExit as exc:  # argparse: unknown flag or bad value
            raise AssertionError(f"{name}: `{' '.join(cmd)}` is not a valid archive command") from exc
        if cmd[1] in ("serve", "worker"):  # the S3 settings every node shares
            assert args.storage == "s3://archive/commons" and args.s3_path_style, name


def test_every_archive_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    known = {config.env_name(n) for n in config.PARSERS} | {"ARCHIVE_CONFIG"}
    env = compose["x-archive"]["environment"]
    names = {k for k in env if k.startswith("ARCHIVE_")}
    assert names and names <= known, names - known
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)  # the standard chain
    settings = config.load(environ={k: str(v) for k, v in env.items()})
    assert settings.database_url and settings.database_url.endswith("@postgres:5432/archive")


def test_the_load_balancers_point_at_the_nodes(compose: dict[str, Any]) -> None:
    nodes = sorted(n for n, c in archive_services(compose).items() if c[1] == "serve")
    http, dimse = Settings().http_port, Settings().dimse_port
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert sorted(re.findall(r"server (\w+):(\d+)", nginx)) == [(n, str(http)) for n in nodes]
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    assert sorted(re.findall(r"server \w+ (\w+):(\d+) check port (\d+)", haproxy)) == [
        (n, str(dimse), str(http)) for n in nodes]
    assert "mode tcp" in haproxy and "/readyz" in haproxy
    mounts = {svc: compose["services"][svc]["volumes"][0] for svc in ("http-lb", "dicom-lb")}
    assert mounts["http-lb"].startswith("./nginx.conf:") and mounts["dicom-lb"].startswith(
        "./haproxy.cfg:")

"""CORS against a running archive: preflights for every route, headers on success and error."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from archive.errors import ConfigError
from dicomweb.app import create_app
from dicomweb.cors import parse_origins
from tests import factories as f
from tests.conftest import RunningArchive, auth_headers

Factory = Callable[..., RunningArchive]
ORIGIN = "http://viewer.example:3000"


def preflight(url: str, origin: str = ORIGIN, method: str = "GET",
              headers: str = "accept,authorization") -> requests.Response:
    return requests.options(url, timeout=30, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


def header_set(value: str | None) -> set[str]:
    return {v.strip().lower() for v in (value or "").split(",") if v.strip()}


def concrete_paths(server: RunningArchive) -> list[tuple[str, set[str]]]:
    """Every route of the app with its {placeholders} filled, and the methods it serves."""
    app = create_app(server.core)
    out: dict[str, set[str]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*"):
            continue
        path = re.sub(r"\{[^}]+\}", "1.2.3", path)
        out.setdefault(path, set()).add(route.method)
    return sorted(out.items())


def test_preflight_is_answered_for_every_route(server_factory: Factory) -> None:
    server = server_factory(cors_origin="*")
    paths = concrete_paths(server)
    assert any(p == "/dicom-web/studies" for p, _ in paths)
    for path, methods in paths:
        for method in methods:
            r = preflight(server.base + path, method=method)
            assert r.status_code == 204, (path, method, r.status_code, r.text)
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            allowed = header_set(r.headers["Access-Control-Allow-Methods"])
            assert method.lower() in allowed and "options" in allowed, (path, allowed)
            assert {"accept", "authorization", "content-type"} <= \
                header_set(r.headers["Access-Control-Allow-Headers"])
            assert int(r.headers["Access-Control-Max-Age"]) > 0


def test_preflight_lists_what_the_resource_really_allows(server_factory: Factory) -> None:
    server = server_factory(cors_origin="*")
    study = server.url + "/studies/" + f.uid("cors-any")
    r = preflight(study, method="POST", headers="content-type,x-custom-thing")
    assert r.status_code == 204
    # STOW-RS POST, WADO-RS GET and DELETE live on the same resource
    assert {"get", "post", "delete"} <= header_set(r.headers["Access-Control-Allow-Methods"])
    # headers the client asks for are granted too (OHIF deployments add their own)
    assert "x-custom-thing" in header_set(r.headers["Access-Control-Allow-Headers"])


def test_get_and_stow_carry_cors_headers(server_factory: Factory) -> None:
    server = server_factory(cors_origin="*")
    ds = f.image("cors1")
    client = DICOMwebClient(server.url, headers={"Origin": ORIGIN, **auth_headers()})
    client.store_instances([ds])
    r = requests.post(server.url + "/studies", data=b"", timeout=30, headers={
        "Origin": ORIGIN, "Content-Type": 'multipart/related; type="application/dicom"; boundary=x'})
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    exposed = header_set(r.headers["Access-Control-Expose-Headers"])
    assert {"content-type", "content-length", "warning", "etag", "last-modified",
            "content-location"} <= exposed
    assert r.headers.get("Cross-Origin-Resource-Policy") == "cross-origin"
    # an anonymous cross-site STOW is refused, readably, and cookies are never invited
    assert r.status_code == 401 and "www-authenticate" in exposed
    assert "Access-Control-Allow-Credentials" not in r.headers


def test_error_responses_carry_cors_headers(server_factory: Factory) -> None:
    """A browser can only read a failure's status and reason when CORS headers are on it."""
    server = server_factory(cors_origin="*")
    h = {"Origin": ORIGIN, "Accept": "application/dicom+json"}
    bad_body = requests.post(server.url + "/studies", data=b"junk", timeout=30,
                             headers={**h, "Content-Type": "text/plain"})
    unknown = requests.get(server.base + "/no/such/path", headers=h, timeout=30)
    wrong_method = requests.put(server.url + "/studies", headers=h, timeout=30)
    for r in (bad_body, unknown, wrong_method):
        assert r.status_code >= 400
        assert r.headers["Access-Control-Allow-Origin"] == "*", (r.status_code, r.headers)
    assert 400 <= bad_body.status_code < 500 and "Warning" in bad_body.headers


def test_origin_list_echoes_allowed_origin_and_refuses_others(server_factory: Factory) -> None:
    server = server_factory(cors_origin=f"{ORIGIN}, https://other.example")
    ok = requests.post(server.url + "/studies", data=b"", timeout=30,
                       headers={"Origin": ORIGIN, "Content-Type": "text/plain"})
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "origin" in header_set(ok.headers.get("Vary"))
    stranger = requests.post(server.url + "/studies", data=b"", timeout=30,
                             headers={"Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert "Access-Control-Allow-Origin" not in stranger.headers
    refused = preflight(server.url + "/studies", origin="http://evil.example")
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    assert "cors-origin" in refused.json()["error"]
    assert preflight(server.url + "/studies", origin="https://other.example").status_code == 204


def test_cors_is_off_by_default(server: RunningArchive) -> None:
    r = requests.post(server.url + "/studies", data=b"", timeout=30,
                      headers={"Origin": ORIGIN, "Content-Type": "text/plain"})
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "Access-Control-Allow-Origin" not in preflight(server.url + "/studies").headers


@pytest.mark.parametrize("bad", ["", " , ", "viewer.example", "ftp://x.example",
                                 "http://x.example/path"])
def test_bad_origin_setting_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_origins(bad)


def test_origin_setting_forms() -> None:
    assert parse_origins("*").allow("http://anything") == "*"
    policy = parse_origins("HTTP://Viewer.Example:3000/, https://b.example")
    assert policy.allow("http://viewer.example:3000") == "http://viewer.example:3000"
    assert policy.allow("https://b.example") == "https://b.example"
    assert policy.allow("https://c.example") is None
    assert policy.allow(None) is None

"""Issue 11.5: `GET /` is a landing page and `GET /dicom-web` describes the service."""

from __future__ import annotations

from html.parser import HTMLParser

import requests
from dicomweb_client.api import DICOMwebClient

from tests import factories as f
from tests.conftest import RunningArchive, auth_headers


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links += [v for k, v in attrs if k == "href" and v]

    def handle_data(self, data: str) -> None:
        self.text += data


def test_root_is_an_html_landing_page_whose_links_work(server: RunningArchive) -> None:
    r = requests.get(server.base + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    page = _Links()
    page.feed(r.text)
    assert server.url in page.links
    assert f"{server.base}/commons/openapi.json" in page.links
    assert f"{server.base}/portal/" in page.links
    assert server.settings.ae_title in page.text and str(server.settings.dimse_port) in page.text
    assert "archive viewer fetch" in page.text  # no viewer configured: says how
    local = [u for u in page.links if u.startswith(server.base)]
    assert all(requests.get(u, timeout=10).status_code == 200 for u in local), local


def test_dicomweb_root_describes_the_service(server: RunningArchive) -> None:
    r = requests.get(server.url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    info = r.json()
    assert info["dicomweb"]["root"] == server.url
    assert info["dimse"]["ae_title"] == server.settings.ae_title
    assert info["dimse"]["port"] == server.settings.dimse_port
    assert "1.2.840.10008.1.2.1.99" in info["transfer_syntaxes"]
    # the advertised QIDO-RS URL answers a real client
    ds = f.image("landing")
    client = DICOMwebClient(info["dicomweb"]["root"], headers=auth_headers())
    client.store_instances([ds])
    assert requests.get(info["dicomweb"]["qido_rs"], timeout=10).json()[0]["0020000D"]["Value"] == [
        ds.StudyInstanceUID]


def test_viewer_link_when_a_viewer_is_configured(server_factory: object, tmp_path: object) -> None:
    from pathlib import Path

    dist = Path(str(tmp_path)) / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><html><head></head><body></body></html>")
    server = server_factory(viewer_dir=dist)  # type: ignore[operator]
    info = requests.get(server.url, timeout=10).json()
    assert info["viewer"] == server.base + "/viewer/"
    assert server.base + "/viewer/" in requests.get(server.base + "/", timeout=10).text

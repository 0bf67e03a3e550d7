"""Viewer hosting (`--viewer-dir`): an OHIF dist built for `/` served under /viewer/."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from archive.errors import ConfigError
from dicomweb.viewer_fetch import fetch, unpack
from tests.conftest import RunningArchive
from tests.node import find_node

Factory = Callable[..., RunningArchive]
REAL_DIST = Path(__file__).resolve().parents[2] / ".local" / "viewer"

# the shape of @ohif/app 3.13.2's dist/index.html, reduced
INDEX = (
    '<!doctype html><html><head><meta name="msapplication-TileImage" '
    'content="/assets/mstile-144x144.png"><script>console.time("scriptToView"),'
    'window.PUBLIC_URL="/"</script><link rel="manifest" href="/manifest.json">'
    '<link rel="icon" href="/assets/favicon.ico"><script rel="preload" as="script" '
    'src="/app-config.js"></script><script rel="preload" as="script" type="module" '
    'src="/init-service-worker.js"></script><title>OHIF Viewer</title><script>window.PUBLIC_URL="/"'
    '</script><script defer src="/app.bundle.0f61.js"></script><link href="/app.bundle.css" '
    'rel="stylesheet"><a href="//cdn.example/x">x</a></head><body><div id="root"></div></body></html>'
)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    d = tmp_path / "dist"
    (d / "assets").mkdir(parents=True)
    (d / "index.html").write_text(INDEX)
    (d / "app-config.js").write_text("window.config = {qidoRoot: 'https://d14.cloudfront.net'}")
    (d / "app.bundle.0f61.js").write_text(
        '(() => { __webpack_require__.p = "/"; })(); fetch(__webpack_require__.p + "12.bundle.js")')
    (d / "12.bundle.js").write_text("console.log('no public path here')")
    (d / "app.bundle.css").write_text("@font-face{src:url(/a34f.woff2)} .x{background:url('/assets/x.png')}")
    (d / "a34f.woff2").write_bytes(b"wOF2fake")
    (d / "0ddf.wasm").write_bytes(b"\0asm\1\0\0\0")
    (d / "manifest.json").write_text(json.dumps(
        {"start_url": "./index.html", "icons": [{"src": "/assets/android-chrome-36x36.png"}]}))
    (d / "assets" / "android-chrome-36x36.png").write_bytes(b"\x89PNG")
    (d / ".installed").write_text("3.13.2 slim=1")
    return d


def get(server: RunningArchive, path: str, **kw: object) -> requests.Response:
    return requests.get(server.base + path, timeout=30, allow_redirects=False, **kw)  # type: ignore[arg-type]


def test_index_is_rebased_under_viewer(server_factory: Factory, dist: Path) -> None:
    server = server_factory(viewer_dir=dist)
    r = get(server, "/viewer/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    html = r.text
    assert re.findall(r'(?:href|src|content)="/(?!viewer/|/)', html) == []
    assert html.count('window.PUBLIC_URL="/viewer/"') == 2
    assert "init-service-worker" not in html  # no CDN workbox from an archive
    assert 'href="//cdn.example/x"' in html  # protocol-relative URLs untouched
    assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert get(server, "/viewer").headers["Location"] == "/viewer/"


def test_generated_app_config_points_at_this_archive(server_factory: Factory, dist: Path) -> None:
    server = server_factory(viewer_dir=dist)
    r = get(server, "/viewer/app-config.js")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/javascript")
    assert "cloudfront" not in r.text
    node = find_node()
    if node is None:
        assert "routerBasename: \"/viewer\"" in r.text and '"/dicom-web"' in r.text
        return
    # evaluate it as the browser would, with this page's origin
    script = ("const window={location:{origin:'http://127.0.0.1:1234'}};" + r.text +
              ";const c=window.config;console.log(JSON.stringify({b:c.routerBasename,"
              "d:c.dataSources[0].configuration}))")
    out = json.loads(subprocess.run([node, "-e", script], capture_output=True, text=True,
                                    check=True, timeout=30).stdout)
    assert out["b"] == "/viewer"
    cfg = out["d"]
    assert cfg["qidoRoot"] == cfg["wadoRoot"] == "http://127.0.0.1:1234/dicom-web"
    assert cfg["thumbnailRendering"] == "wadors" and cfg["omitQuotationForMultipartRequest"]


def test_assets_are_rebased_or_sent_as_is(server_factory: Factory, dist: Path) -> None:
    server = server_factory(viewer_dir=dist)
    js = get(server, "/viewer/app.bundle.0f61.js")
    assert js.headers["Content-Type"].startswith("text/javascript")
    assert '__webpack_require__.p = "/viewer/";' in js.text
    assert get(server, "/viewer/12.bundle.js").text == (dist / "12.bundle.js").read_text()
    css = get(server, "/viewer/app.bundle.css").text
    assert "url(/viewer/a34f.woff2)" in css and "url('/viewer/assets/x.png')" in css
    manifest = get(server, "/viewer/manifest.json").json()
    assert manifest["icons"][0]["src"] == "/viewer/assets/android-chrome-36x36.png"
    assert manifest["start_url"] == "./index.html"
    wasm = get(server, "/viewer/0ddf.wasm")
    assert wasm.headers["Content-Type"] == "application/wasm" and wasm.content == b"\0asm\1\0\0\0"
    icon = get(server, "/viewer/assets/android-chrome-36x36.png")
    assert icon.status_code == 200 and icon.content == b"\x89PNG"


@pytest.mark.parametrize("path", ["/viewer/viewer?StudyInstanceUIDs=1.2.3", "/viewer/segmentation",
                                  "/viewer/no/such/file.js", "/viewer/.installed",
                                  "/viewer/%2e%2e/%2e%2e/etc/passwd"])
def test_unknown_paths_fall_back_to_the_app(server_factory: Factory, dist: Path, path: str) -> None:
    server = server_factory(viewer_dir=dist)
    r = get(server, path)
    assert r.status_code == 200 and 'window.PUBLIC_URL="/viewer/"' in r.text


def test_viewer_is_same_origin_and_needs_no_cors(server_factory: Factory, dist: Path) -> None:
    server = server_factory(viewer_dir=dist, cors_origin="*")
    page = get(server, "/viewer/", headers={"Origin": "http://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in page.headers
    api = get(server, "/dicom-web/studies/1.2.3/metadata", headers={"Origin": "http://e.example"})
    assert api.headers["Access-Control-Allow-Origin"] == "*"


def test_no_viewer_unless_configured(server: RunningArchive) -> None:
    assert get(server, "/viewer/").status_code == 404


def test_viewer_dir_without_index_html_refuses_to_start(server_factory: Factory,
                                                        tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"index\.html"):
        server_factory(viewer_dir=tmp_path)


@pytest.mark.skipif(not (REAL_DIST / "index.html").exists(),
                    reason="the OHIF dist is not installed (tools/get-viewer.sh); tests/e2e covers it")
def test_every_file_the_real_index_names_is_served(server_factory: Factory) -> None:
    server = server_factory(viewer_dir=REAL_DIST)
    html = get(server, "/viewer/").text
    refs = set(re.findall(r'(?:href|src)="(/viewer/[^"]+)"', html))
    assert len(refs) > 10
    bad = [(ref, s) for ref in refs if (s := get(server, ref).status_code) != 200]
    assert bad == []
    bundle = next(r for r in refs if "app.bundle" in r and r.endswith(".js"))
    assert '__webpack_require__.p = "/viewer/"' in get(server, bundle).text


def test_rewritten_files_are_compressed_and_revalidated(server_factory: Factory, dist: Path) -> None:
    server = server_factory(viewer_dir=dist)
    js = get(server, "/viewer/app.bundle.0f61.js")  # requests asks for gzip and decodes it
    assert js.headers["Content-Encoding"] == "gzip"
    assert '__webpack_require__.p = "/viewer/";' in js.text
    again = get(server, "/viewer/app.bundle.0f61.js", headers={"If-None-Match": js.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    plain = get(server, "/viewer/app.bundle.0f61.js", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.text == js.text


def _tarball(tmp_path: Path, files: dict[str, bytes]) -> Path:
    tgz = tmp_path / "ohif-app-3.13.2.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return tgz


def test_viewer_fetch_unpacks_dist_and_slims(tmp_path: Path) -> None:
    tgz = _tarball(tmp_path, {
        "package/package.json": b'{"name": "@ohif/app"}', "package/README.md": b"x",
        "package/dist/index.html": INDEX.encode(), "package/dist/app.bundle.0f61.js": b"js",
        "package/dist/ort/big.wasm": b"\0asm", "package/dist/dicom-microscopy-viewer/x.js": b"m",
    })
    dest = unpack(tgz, tmp_path / "viewer", "3.13.2", slim=True)
    assert sorted(p.name for p in dest.iterdir()) == [
        ".installed", ".package.json", "app.bundle.0f61.js", "index.html"]
    # already there: fetch is a no-op and never calls npm
    assert fetch(dest, "3.13.2", slim=True) == dest.resolve()


def test_viewer_fetch_refuses_a_package_without_a_build(tmp_path: Path) -> None:
    tgz = _tarball(tmp_path, {"package/package.json": b"{}", "package/dist/readme.txt": b"no"})
    with pytest.raises(ConfigError, match="no prebuilt dist"):
        unpack(tgz, tmp_path / "viewer", "3.13.2", slim=False)
    assert not (tmp_path / "viewer").exists()

"""OHIF Viewer 3 (npm @ohif/app 3.13.2, prebuilt) in headless Chromium against a running archive.

The archive serves the viewer itself (`--viewer-dir`, same origin). Data goes in through
STOW-RS with dicomweb-client: a CT series, a CR radiograph, a multi-frame XA, a JPEG 2000 MR and
a JPEG-LS US. Passing means: the study list shows each study, a patient-name search finds the
right one, the viewport canvas of each study holds structured pixels (checked in the browser
and again on the screenshot), and there is no console error, page error or failed request.
Screenshots stay in test-artifacts/ohif/<test>/ for a person to look at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dicomweb_client.api import DICOMwebClient

from tests.conftest import RunningArchive, auth_headers
from tests.e2e import phantoms
from tests.e2e.browser import BrowserTools, artifacts, find_browser_tools, pixel_check, problems, run_ohif
from tests.e2e.phantoms import Study

pytestmark = pytest.mark.e2e

Factory = Callable[..., RunningArchive]


@pytest.fixture(scope="module")
def tools() -> BrowserTools:
    return find_browser_tools()


@pytest.fixture(scope="module")
def studies() -> dict[str, Study]:
    return {s.label: s for s in phantoms.all_studies()}


def archive_with(server_factory: Factory, tools: BrowserTools, studies: list[Study],
                 **settings: Any) -> RunningArchive:
    """An archive hosting the viewer, holding `studies` stored through STOW-RS."""
    server = server_factory(viewer_dir=tools.viewer_dir, **settings)
    client = DICOMwebClient(server.url, headers=auth_headers())
    for study in studies:
        result = client.store_instances(study.datasets)
        assert not result.get("FailedSOPSequence"), result
    return server


def assert_rendered(report: dict[str, Any], studies: list[Study]) -> None:
    listed = {s.label: report["list"].get(s.label) for s in studies}
    assert all(listed.values()), f"study list: {listed}\n{report['list'].get('text', '')[:1500]}"
    for s in studies:
        r = report["studies"][s.label]
        assert r["ok"], f"{s.label} not rendered: {r.get('deadEnd') or r.get('canvas')}\n{r.get('text')}"
        px = pixel_check(r["viewportScreenshot"])
        assert px["std"] >= 2 and px["distinct"] >= 8, f"{s.label} screenshot looks blank: {px}"
    assert problems(report) == []


def requested(report: dict[str, Any], fragment: str, status: int = 200) -> list[dict[str, Any]]:
    return [r for r in report["requests"] if fragment in r["url"] and r.get("status") == status]


def test_ohif_lists_searches_and_renders_every_study(
    server_factory: Factory, tools: BrowserTools, studies: dict[str, Study]
) -> None:
    wanted = list(studies.values())
    server = archive_with(server_factory, tools, wanted)
    report = run_ohif(
        tools, artifacts("default"), viewer_url=f"{server.base}/viewer",
        dicomweb_root=server.url, studies=wanted,
        search={"patientName": "E2EMR", "expect": studies["mr"].listed_as,
                "absent": studies["ct"].listed_as},
    )
    assert_rendered(report, wanted)
    assert report["search"]["found"] and report["search"]["absentHidden"], report["search"]
    frames = requested(report, "/frames/")
    assert frames and all("transfer-syntax=*" in (r["accept"] or "") for r in frames)
    assert requested(report, "/metadata")


# name: (data-source settings merged into the generated config, study, endpoint it must use).
# OHIF's default thumbnailRequestStrategy 'bulkDataRetrieve' asks `.../thumbnail?accept=image/jpeg`
# with a multipart octet-stream Accept header; 'fetch' sends `Accept: image/jpeg` instead.
FETCH = {"thumbnailRequestStrategy": "fetch"}
VARIANTS: dict[str, tuple[dict[str, Any], str, str]] = {
    "thumbnail": ({"thumbnailRendering": "thumbnail"}, "mr", "/thumbnail"),
    "thumbnail-fetch": ({"thumbnailRendering": "thumbnail", **FETCH}, "ct", "/thumbnail"),
    "rendered": ({"thumbnailRendering": "rendered"}, "ct", "/rendered"),
    "rendered-fetch": ({"thumbnailRendering": "rendered", **FETCH}, "mr", "/rendered"),
    "eager-metadata": ({"enableStudyLazyLoad": False}, "xa", "/metadata"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ohif_variant_renders(
    server_factory: Factory, tools: BrowserTools, studies: dict[str, Study], variant: str
) -> None:
    patch, label, endpoint = VARIANTS[variant]
    wanted = [studies[label]]
    server = archive_with(server_factory, tools, wanted)
    report = run_ohif(tools, artifacts(variant), viewer_url=f"{server.base}/viewer",
                      dicomweb_root=server.url, studies=wanted, config_patch=patch)
    assert_rendered(report, wanted)
    used = requested(report, endpoint)
    assert used, f"the {variant} variant never requested {endpoint}"
    if variant == "eager-metadata":  # study-level metadata instead of per series
        assert any(r["url"].endswith(f"/studies/{wanted[0].uid}/metadata") for r in used)


def test_ohif_on_another_origin_uses_cors(
    server_factory: Factory, tools: BrowserTools, studies: dict[str, Study]
) -> None:
    """The viewer page on http://localhost:P, the data on http://127.0.0.1:P: a cross-origin
    deployment. The quoted multipart Accept is not CORS-safelisted, so every frame request
    needs a preflight that the archive must answer."""
    wanted = [studies["ct"], studies["cr"]]
    server = archive_with(server_factory, tools, wanted, cors_origin="*")
    port = server.settings.http_port
    report = run_ohif(
        tools, artifacts("cross-origin"), viewer_url=f"http://localhost:{port}/viewer",
        dicomweb_root=server.url, studies=wanted,
        config_patch={"qidoRoot": server.url, "wadoRoot": server.url, "wadoUriRoot": server.url,
                      "omitQuotationForMultipartRequest": False},
    )
    assert_rendered(report, wanted)
    frames = requested(report, "/frames/")
    assert frames and all('type="application/octet-stream"' in r["accept"] for r in frames)


def test_ohif_on_another_origin_without_cors_is_blocked(
    server_factory: Factory, tools: BrowserTools, studies: dict[str, Study]
) -> None:
    """Negative control for the test above: the same deployment with CORS off fails visibly."""
    wanted = [studies["cr"]]
    server = archive_with(server_factory, tools, wanted)
    port = server.settings.http_port
    report = run_ohif(
        tools, artifacts("cross-origin-no-cors"), viewer_url=f"http://localhost:{port}/viewer",
        dicomweb_root=server.url, studies=wanted, list_timeout=6,
        config_patch={"qidoRoot": server.url, "wadoRoot": server.url, "wadoUriRoot": server.url},
    )
    assert not report["list"]["ok"]
    assert any("CORS" in e["text"] for e in report["consoleErrors"]), report["consoleErrors"]

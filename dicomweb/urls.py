"""Absolute URLs for RetrieveURL and BulkDataURI, honouring a reverse proxy's forwarded headers."""

from __future__ import annotations

from aiohttp import web

ROOT = "/dicom-web"


def base_url(request: web.Request) -> str:
    """`scheme://host[/prefix]` as the client sees it."""
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    prefix = request.headers.get("X-Forwarded-Prefix", "").rstrip("/")
    return f"{proto}://{host}{prefix}"


def service_root(request: web.Request) -> str:
    """The DICOMweb root this request came through (a cohort root keeps its own prefix)."""
    root = request.match_info.get("root_prefix", "")
    if not root and request.match_info.get("cohort"):  # a cohort root (dicomweb/commons_api.py)
        root = f"/commons/cohorts/{request.match_info['cohort']}"
    return f"{base_url(request)}{root}{ROOT}"


def study_url(root: str, study: str) -> str:
    return f"{root}/studies/{study}"


def series_url(root: str, study: str, series: str) -> str:
    return f"{root}/studies/{study}/series/{series}"


def instance_url(root: str, study: str, series: str, sop: str) -> str:
    return f"{root}/studies/{study}/series/{series}/instances/{sop}"

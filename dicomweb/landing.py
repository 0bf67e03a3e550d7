"""First contact: `GET /` is a small HTML page, `GET /dicom-web` a JSON description of the service.

Someone who types the address they were given into a browser, or points a DICOMweb client at the
root, should learn what this server is and where its doors are, instead of a bare 404.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

import archive
from archive.config import Settings
from archive.transfer_syntax import KNOWN_TRANSFER_SYNTAXES
from dicomweb.keys import CORE
from dicomweb.urls import ROOT, base_url

NAME = "Imaging Commons Archive"
STANDARD = "https://dicom.nema.org/medical/dicom/current/output/html/part18.html"



def describe(settings: Settings, base: str) -> dict[str, Any]:
    """What a client needs to know to use this archive, as JSON (also the page's source)."""
    root = base + ROOT
    wildcard = settings.host in ("0.0.0.0", "::", "")
    dimse_host = urlsplit(base).hostname if wildcard else settings.host
    return {
        "service": NAME,
        "version": archive.__version__,
        "dicomweb": {
            "root": root,
            "qido_rs": f"{root}/studies",
            "wado_rs": f"{root}/studies/{{study}}",
            "stow_rs": f"{root}/studies",
            "wado_uri": f"{root}/wado",
            "standard": STANDARD,
        },
        "dimse": {
            "ae_title": settings.ae_title,
            "host": dimse_host,
            "port": settings.dimse_port,
            "check_called_ae": settings.check_called_ae,
            "services": ["C-ECHO", "C-STORE", "C-FIND", "C-MOVE", "C-GET"],
        },
        "viewer": f"{base}/viewer/" if settings.viewer_dir else None,
        "commons_openapi": f"{base}/commons/openapi.json",
        "portal": f"{base}/portal/",
        "transfer_syntaxes": sorted(KNOWN_TRANSFER_SYNTAXES),
    }


async def service(request: web.Request) -> web.Response:
    """`GET /dicom-web`: the service description (a client's first request is often the root)."""
    info = describe(request.app[CORE].settings, base_url(request))
    return web.Response(text=json.dumps(info, indent=2), content_type="application/json")


async def index(request: web.Request) -> web.Response:
    """`GET /`: the landing page."""
    info = describe(request.app[CORE].settings, base_url(request))
    return web.Response(text=page(info), content_type="text/html", charset="utf-8")


def _link(url: str, text: str | None = None) -> str:
    return f'<a href="{html.escape(url)}">{html.escape(text or url)}</a>'


def page(info: dict[str, Any]) -> str:
    web_ = info["dicomweb"]
    dimse = info["dimse"]
    viewer = (_link(info["viewer"]) if info["viewer"] else
              "not enabled: <code>archive viewer fetch</code>, then "
              "<code>archive serve --viewer-dir ohif-viewer</code>")
    e = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(NAME)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;
line-height:1.5}}code{{background:#f2f2f2;padding:0 .2em}}dt{{font-weight:600}}</style></head>
<body>
<h1>{e(NAME)}</h1>
<p>A DICOM archive (version {e(info["version"])}): it stores images sent over DICOMweb or
DIMSE, indexes them in PostgreSQL and serves them back unchanged.</p>
<dl>
<dt>DICOMweb root (QIDO-RS, WADO-RS, STOW-RS)</dt><dd>{_link(web_["root"])}</dd>
<dt>DIMSE (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET)</dt>
<dd>AE title <code>{e(dimse["ae_title"])}</code>, host <code>{e(str(dimse["host"]))}</code>,
port <code>{dimse["port"]}</code></dd>
<dt>Research portal</dt><dd>{_link(info["portal"], "explore the commons, build cohorts")}</dd>
<dt>Viewer</dt><dd>{viewer}</dd>
<dt>Commons API</dt><dd>{_link(info["commons_openapi"], "OpenAPI description")}</dd>
<dt>Documentation</dt><dd>the project's <code>README.md</code> and <code>docs/</code>;
the DICOMweb standard: {_link(web_["standard"], "PS3.18")}</dd>
</dl>
<h2>Send a first study</h2>
<pre>storescu -aec {e(dimse["ae_title"])} +sd {e(str(dimse["host"]))} {dimse["port"]} FOLDER</pre>
<p>Compressed files: add <code>-xs</code>, <code>-xt</code> or <code>-xr</code> (see
<code>storescu --help</code>) so they are sent as they are. Over HTTP: STOW-RS to
{_link(web_["stow_rs"])}.</p>
</body></html>
"""

"""Every HTTP route of the DICOMweb door, in tables readable top to bottom.

`DICOMWEB` (PS3.18 §10, paths relative to a service root) is mounted at `/dicom-web` and again,
read-only and behind a cohort check, under each cohort root, so every resource exists under
every root. `COMMONS` is the /commons API; `SITE` holds what lives at the site root.

Each route declares who may call it (`permission`): today "read" is anyone (sequestered data
is filtered per caller), "write" is anyone (STOW-RS, DELETE), "curate" needs the curator token
when one is configured (checked in the handler). Access control (issue 12) enforces it here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from archive.query.spec import Level
from dicomweb import (
    collection_api,
    commons_api,
    curation_api,
    landing,
    ops,
    portal,
    qido,
    stow,
    wado,
    wado_frames,
    wado_uri,
)
from dicomweb.urls import ROOT

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    permission: str = "read"  # "read" | "write" | "curate" | "public": who may call it (issue 12)


ST = "/studies/{study}"
SE = ST + "/series/{series}"
IN = SE + "/instances/{instance}"
FR = IN + "/frames/{frames}"

DICOMWEB: tuple[Route, ...] = (
    # STOW-RS §10.5
    Route("POST", "/studies", stow.store_instances, "write"),
    Route("POST", ST, stow.store_instances, "write"),
    # QIDO-RS §10.6 (Table 10.6.1-1)
    Route("GET", "/studies", qido.search_handler(Level.STUDY)),
    Route("GET", "/series", qido.search_handler(Level.SERIES)),
    Route("GET", "/instances", qido.search_handler(Level.IMAGE)),
    Route("GET", ST + "/series", qido.search_handler(Level.SERIES, Level.STUDY)),
    Route("GET", ST + "/instances", qido.search_handler(Level.IMAGE, Level.STUDY)),
    Route("GET", SE + "/instances", qido.search_handler(Level.IMAGE, Level.SERIES)),
    # WADO-RS §10.4: instances, metadata, bulkdata, frames
    Route("GET", ST, wado.retrieve),
    Route("GET", SE, wado.retrieve),
    Route("GET", IN, wado.retrieve),
    Route("GET", ST + "/metadata", wado.metadata),
    Route("GET", SE + "/metadata", wado.metadata),
    Route("GET", IN + "/metadata", wado.metadata),
    Route("GET", IN + "/bulkdata/{tag}", wado_frames.bulkdata),
    Route("GET", FR, wado_frames.frames),
    # WADO-RS rendered and thumbnail resources §10.4.1.1.3-4
    Route("GET", ST + "/rendered", wado_frames.rendered),
    Route("GET", SE + "/rendered", wado_frames.rendered),
    Route("GET", IN + "/rendered", wado_frames.rendered),
    Route("GET", FR + "/rendered", wado_frames.rendered),
    Route("GET", ST + "/thumbnail", wado_frames.thumbnail),
    Route("GET", SE + "/thumbnail", wado_frames.thumbnail),
    Route("GET", IN + "/thumbnail", wado_frames.thumbnail),
    Route("GET", FR + "/thumbnail", wado_frames.thumbnail),
    # DELETE (study, series, instance)
    Route("DELETE", ST, wado.remove, "write"),
    Route("DELETE", SE, wado.remove, "write"),
    Route("DELETE", IN, wado.remove, "write"),
    # WADO-URI §9
    Route("GET", "/wado", wado_uri.wado),
)

SITE: tuple[Route, ...] = (
    # the landing page and a JSON description of the service (issue 11.5)
    Route("GET", "/", landing.index),
    Route("GET", ROOT, landing.service),
    Route("GET", ROOT + "/", landing.service),
    # WADO-URI at the site root too, where legacy viewers look for it
    Route("GET", "/wado", wado_uri.wado),
    # operations (issue 13): liveness, readiness, Prometheus metrics
    Route("GET", "/healthz", ops.healthz, "public"),
    Route("GET", "/readyz", ops.readyz, "public"),
    Route("GET", "/metrics", ops.metrics, "public"),
)

COMMONS_ROOT = "/commons"
COHORT_ROOT = commons_api.COHORT_ROOT  # a cohort's frozen DICOMweb root

COMMONS: tuple[Route, ...] = (
    Route("GET", "/openapi.json", commons_api.get_openapi),
    Route("POST", "/cases", commons_api.post_cases, "curate"),
    Route("GET", "/cases/{case}", commons_api.get_case),
    Route("GET", "/descriptions", commons_api.get_descriptions),
    Route("GET", "/mappings", commons_api.get_mappings),
    Route("POST", "/mappings", commons_api.post_mapping, "curate"),
    Route("PUT", "/studies/{study}/collection", collection_api.put_collection, "curate"),
    Route("GET", "/loinc", commons_api.get_terms),
    Route("GET", "/sites", commons_api.get_sites),
    Route("GET", "/datasets", commons_api.get_datasets),
    Route("GET", "/facets", commons_api.get_facets),
    Route("POST", "/cohorts", commons_api.post_cohort, "write"),
    Route("GET", "/cohorts", commons_api.list_cohorts),
    Route("GET", "/cohorts/{cohort}", commons_api.get_cohort),
    Route("GET", "/cohorts/{cohort}/manifest", commons_api.get_manifest),
    Route("GET", "/cohorts/{cohort}/clinical", commons_api.get_clinical),
    Route("GET", "/cohorts/{cohort}/files/{sop}", commons_api.get_file),
    # curation (issue 16): staged datasets, releases, overrides, test sets, LOINC suggestions
    Route("GET", "/datasets/{dataset}/qc", curation_api.get_qc, "curate"),
    Route("POST", "/datasets/{dataset}/release", curation_api.post_release, "curate"),
    Route("GET", "/releases", curation_api.list_releases),
    Route("GET", "/releases/{number}", curation_api.get_release),
    Route("POST", "/cases/{case}/partition", curation_api.post_partition, "curate"),
    Route("POST", "/testsets", curation_api.post_testset, "curate"),
    Route("GET", "/testsets", curation_api.list_testsets, "curate"),
    Route("GET", "/loinc/suggest", curation_api.get_suggest),
)

# The research portal (issue 17): its JSON next to /commons, its pages under /portal/.
PORTAL: tuple[Route, ...] = (
    Route("GET", "/commons/explore", portal.get_explore),
    Route("GET", "/commons/explore/studies", portal.rows_handler("studies")),
    Route("GET", "/commons/explore/cases", portal.rows_handler("cases")),
    Route("GET", portal.MOUNT, portal.to_mount),
    Route("GET", portal.MOUNT + "/", portal.index),
    Route("GET", portal.MOUNT + "/config.json", portal.get_config),
    Route("GET", portal.MOUNT + "/static/{tail:.+}", portal.static),
)


def mounted(table: tuple[Route, ...], prefix: str) -> list[Route]:
    """`table` under `prefix` (its paths are relative to it)."""
    return [Route(r.method, prefix + r.path, r.handler, r.permission) for r in table]


def cohort_roots() -> list[Route]:
    """The DICOMweb table under every cohort root: reads pass a cohort check first (404 for an
    unknown or unreadable cohort); everything else is a 405 (a cohort is frozen)."""
    return [Route(r.method, r.path,
                  commons_api.cohort_guard(r.handler) if r.method in ("GET", "HEAD")
                  else commons_api.read_only, r.permission)
            for r in mounted(DICOMWEB, COHORT_ROOT)]


def all_routes() -> list[Route]:
    """The door's whole table, in registration order."""
    return [*mounted(DICOMWEB, ROOT), *SITE, *mounted(COMMONS, COMMONS_ROOT), *PORTAL,
            *cohort_roots()]


def route_defs(routes: list[Route]) -> list[web.RouteDef]:
    """aiohttp route definitions (every GET also answers HEAD)."""
    return [web.get(r.path, r.handler) if r.method == "GET" else web.route(r.method, r.path, r.handler)
            for r in routes]

"""Every HTTP route of the DICOMweb door, in tables readable top to bottom.

`DICOMWEB` (PS3.18 §10, paths relative to a service root) is mounted at `/dicom-web` and again,
read-only and behind a cohort check, under each cohort root, so every resource exists under
every root. `COMMONS` is the /commons API; `SITE` holds what lives at the site root.

Each route declares the `archive.identity.roles.Permission` it needs, here and nowhere else;
`dicomweb.auth.auth_middleware` looks the matched route's permission up and enforces it before
any handler runs (401 without credentials, 403 without the permission). What a permitted caller
may *see* is a visibility question answered by the core (404 for what is hidden).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from archive.identity.roles import Permission
from archive.query.spec import Level
from dicomweb import (
    audit_api,
    collection_api,
    commons_api,
    curation_api,
    landing,
    ops,
    portal,
    qido,
    stow,
    viewer,
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
    permission: Permission  # who may call it: the one table of issue 12


ST = "/studies/{study}"
SE = ST + "/series/{series}"
IN = SE + "/instances/{instance}"
FR = IN + "/frames/{frames}"

DICOMWEB: tuple[Route, ...] = (
    # STOW-RS §10.5
    Route("POST", "/studies", stow.store_instances, Permission.STORE_OWN_SITE),
    Route("POST", ST, stow.store_instances, Permission.STORE_OWN_SITE),
    # QIDO-RS §10.6 (Table 10.6.1-1)
    Route("GET", "/studies", qido.search_handler(Level.STUDY), Permission.READ),
    Route("GET", "/series", qido.search_handler(Level.SERIES), Permission.READ),
    Route("GET", "/instances", qido.search_handler(Level.IMAGE), Permission.READ),
    Route("GET", ST + "/series", qido.search_handler(Level.SERIES, Level.STUDY), Permission.READ),
    Route("GET", ST + "/instances", qido.search_handler(Level.IMAGE, Level.STUDY), Permission.READ),
    Route("GET", SE + "/instances", qido.search_handler(Level.IMAGE, Level.SERIES), Permission.READ),
    # WADO-RS §10.4: instances, metadata, bulkdata, frames
    Route("GET", ST, wado.retrieve, Permission.READ),
    Route("GET", SE, wado.retrieve, Permission.READ),
    Route("GET", IN, wado.retrieve, Permission.READ),
    Route("GET", ST + "/metadata", wado.metadata, Permission.READ),
    Route("GET", SE + "/metadata", wado.metadata, Permission.READ),
    Route("GET", IN + "/metadata", wado.metadata, Permission.READ),
    Route("GET", IN + "/bulkdata/{tag}", wado_frames.bulkdata, Permission.READ),
    Route("GET", FR, wado_frames.frames, Permission.READ),
    # WADO-RS rendered and thumbnail resources §10.4.1.1.3-4
    Route("GET", ST + "/rendered", wado_frames.rendered, Permission.READ),
    Route("GET", SE + "/rendered", wado_frames.rendered, Permission.READ),
    Route("GET", IN + "/rendered", wado_frames.rendered, Permission.READ),
    Route("GET", FR + "/rendered", wado_frames.rendered, Permission.READ),
    Route("GET", ST + "/thumbnail", wado_frames.thumbnail, Permission.READ),
    Route("GET", SE + "/thumbnail", wado_frames.thumbnail, Permission.READ),
    Route("GET", IN + "/thumbnail", wado_frames.thumbnail, Permission.READ),
    Route("GET", FR + "/thumbnail", wado_frames.thumbnail, Permission.READ),
    # DELETE (study, series, instance)
    Route("DELETE", ST, wado.remove, Permission.DELETE),
    Route("DELETE", SE, wado.remove, Permission.DELETE),
    Route("DELETE", IN, wado.remove, Permission.DELETE),
    # WADO-URI §9
    Route("GET", "/wado", wado_uri.wado, Permission.READ),
)

SITE: tuple[Route, ...] = (
    # the landing page and a JSON description of the service (issue 11.5)
    Route("GET", "/", landing.index, Permission.PUBLIC),
    Route("GET", ROOT, landing.service, Permission.PUBLIC),
    Route("GET", ROOT + "/", landing.service, Permission.PUBLIC),
    # WADO-URI at the site root too, where legacy viewers look for it
    Route("GET", "/wado", wado_uri.wado, Permission.READ),
    # operations (issue 13): liveness, readiness, Prometheus metrics
    Route("GET", "/healthz", ops.healthz, Permission.PUBLIC),
    Route("GET", "/readyz", ops.readyz, Permission.PUBLIC),
    Route("GET", "/metrics", ops.metrics, Permission.PUBLIC),
)

COMMONS_ROOT = "/commons"
COHORT_ROOT = commons_api.COHORT_ROOT  # a cohort's frozen DICOMweb root

COMMONS: tuple[Route, ...] = (
    Route("GET", "/openapi.json", commons_api.get_openapi, Permission.PUBLIC),
    Route("POST", "/cases", commons_api.post_cases, Permission.CLINICAL_WRITE),
    Route("GET", "/cases/{case}", commons_api.get_case, Permission.READ),
    Route("GET", "/descriptions", commons_api.get_descriptions, Permission.READ),
    Route("GET", "/mappings", commons_api.get_mappings, Permission.READ),
    Route("POST", "/mappings", commons_api.post_mapping, Permission.MAPPING_WRITE),
    Route("GET", "/loinc", commons_api.get_terms, Permission.READ),
    Route("GET", "/sites", commons_api.get_sites, Permission.READ),
    Route("GET", "/datasets", commons_api.get_datasets, Permission.READ),
    Route("GET", "/facets", commons_api.get_facets, Permission.READ),
    # cohorts belong to their creator; others see them (404 otherwise) once published
    Route("POST", "/cohorts", commons_api.post_cohort, Permission.CREATE_COHORT),
    Route("GET", "/cohorts", commons_api.list_cohorts, Permission.READ_OWN_COHORTS),
    Route("GET", "/cohorts/{cohort}", commons_api.get_cohort, Permission.READ_OWN_COHORTS),
    Route("GET", "/cohorts/{cohort}/manifest", commons_api.get_manifest,
          Permission.READ_OWN_COHORTS),
    Route("GET", "/cohorts/{cohort}/clinical", commons_api.get_clinical,
          Permission.READ_OWN_COHORTS),
    Route("GET", "/cohorts/{cohort}/files/{sop}", commons_api.get_file,
          Permission.READ_OWN_COHORTS),
    Route("POST", "/cohorts/{cohort}/publish", commons_api.publish_cohort,
          Permission.PUBLISH_COHORT),
    # explicit collection changes (issue 12.4): the whole study (and, into sequestered, the case)
    Route("PUT", "/studies/{study}/collection", collection_api.put_collection,
          Permission.ASSIGN_COLLECTION),
    # curation (issue 16): staged datasets, releases, overrides, test sets, LOINC suggestions
    Route("GET", "/datasets/{dataset}/qc", curation_api.get_qc, Permission.SEQUESTERED),
    Route("POST", "/datasets/{dataset}/release", curation_api.post_release,
          Permission.ASSIGN_COLLECTION),
    Route("GET", "/releases", curation_api.list_releases, Permission.READ),
    Route("GET", "/releases/{number}", curation_api.get_release, Permission.READ),
    Route("POST", "/cases/{case}/partition", curation_api.post_partition,
          Permission.ASSIGN_COLLECTION),
    Route("POST", "/testsets", curation_api.post_testset, Permission.SEQUESTERED),
    Route("GET", "/testsets", curation_api.list_testsets, Permission.SEQUESTERED),
    Route("GET", "/loinc/suggest", curation_api.get_suggest, Permission.READ),
    # the audit trail (issue 12.5)
    Route("GET", "/audit", audit_api.get_audit, Permission.AUDIT_READ),
)

# The research portal (issue 17): its JSON next to /commons, its pages under /portal/.
PORTAL: tuple[Route, ...] = (
    Route("GET", "/commons/explore", portal.get_explore, Permission.READ),
    Route("GET", "/commons/explore/studies", portal.rows_handler("studies"), Permission.READ),
    Route("GET", "/commons/explore/cases", portal.rows_handler("cases"), Permission.READ),
    Route("GET", portal.MOUNT, portal.to_mount, Permission.PUBLIC),
    Route("GET", portal.MOUNT + "/", portal.index, Permission.PUBLIC),
    Route("GET", portal.MOUNT + "/config.json", portal.get_config, Permission.PUBLIC),
    Route("GET", portal.MOUNT + "/static/{tail:.+}", portal.static, Permission.PUBLIC),
)

# the hosted viewer (--viewer-dir): static files, public like any web page's assets
VIEWER: tuple[Route, ...] = (
    Route("GET", viewer.MOUNT, viewer.to_mount, Permission.PUBLIC),
    Route("GET", f"{viewer.MOUNT}/app-config.js", viewer.config_js, Permission.PUBLIC),
    Route("GET", f"{viewer.MOUNT}/", viewer.index, Permission.PUBLIC),
    Route("GET", viewer.MOUNT + "/{tail:.*}", viewer.asset, Permission.PUBLIC),
)


def mounted(table: tuple[Route, ...], prefix: str) -> list[Route]:
    """`table` under `prefix` (its paths are relative to it)."""
    return [Route(r.method, prefix + r.path, r.handler, r.permission) for r in table]


def cohort_roots() -> list[Route]:
    """The DICOMweb table under every cohort root: reads pass a cohort check first (404 for an
    unknown or unreadable cohort); everything else is a 405 for everyone (a cohort is frozen,
    so those routes only ever answer that, and need no more than READ to say it)."""
    return [Route(r.method, r.path, commons_api.cohort_guard(r.handler), r.permission)
            if r.method in ("GET", "HEAD")
            else Route(r.method, r.path, commons_api.read_only, Permission.READ)
            for r in mounted(DICOMWEB, COHORT_ROOT)]


def all_routes() -> list[Route]:
    """The door's whole table, in registration order."""
    return [*mounted(DICOMWEB, ROOT), *SITE, *mounted(COMMONS, COMMONS_ROOT), *PORTAL,
            *cohort_roots()]


def viewer_routes() -> list[Route]:
    """The viewer's routes (mounted only when --viewer-dir is given)."""
    return list(VIEWER)


def route_defs(routes: list[Route]) -> list[web.RouteDef]:
    """aiohttp route definitions (every GET also answers HEAD)."""
    return [web.get(r.path, r.handler) if r.method == "GET" else web.route(r.method, r.path, r.handler)
            for r in routes]

"""The whole DICOMweb URL table (PS3.18 §10), readable top to bottom.

`dicomweb_routes(prefix)` is mounted at `/dicom-web` and again under each cohort root, so every
resource exists under every root.
"""

from __future__ import annotations

from aiohttp import web

from dicomweb import commons_api, curation_api, qido, stow, wado


def dicomweb_routes(prefix: str) -> list[web.RouteDef]:
    """Every DICOMweb resource under one service root (`/dicom-web` or a cohort root)."""
    p = prefix
    return [
        # STOW-RS §10.5
        web.post(f"{p}/studies", stow.store_instances),
        web.post(f"{p}/studies/{{study}}", stow.store_instances),
        # QIDO-RS §10.6
        *qido.routes(p),
        # WADO-RS §10.4, DELETE, WADO-URI §9
        *wado.routes(p),
    ]


def commons_routes() -> list[web.RouteDef]:
    """The /commons API (clinical data, harmonization, cohorts); also mounts cohort roots."""
    return [*commons_api.routes("/commons"), *curation_api.routes("/commons")]

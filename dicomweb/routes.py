"""The whole DICOMweb URL table (PS3.18 §10), readable top to bottom.

`dicomweb_routes(prefix)` is mounted at `/dicom-web` and again under each cohort root, so every
resource exists under every root.
"""

from __future__ import annotations

from aiohttp import web

from dicomweb import stow


def dicomweb_routes(prefix: str) -> list[web.RouteDef]:
    p = prefix
    return [
        # STOW-RS §10.5
        web.post(f"{p}/studies", stow.store_instances),
        web.post(f"{p}/studies/{{study}}", stow.store_instances),
    ]

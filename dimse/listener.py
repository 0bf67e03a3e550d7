"""The DIMSE listener: one pynetdicom AE bound to the server's asyncio loop.

Presentation contexts: Verification, every storage SOP class with the common transfer
syntaxes; query/retrieve services register their contexts and handlers through `services`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from archive import tls
from archive.core import Core
from archive.transfer_syntax import (
    DIMSE_STORAGE_TRANSFER_SYNTAXES,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
)
from dimse import audit, find, get, move, peers
from dimse.limits import apply_limits, association_counters, per_ae_limit
from dimse.permissions import handle_echo
from dimse.store import handle_store

log = logging.getLogger("dimse")


# A DIMSE service plug-in: adds presentation contexts to the AE and returns its handlers.
Service = Callable[[AE, Core, asyncio.AbstractEventLoop], list[Any]]


def _storage(ae: AE, core: Core, loop: asyncio.AbstractEventLoop) -> list[Any]:
    for cx in AllStoragePresentationContexts:
        if cx.abstract_syntax:
            ae.add_supported_context(cx.abstract_syntax, DIMSE_STORAGE_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification, [EXPLICIT_VR_LE, IMPLICIT_VR_LE])
    return [(evt.EVT_C_STORE, handle_store, [core, loop]), (evt.EVT_C_ECHO, handle_echo, [core])]


def _identity(ae: AE, core: Core, loop: asyncio.AbstractEventLoop) -> list[Any]:
    """Identify every association when it is requested (dimse.peers), before any service."""
    return [(evt.EVT_REQUESTED, peers.on_requested, [core, loop])]


def services() -> list[Service]:
    """Registered DIMSE services: storage here, query/retrieve in their own modules."""
    return [_identity, _storage, find.service, get.service, move.service, audit.service]


class Listener:
    """The AE, serving on its own threads; needs `dimse.tuning.tune_pynetdicom()` applied first
    (done by the composition root, because pynetdicom's settings are process-wide)."""

    def __init__(self, core: Core, loop: asyncio.AbstractEventLoop) -> None:
        self.core = core
        settings = core.settings
        ae = AE(ae_title=settings.ae_title)
        apply_limits(ae, settings)  # PDU size, timeouts, associations (dimse/limits.py)
        if settings.restrict_peers:
            ae.require_calling_aet = [p.ae_title for p in settings.peers]
        # Off by default, as Orthanc: many modalities are configured with a wrong called AE.
        ae.require_called_aet = settings.check_called_ae  # A-ASSOCIATE-RJ reason 7 when on
        handlers: list[Any] = association_counters(core.metrics)  # dimse/limits.py
        for service in services():
            handlers.extend(service(ae, core, loop))
        handlers.append(per_ae_limit(settings))  # after identity: dimse/limits.py
        self.ae = ae
        server = ae.start_server(
            (settings.host, settings.dimse_port), block=False, evt_handlers=handlers
        )
        assert server is not None  # block=False always returns the server
        self.server: ThreadedAssociationServer = server
        self.tls_server: ThreadedAssociationServer | None = None
        context = tls.dimse_context(settings)
        if context is not None and settings.dimse_tls_port:
            # DICOM TLS (PS3.15 B.9): the same AE and handlers behind a BCP 195 TLS socket
            self.tls_server = ae.start_server((settings.host, settings.dimse_tls_port),
                                              block=False, evt_handlers=handlers,
                                              ssl_context=context)
        log.debug("dimse listening", extra={"port": settings.dimse_port, "ae_title": ae.ae_title,
                                            "tls_port": settings.dimse_tls_port})

    def stop_accepting(self) -> None:
        self.server.shutdown()
        if self.tls_server is not None:
            self.tls_server.shutdown()

    def active(self) -> int:
        return len(self.server.active_associations) if hasattr(self.server, "active_associations") else 0

    def abort_all(self) -> None:
        for assoc in list(self.ae.active_associations):
            assoc.abort()

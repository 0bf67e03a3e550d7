"""The DIMSE listener: one pynetdicom AE bound to the server's asyncio loop.

Presentation contexts: Verification, every storage SOP class with the common transfer
syntaxes; query/retrieve services register their contexts and handlers through `services`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any

import pynetdicom.transport
from pynetdicom import AE, _config, evt
from pynetdicom.presentation import AllStoragePresentationContexts, PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationSocket, ThreadedAssociationServer

from archive.core import Core
from archive.transfer_syntax import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    JPEG_2000,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE,
    JPEG_EXTENDED,
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS,
    JPEG_LS_NEAR_LOSSLESS,
    RLE_LOSSLESS,
)
from dimse import bridge
from dimse.store import handle_store

log = logging.getLogger("dimse")

STORAGE_TRANSFER_SYNTAXES = [
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    JPEG_BASELINE,
    JPEG_EXTENDED,
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS,
    JPEG_LS_NEAR_LOSSLESS,
    JPEG_2000_LOSSLESS,
    JPEG_2000,
    RLE_LOSSLESS,
]

# A DIMSE service plug-in: adds presentation contexts to the AE and returns its handlers.
Service = Callable[[AE, Core, asyncio.AbstractEventLoop], list[Any]]


def _storage(ae: AE, core: Core, loop: asyncio.AbstractEventLoop) -> list[Any]:
    for cx in AllStoragePresentationContexts:
        if cx.abstract_syntax:
            ae.add_supported_context(cx.abstract_syntax, STORAGE_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification, [EXPLICIT_VR_LE, IMPLICIT_VR_LE])
    return [(evt.EVT_C_STORE, handle_store, [core, loop])]


def services() -> list[Service]:
    """Registered DIMSE services: storage here, query/retrieve in their own modules."""
    from dimse import find, get, move

    return [_storage, find.service, get.service, move.service]


def _copy_contexts(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """pynetdicom deep-copies the AE's ~200 presentation contexts for every association: ~50 ms of
    CPU (each UID re-validated by regex) before the first PDU is answered. A context only needs its
    own transfer-syntax list; UIDs are immutable strings and can be shared."""
    if isinstance(obj, list) and obj and all(type(c) is PresentationContext for c in obj):
        copies = []
        for cx in obj:
            dup = copy.copy(cx)
            dup._transfer_syntax = list(cx._transfer_syntax)
            copies.append(dup)
        return copies
    return copy.deepcopy(obj, memo)


_RECV_MAX = 1 << 20


def _recv(self: AssociationSocket, nr_bytes: int) -> bytearray:
    """AssociationSocket.recv taking as much as the kernel has, up to 1 MiB per call.

    pynetdicom reads a PDU 4 KiB at a time: ~110 `recv` calls per 450 KB instance, each one
    releasing and re-taking the GIL — behind a busy event loop a wait of up to the switch interval
    (5 ms) per call. Same semantics: fewer bytes only when the peer closed; memory grows with
    the bytes that actually arrive, not with the length a peer announces."""
    data = bytearray()
    while len(data) < nr_bytes:
        part = self.socket.recv(min(nr_bytes - len(data), _RECV_MAX))  # type: ignore[union-attr]
        if not part:
            break
        data += part
    return data


class Listener:
    def __init__(self, core: Core, loop: asyncio.AbstractEventLoop) -> None:
        self.core = core
        # pynetdicom has no per-AE switch: receive C-STORE data sets into temp files, not memory.
        _config.STORE_RECV_CHUNKED_DATASET = True
        bridge.install()
        setattr(pynetdicom.transport, "deepcopy", _copy_contexts)  # noqa: B010 - see _copy_contexts
        AssociationSocket.recv = _recv  # type: ignore[method-assign]
        settings = core.settings
        ae = AE(ae_title=settings.ae_title)
        ae.maximum_pdu_size = 0  # unlimited (DCMTK then sends 128 KiB PDUs, its own cap)
        ae.network_timeout = 60
        ae.acse_timeout = 30
        ae.dimse_timeout = 600
        ae.maximum_associations = 64
        if settings.restrict_peers:
            ae.require_calling_aet = [p.ae_title for p in settings.peers]
        # Off by default, as Orthanc: many modalities are configured with a wrong called AE.
        ae.require_called_aet = settings.check_called_ae  # A-ASSOCIATE-RJ reason 7 when on
        handlers: list[Any] = []
        for service in services():
            handlers.extend(service(ae, core, loop))
        self.ae = ae
        server = ae.start_server(
            (settings.host, settings.dimse_port), block=False, evt_handlers=handlers
        )
        assert server is not None  # block=False always returns the server
        self.server: ThreadedAssociationServer = server
        log.debug("dimse listening", extra={"port": settings.dimse_port, "ae_title": ae.ae_title})

    def stop_accepting(self) -> None:
        self.server.shutdown()

    def active(self) -> int:
        return len(self.server.active_associations) if hasattr(self.server, "active_associations") else 0

    def abort_all(self) -> None:
        for assoc in list(self.ae.active_associations):
            assoc.abort()

"""pynetdicom tuning the archive needs. pynetdicom's configuration is module-level (no per-AE
switch), so this is process-wide by nature: the composition root (`archive.server.running`)
applies it once before it starts a listener, and nothing else patches pynetdicom.
"""

from __future__ import annotations

import copy
from typing import Any

import pynetdicom.transport
from pynetdicom import _config
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationSocket

from dimse import bridge


def tune_pynetdicom() -> None:
    """Idempotent: chunked C-STORE receive, cheap context copies, big reads, the loop bridge."""
    # receive C-STORE data sets into temp files, not memory
    _config.STORE_RECV_CHUNKED_DATASET = True
    bridge.install()
    setattr(pynetdicom.transport, "deepcopy", _copy_contexts)  # noqa: B010 - see _copy_contexts
    AssociationSocket.recv = _recv  # type: ignore[method-assign]


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

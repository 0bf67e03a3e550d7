"""C-MOVE SCP (PS3.4 C.4.2): Patient Root and Study Root, study / series / image level.

The Move Destination must be a configured peer (`--peer AET=HOST:PORT`); any other gets
0xA801 "Move destination unknown". We propose, per SOP class being sent, a context for each
stored compressed syntax and one for native little endian, so compressed instances travel as
stored when the destination takes them and decoded otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from pynetdicom import AE, build_context, evt
from pynetdicom.presentation import PresentationContext

from archive.core import Core
from archive.errors import ArchiveError
from archive.retrieve import Located, locate_keys
from archive.transfer_syntax import EXPLICIT_VR_LE, IMPLICIT_VR_LE, UNCOMPRESSED
from dimse import audit, bridge
from dimse.get import QR_SYNTAXES
from dimse.peers import identity_of
from dimse.retrieve_scp import (
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_MOVE,
    accepted_syntaxes,
    dataset_for,
    keys_from,
)
from dimse.statuses import CANCEL, PENDING, retrieve_refusal
from dimse.store import caller_for

log = logging.getLogger("dimse.move")
MAX_CONTEXTS = 128
VERIFICATION = "1.2.840.10008.1.1"


def service(ae: AE, core: Core, loop: asyncio.AbstractEventLoop) -> list[Any]:
    ae.add_supported_context(PATIENT_ROOT_MOVE, QR_SYNTAXES)
    ae.add_supported_context(STUDY_ROOT_MOVE, QR_SYNTAXES)

    return [(evt.EVT_C_MOVE, handle_move, [core, loop])]


def contexts_for(located: list[Located]) -> list[PresentationContext]:
    """Native LE for every SOP class first, then each stored compressed syntax (≤ 128)."""
    classes = list(dict.fromkeys(loc.sop_class_uid for loc in located))
    out = [build_context(c, [EXPLICIT_VR_LE, IMPLICIT_VR_LE]) for c in classes]
    compressed = dict.fromkeys((loc.sop_class_uid, loc.transfer_syntax) for loc in located
                               if loc.transfer_syntax not in UNCOMPRESSED)
    out += [build_context(c, ts) for c, ts in compressed]
    return out[:MAX_CONTEXTS]


def _sub_association(event: Any, destination: str) -> Any:
    """The association pynetdicom opened to the destination for this C-MOVE."""
    for assoc in event.assoc.ae.active_associations:
        if assoc is not event.assoc and assoc.is_requestor and assoc.is_established and \
                str(assoc.acceptor.ae_title).strip() == destination:
            return assoc
    return None


def handle_move(event: Any, core: Core, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """EVT_C_MOVE handler: destination, sub-operation count, then (Pending, data set) pairs."""
    destination = str(event.move_destination or "").strip()
    peer = core.settings.peer(destination) if destination else None
    identity = identity_of(event.assoc, core)
    if peer is None:
        log.info("c-move to unknown destination %r", destination)
        audit.begin_transferring(core, loop, event.assoc, identity, "C-MOVE", (), instances=0,
                                 destination=destination,
                                 refused=ArchiveError("move destination unknown"))
        yield None, None  # pynetdicom answers 0xA801 Move Destination unknown
        return
    keys = None
    try:
        keys = keys_from(event.identifier, event.context.abstract_syntax)
        located = bridge.run(loop, locate_keys(core, caller_for(event, core), keys))
    except ArchiveError as exc:
        log.info("c-move refused: %s", exc.reason)
        audit.begin_transferring(core, loop, event.assoc, identity, "C-MOVE",
                                 keys.studies if keys else (), instances=0,
                                 destination=destination, refused=exc)
        # pynetdicom only sends a failure status after associating with the destination
        yield peer.host, peer.port, {"contexts": [build_context(VERIFICATION)]}
        yield 1
        yield retrieve_refusal(exc), None
        return
    audit.begin_transferring(core, loop, event.assoc, identity, "C-MOVE",
                             (loc.study_uid for loc in located), instances=len(located),
                             destination=destination)
    yield peer.host, peer.port, {"contexts": contexts_for(located)}
    yield len(located)
    store = None
    for loc in located:
        if event.is_cancelled:
            yield CANCEL, None
            return
        store = store or _sub_association(event, destination)
        contexts = store.accepted_contexts if store is not None else []
        yield PENDING, dataset_for(loc, accepted_syntaxes(contexts, loc.sop_class_uid))

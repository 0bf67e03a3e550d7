"""C-GET SCP (PS3.4 C.4.3): Patient Root and Study Root, study / series / image level.

Sub-operations are C-STOREs on the same association, so the SCU must have proposed storage
contexts with SCP/SCU role selection; our storage contexts accept both roles. Counts of
remaining/completed/failed/warning sub-operations are kept by pynetdicom from each C-STORE
response, and failed SOP Instance UIDs are listed in the final response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from archive.core import Core
from archive.errors import ArchiveError
from archive.retrieve import locate_keys
from archive.transfer_syntax import (
    DIMSE_STORAGE_TRANSFER_SYNTAXES,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
)
from dimse import audit, bridge
from dimse.peers import identity_of
from dimse.retrieve_scp import (
    PATIENT_ROOT_GET,
    STUDY_ROOT_GET,
    accepted_syntaxes,
    dataset_for,
    keys_from,
)
from dimse.statuses import CANCEL, PENDING, retrieve_refusal
from dimse.store import caller_for

log = logging.getLogger("dimse.get")
QR_SYNTAXES = [EXPLICIT_VR_LE, IMPLICIT_VR_LE]


def service(ae: AE, core: Core, loop: asyncio.AbstractEventLoop) -> list[Any]:
    ae.add_supported_context(PATIENT_ROOT_GET, QR_SYNTAXES)
    ae.add_supported_context(STUDY_ROOT_GET, QR_SYNTAXES)
    for cx in AllStoragePresentationContexts:  # role selection: we act as Storage SCU
        ae.add_supported_context(str(cx.abstract_syntax), DIMSE_STORAGE_TRANSFER_SYNTAXES,
                                 scu_role=True, scp_role=True)

    return [(evt.EVT_C_GET, handle_get, [core, loop])]


def handle_get(event: Any, core: Core, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """EVT_C_GET handler: yields the sub-operation count, then (Pending, data set) pairs."""
    identity = identity_of(event.assoc, core)
    keys = None
    try:
        keys = keys_from(event.identifier, event.context.abstract_syntax)
        located = bridge.run(loop, locate_keys(core, caller_for(event, core), keys))
    except ArchiveError as exc:
        log.info("c-get refused: %s", exc.reason)
        audit.begin_transferring(core, loop, event.assoc, identity, "C-GET",
                                 keys.studies if keys else (), instances=0, refused=exc)
        yield 1  # pynetdicom needs a count before a failure status can be sent
        yield retrieve_refusal(exc), None
        return
    audit.begin_transferring(core, loop, event.assoc, identity, "C-GET",
                             (loc.study_uid for loc in located), instances=len(located))
    yield len(located)
    for loc in located:
        if event.is_cancelled:
            yield CANCEL, None
            return
        accepted = accepted_syntaxes(event.assoc.accepted_contexts, loc.sop_class_uid)
        yield PENDING, dataset_for(loc, accepted)

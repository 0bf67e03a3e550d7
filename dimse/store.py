"""C-STORE SCP: spool pynetdicom's received file, ingest it through the core, answer a status.

The data set arrives as a temporary Part-10 file written by pynetdicom (chunked receive), in
the negotiated transfer syntax, never decoded; it is copied into the archive's spool before the
handler returns because pynetdicom deletes its temporary file afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydicom.dataset import Dataset

from archive.core import Caller, Core
from archive.errors import ArchiveError
from archive.ingest import ingest
from dimse import bridge
from dimse.statuses import OUT_OF_RESOURCES, PROCESSING_FAILURE, store_status
from storage.filesystem import NoSpace, SpoolLimitExceeded

log = logging.getLogger("dimse.store")


def caller_for(event: Any, core: Core) -> Caller:
    """The calling AE title identifies the peer; curator AE titles may see sequestered data."""
    aet = event.assoc.requestor.ae_title
    aet = (aet.decode() if isinstance(aet, bytes) else str(aet)).strip()
    return Caller(ae_title=aet, may_see_sequestered=aet in core.settings.curator_aets)


def _status(code: int, comment: str | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


def handle_store(event: Any, core: Core, loop: asyncio.AbstractEventLoop) -> Dataset:
    """EVT_C_STORE handler (runs in the association thread)."""
    try:
        spooled = core.blobs.spool_file(event.dataset_path, core.settings.max_instance_bytes)
    except (SpoolLimitExceeded, NoSpace) as exc:
        return _status(OUT_OF_RESOURCES, str(exc))
    try:
        stored = bridge.run(loop, ingest(core, spooled, caller_for(event, core)))
    except ArchiveError as exc:
        log.info("c-store refused: %s", exc.reason)
        return _status(store_status(exc), exc.reason)
    except Exception:
        log.exception("c-store failed")
        return _status(PROCESSING_FAILURE, "internal error")
    # 0xB000-range warnings do not fit "replaced"; success with a comment keeps peers happy.
    return _status(0x0000, stored.warning)

"""C-STORE SCP: spool pynetdicom's received file, ingest it through the core, answer a status.

The data set arrives as a temporary Part-10 file written by pynetdicom (chunked receive), in
the negotiated transfer syntax, never decoded. pynetdicom deletes that file when the handler
returns, so the handler takes it over first: a hard link into the archive's spool when both are on
one filesystem (no copy), else a copy. Either way the spool holds the exact received bytes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from archive.blobs import spool_file
from archive.core import Core
from archive.errors import ArchiveError
from archive.ingest import ingest
from dimse import audit, bridge
from dimse.peers import identity_of
from dimse.permissions import caller_for
from dimse.statuses import PROCESSING_FAILURE, SUCCESS, status, store_failure
from storage.base import Spooled

log = logging.getLogger("dimse.store")

__all__ = ["caller_for", "handle_store", "take_over"]


def take_over(core: Core, source: Path) -> Spooled:
    """Move pynetdicom's finished temporary file into the spool, hashed (a hard link when the
    store allows it, else a copy).

    pynetdicom has flushed every fragment before calling the handler and unlinks its own name
    afterwards, so a linked inode holds exactly the received bytes.
    """
    return spool_file(core, source, take_over=True)


def handle_store(event: Any, core: Core, loop: asyncio.AbstractEventLoop) -> Dataset | int:
    """EVT_C_STORE handler (runs in the association thread). A plain success is answered as the
    int status, which pynetdicom turns into the same C-STORE-RSP as a one-element status
    Dataset, without building and walking one per instance."""
    done = audit.tally(event.assoc, identity_of(event.assoc, core))  # audited at release
    try:
        caller = caller_for(event, core)
        spooled = take_over(core, event.dataset_path)
    except ArchiveError as exc:
        done.failure(exc)
        return store_failure(exc)
    try:
        stored = bridge.run(loop, ingest(core, spooled, caller))
    except ArchiveError as exc:
        log.info("c-store refused: %s", exc.reason, extra={
            "calling_ae": caller.ae_title, "address": str(event.assoc.requestor.address),
            "site": caller.site})
        done.failure(exc)
        return store_failure(exc)
    except Exception:
        log.exception("c-store failed")
        done.failure(ArchiveError("internal error"))
        return status(PROCESSING_FAILURE, "internal error")
    done.stored[stored.study_uid] += 1
    # 0xB000-range warnings do not fit "replaced"; success with a comment keeps peers happy.
    warning = stored.warning
    return SUCCESS if warning is None else status(SUCCESS, warning)

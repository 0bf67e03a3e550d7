"""C-STORE SCP: spool pynetdicom's received file, ingest it through the core, answer a status.

The data set arrives as a temporary Part-10 file written by pynetdicom (chunked receive), in
the negotiated transfer syntax, never decoded. pynetdicom deletes that file when the handler
returns, so the handler takes it over first: a hard link into the archive's spool when both are on
one filesystem (no copy), else a copy. Either way the spool holds the exact received bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from archive.core import Caller, Core
from archive.errors import ArchiveError
from archive.ingest import ingest
from dimse import bridge
from dimse.statuses import OUT_OF_RESOURCES, PROCESSING_FAILURE, SUCCESS, status, store_failure
from storage.base import Spooled
from storage.filesystem import NoSpace, SpoolLimitExceeded

log = logging.getLogger("dimse.store")


def caller_for(event: Any, core: Core) -> Caller:
    """The calling AE title identifies the peer; curator AE titles may see sequestered data."""
    aet = event.assoc.requestor.ae_title
    aet = (aet.decode() if isinstance(aet, bytes) else str(aet)).strip()
    return Caller(ae_title=aet, may_see_sequestered=aet in core.settings.curator_aets)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# The mode a spooled copy would get; pynetdicom creates its temporary file 0600.
_FILE_MODE = 0o666 & ~_umask()


def take_over(core: Core, source: Path, limit: int) -> Spooled:
    """Move pynetdicom's finished temporary file into the spool, hashed; copy only across filesystems.

    pynetdicom has flushed every fragment before calling the handler and unlinks its own name
    afterwards, so the linked inode holds exactly the received bytes.
    """
    size = source.stat().st_size
    if size > limit:
        raise SpoolLimitExceeded(f"instance larger than {limit} bytes")
    path = core.blobs.spool_dir() / f"{uuid.uuid4().hex}.part"
    try:
        os.link(source, path)
    except OSError:  # another filesystem (EXDEV), or links not supported
        return core.blobs.spool_file(source, limit)
    try:
        os.chmod(path, _FILE_MODE)
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Spooled(path, size, digest)


def handle_store(event: Any, core: Core, loop: asyncio.AbstractEventLoop) -> Dataset:
    """EVT_C_STORE handler (runs in the association thread)."""
    try:
        spooled = take_over(core, event.dataset_path, core.settings.max_instance_bytes)
    except (SpoolLimitExceeded, NoSpace) as exc:
        return status(OUT_OF_RESOURCES, str(exc))
    try:
        stored = bridge.run_quietly(loop, ingest(core, spooled, caller_for(event, core)), event.assoc)
    except ArchiveError as exc:
        log.info("c-store refused: %s", exc.reason)
        return store_failure(exc)
    except Exception:
        log.exception("c-store failed")
        return status(PROCESSING_FAILURE, "internal error")
    # 0xB000-range warnings do not fit "replaced"; success with a comment keeps peers happy.
    return status(SUCCESS, stored.warning)

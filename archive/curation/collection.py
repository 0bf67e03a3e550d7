"""PUT /commons/studies/{uid}/collection: an explicit, curator-only collection change.

Collections never change as a side effect of an upload (the core refuses writes into another
collection's study); this use case is the one way besides the release workflow.
"""

from __future__ import annotations

import logging
import re

from archive.core import Caller, Core
from archive.errors import Forbidden, InvalidRequest
from archive.index.collections import move_study

log = logging.getLogger("archive.collection")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def valid_collection(value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidRequest("collection must be 1-64 letters, digits, '.', '_' or '-'")
    return value


async def change_collection(core: Core, caller: Caller, study_uid: str, collection: object,
                            source: str | None = None) -> dict[str, object]:
    """Move a study (sequestering: its whole case) to `collection`; curators only."""
    if not caller.may_change_any_site:
        raise Forbidden("a collection change needs the curator role")
    target = valid_collection(collection)
    async with core.engine.begin() as conn:
        moved = await move_study(conn, study_uid, target)
    # TODO(lead): record an audit event (AuditAction for "collection change", PS3.15 A.5.3
    # "Study Object Access"/update) once the runtime carries an AuditWriter; logged meanwhile.
    log.info("collection changed", extra={"study_uid": study_uid, "collection": target,
                                          "moved": moved, "actor": caller.ae_title or "http",
                                          "roles": sorted(caller.roles), "source": source})
    return {"study": study_uid, "collection": target, "moved": moved}

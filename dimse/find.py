"""C-FIND SCP (PS3.4 C.4.1): Patient Root and Study Root, PATIENT/STUDY/SERIES/IMAGE levels.

The identifier is turned into the same (key, value) pairs a QIDO-RS query string gives —
non-empty elements are matching keys, empty ones return keys, sequence items become dotted
paths — and answered by `archive.query.search`, so both doors match identically. Answers carry
exactly the requested keys (plus the unique keys of the levels above) and are encoded in UTF-8
(ISO_IR 192) when any value needs it. C-CANCEL is checked before every pending response.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from archive.core import Core
from archive.errors import ArchiveError, InvalidQuery
from archive.query import Level, parse_query, search
from archive.query.spec import QuerySpec
from archive.transfer_syntax import EXPLICIT_VR_LE, IMPLICIT_VR_LE
from dimse import audit, bridge
from dimse.peers import identity_of
from dimse.statuses import (
    FIND_CANCELLED,
    FIND_PENDING,
    SUCCESS,
    UNABLE_TO_PROCESS,
    find_failure,
    status,
    unreadable_identifier,
)
from dimse.store import caller_for
from dimse.tuning import let_dul_read

log = logging.getLogger("dimse.find")

PATIENT_ROOT = PatientRootQueryRetrieveInformationModelFind
STUDY_ROOT = StudyRootQueryRetrieveInformationModelFind
LEVELS = {"PATIENT": Level.PATIENT, "STUDY": Level.STUDY, "SERIES": Level.SERIES,
          "IMAGE": Level.IMAGE}
# Protocol attributes answered by the door itself, never matched.
QUERY_LEVEL, CHARSET, RETRIEVE_AET, AVAILABILITY = 0x00080052, 0x00080005, 0x00080054, 0x00080056
UNIQUE = {Level.PATIENT: "00100020", Level.STUDY: "0020000D", Level.SERIES: "0020000E",
          Level.IMAGE: "00080018"}


def service(ae: AE, core: Core, loop: asyncio.AbstractEventLoop) -> list[tuple[Any, Any]]:
    for model in (PATIENT_ROOT, STUDY_ROOT):
        ae.add_supported_context(model, [EXPLICIT_VR_LE, IMPLICIT_VR_LE])
    handler: tuple[Any, Any] = (evt.EVT_C_FIND, handle_find, [core, loop])  # type: ignore[assignment]
    return [handler]


def _text(elem: DataElement) -> str | None:
    """The element as query text; None when it carries no value (a return key)."""
    value = elem.value
    if value is None or value == "" or elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV"):
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace").rstrip("\x00 ")
        return value or None
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value) or None
    if isinstance(value, PersonName):
        return str(value) or None
    return str(value)


def identifier_pairs(ds: Dataset, prefix: str = "") -> list[tuple[str, str]]:
    """Identifier → (key, value) pairs; empty values are return keys ("" = universal)."""
    pairs: list[tuple[str, str]] = []
    for elem in ds:
        if not prefix and elem.tag in (QUERY_LEVEL, CHARSET, RETRIEVE_AET, AVAILABILITY):
            continue
        if elem.tag.is_private and elem.tag.element < 0x1000:
            continue  # private creator: needed to interpret private keys, not a key itself
        key = f"{prefix}{int(elem.tag):08X}"
        if elem.VR == "SQ":
            items = [i for i in (elem.value or []) if len(i)]
            sub = identifier_pairs(items[0], key + ".") if items else []
            pairs.extend(sub if sub else [(key, "")])
        else:
            pairs.append((key, _text(elem) or ""))
    return pairs


def request_spec(ds: Dataset, model: str) -> QuerySpec:
    level_text = str(ds.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level_text not in LEVELS:
        raise InvalidQuery(f"QueryRetrieveLevel must be one of {', '.join(LEVELS)}")
    level = LEVELS[level_text]
    if model == STUDY_ROOT and level == Level.PATIENT:
        raise InvalidQuery("the Study Root model has no PATIENT level")
    return parse_query(identifier_pairs(ds), level)


def _wanted_tags(ds: Dataset, level: Level, model: str) -> dict[str, Dataset | None]:
    """Top-level tags to answer → the request's sequence item (to trim answers) or None."""
    out: dict[str, Dataset | None] = {}
    for elem in ds:
        if elem.tag in (QUERY_LEVEL, CHARSET):
            continue
        items = [i for i in (elem.value or []) if len(i)] if elem.VR == "SQ" else []
        out[f"{int(elem.tag):08X}"] = items[0] if items else None
    ranks = [Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE]
    first = 0 if model == PATIENT_ROOT else 1
    for lvl in ranks[first: ranks.index(level)]:
        out.setdefault(UNIQUE[lvl], None)
    return out


def _trim(element: dict[str, Any], item: Dataset | None) -> dict[str, Any]:
    if item is None or element.get("vr") != "SQ" or not element.get("Value"):
        return element
    keep = {f"{int(e.tag):08X}" for e in item}
    return {"vr": "SQ", "Value": [{t: v for t, v in it.items() if t in keep}
                                  for it in element["Value"]]}


def answer(result: dict[str, Any], wanted: dict[str, Dataset | None], level_text: str,
           ae_title: str) -> Dataset:
    """One pending response identifier: exactly the requested keys, UTF-8 when needed."""
    from pydicom.datadict import dictionary_VR

    doc: dict[str, Any] = {}
    for tag, item in wanted.items():
        if tag == f"{RETRIEVE_AET:08X}":
            doc[tag] = {"vr": "AE", "Value": [ae_title]}
        elif tag == f"{AVAILABILITY:08X}":
            doc[tag] = {"vr": "CS", "Value": ["ONLINE"]}
        elif tag in result:
            doc[tag] = _trim(result[tag], item)
        else:
            try:
                doc[tag] = {"vr": str(dictionary_VR(int(tag, 16))).split(" ")[0]}
            except KeyError:
                doc[tag] = {"vr": "UN"}
    ds = Dataset.from_json(doc)
    ds.QueryRetrieveLevel = level_text
    if not _ascii(doc):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def _ascii(doc: Any) -> bool:
    import json

    try:
        json.dumps(doc, ensure_ascii=False).encode("ascii")
    except UnicodeEncodeError:
        return False
    return True


async def _take(results: AsyncIterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to n results in one hop to the loop (a hop per result costs more than the query)."""
    out: list[dict[str, Any]] = []
    async for dataset in results:
        out.append(dataset)
        if len(out) >= n:
            break
    return out


def _no_delay(event: Any) -> None:
    """Send each pending response at once: with Nagle's algorithm the response's two small
    PDUs (command, identifier) wait for the peer's delayed ACK, ~40 ms per answer."""
    try:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass


def handle_find(event: Any, core: Core, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """EVT_C_FIND handler (a generator, run in the association thread); each request is
    audited as a Query (dimse.audit) with its matching keys, match count and final status."""
    matches, final = 0, UNABLE_TO_PROCESS
    try:
        for code, answer_ds in _find(event, core, loop):
            value = int(getattr(code, "Status", code))
            if value in (FIND_PENDING, 0xFF01):
                matches += 1
            else:
                final = value
            yield code, answer_ds
    finally:
        _audit_query(event, core, loop, matches, final)


def _audit_query(event: Any, core: Core, loop: asyncio.AbstractEventLoop, matches: int,
                 final: int) -> None:
    try:
        ds = event.identifier
        level = str(ds.get("QueryRetrieveLevel", "") or "").strip().upper()
        pairs = identifier_pairs(ds)
        studies = [v for k, v in pairs if k == UNIQUE[Level.STUDY] and v and "*" not in v
                   and "?" not in v]
    except Exception:  # an identifier pydicom cannot decode: audited without its keys
        level, pairs, studies = "", [], []
    audit.query(core, loop, event.assoc, identity_of(event.assoc, core), level=level,
                pairs=pairs, studies=[u for v in studies for u in v.split("\\")],
                matches=matches, status=final)


def _find(event: Any, core: Core, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    model = str(event.request.AffectedSOPClassUID)
    _no_delay(event)
    try:
        ds = event.identifier
        spec = request_spec(ds, model)
        wanted = _wanted_tags(ds, spec.level, model)
        door_keys = {f"{RETRIEVE_AET:08X}", f"{AVAILABILITY:08X}"}
        spec = replace(spec, includes=spec.includes | (frozenset(wanted) - door_keys))
        caller = caller_for(event, core)
    except ArchiveError as exc:
        yield find_failure(exc), None
        return
    except Exception as exc:  # an identifier pydicom cannot decode
        yield unreadable_identifier(exc), None
        return
    level_text = str(ds.QueryRetrieveLevel).strip().upper()
    results = search(core, spec, caller)
    try:
        batch = 1  # the first answer goes out at once; later hops fetch more at a time
        while True:
            if batch > 1:  # answers are out: let the reactor read a C-CANCEL (dimse.tuning)
                let_dul_read(event.assoc)
            if event.is_cancelled:
                yield FIND_CANCELLED, None
                return
            try:
                found = bridge.run(loop, _take(results, batch))
            except ArchiveError as exc:
                yield find_failure(exc), None
                return
            for dataset in found:
                if event.is_cancelled:
                    yield FIND_CANCELLED, None
                    return
                yield FIND_PENDING, answer(dataset, wanted, level_text, core.settings.ae_title)
            if len(found) < batch:
                break
            batch = min(batch * 4, 64)
    except Exception:
        log.exception("c-find failed")
        yield status(UNABLE_TO_PROCESS, "internal error"), None
        return
    finally:
        bridge.run(loop, results.aclose())
    yield SUCCESS, None

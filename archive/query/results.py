"""Result rows → DICOM JSON data sets, per level (PS3.18 §10.6.3.3, PS3.4 C.6).

Each level returns its required attributes (Tables 10.6.3-3/-4/-5), the attributes named by a
query key or `includefield`, and computed ones (counts, ModalitiesInStudy, SOPClassesInStudy,
RetrieveURL). Attributes of a lower level are never returned at a higher level; a higher level's
attributes are returned only when the resource is not already scoped to it by the URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR

from archive.caller import Caller
from archive.query import sql
from archive.query.fastjson import loads
from archive.query.spec import Level, QuerySpec
from archive.query.sql import COLUMNS, LEVEL_TAGS, RANK, home_level

STUDY_REQUIRED = ("00080020", "00080030", "00080050", "00080056", "00080061", "00080090",
                  "00080201", "00081190", "00100010", "00100020", "00100030", "00100040",
                  "0020000D", "00200010", "00201206", "00201208")
SERIES_REQUIRED = ("00080060", "00080201", "0008103E", "00081190", "0020000E", "00200011",
                   "00201209", "00400244", "00400245", "00400275")
INSTANCE_REQUIRED = ("00080016", "00080018", "00080056", "00080201", "00081190", "00200013",
                     "00280010", "00280011", "00280100", "00280008")
PATIENT_REQUIRED = ("00100010", "00100020", "00100030", "00100040", "00201200", "00201202",
                    "00201204")
REQUIRED = {Level.PATIENT: PATIENT_REQUIRED, Level.STUDY: STUDY_REQUIRED,
            Level.SERIES: SERIES_REQUIRED, Level.IMAGE: INSTANCE_REQUIRED}
COMPUTED = {
    Level.PATIENT: frozenset({"00201200", "00201202", "00201204"}),
    Level.STUDY: frozenset({"00080061", "00080062", "00201206", "00201208", "00081190",
                            "00080056"}),
    Level.SERIES: frozenset({"00201209", "00081190"}),
    Level.IMAGE: frozenset({"00081190", "00080056"}),
}
KNOWN = LEVEL_TAGS[Level.PATIENT] | LEVEL_TAGS[Level.STUDY] | LEVEL_TAGS[Level.SERIES] | \
    LEVEL_TAGS[Level.IMAGE] | frozenset(COLUMNS) | frozenset().union(*COMPUTED.values())


def shown_levels(spec: QuerySpec) -> list[Level]:
    """Levels whose attributes a result carries (PATIENT rides with STUDY)."""
    floor = RANK[spec.scoped_to] if spec.scoped_to else -1
    out = [lvl for lvl in (Level.STUDY, Level.SERIES, Level.IMAGE)
           if floor < RANK[lvl] <= RANK[spec.level]]
    return [Level.PATIENT] if spec.level == Level.PATIENT else out


def owner(tag: str) -> Level:
    """Level a returned attribute belongs to (patient attributes are returned with the study)."""
    lvl = home_level(tag)
    for computed_level, tags in COMPUTED.items():
        if tag in tags and tag not in ("00081190", "00080056"):
            return computed_level
    return lvl


def requested(spec: QuerySpec) -> frozenset[str]:
    return spec.includes | spec.tags()


def wanted(spec: QuerySpec, level: Level) -> set[str]:
    """Tags to return for one shown level (without include_all expansion)."""
    tags = set(REQUIRED[level])
    for tag in requested(spec):
        lvl = owner(tag)
        if lvl == level or (level == Level.STUDY and lvl == Level.PATIENT):
            tags.add(tag)
        elif tag not in KNOWN and level == spec.level:
            tags.add(tag)  # unknown/private attribute: read from an instance of this entity
    if level == Level.PATIENT:
        tags = {t for t in tags if owner(t) == Level.PATIENT}
    return tags


def columns(spec: QuerySpec, caller: Caller) -> list[Any]:
    """The SELECT list for spec.level's rows: which levels are shown and which tags each
    needs is decided here; `archive.query.sql.result_columns` builds the columns."""
    lvl = spec.level
    image_tags: list[str] | None = None
    extra: list[str] = []
    if lvl == Level.IMAGE and not spec.include_all:
        image_tags = sorted(wanted(spec, lvl) - COMPUTED[Level.IMAGE])
    elif lvl in (Level.STUDY, Level.SERIES):
        extra = sorted(t for t in wanted(spec, lvl) if t not in KNOWN)
    return sql.result_columns(lvl, shown_levels(spec), caller, image_tags, extra)


# --- row → data set --------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _vr(tag: str) -> str:
    try:
        return str(dictionary_VR(int(tag, 16))).split(" ")[0]
    except (KeyError, ValueError):
        return "UN"


def _element(vr: str, values: list[Any] | None) -> dict[str, Any]:
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def _resolve_bulk(el: dict[str, Any], url: str | None) -> dict[str, Any] | None:
    uri = el.get("BulkDataURI")
    if isinstance(uri, str) and uri.startswith("bulk:"):
        return {"vr": el["vr"], "BulkDataURI": f"{url}/bulkdata/{uri[5:]}"} if url else None
    if el.get("vr") == "SQ" and el.get("Value"):
        items = [{t: e for t, v in item.items() if (e := _resolve_bulk(v, url)) is not None}
                 for item in el["Value"]]
        return {"vr": "SQ", "Value": items}
    return el


def _urls(spec: QuerySpec, row: Any) -> dict[Level, str]:
    if not spec.root:
        return {}
    out = {Level.STUDY: f"{spec.root}/studies/{row.s_uid}"}
    if RANK[spec.level] >= RANK[Level.SERIES]:
        out[Level.SERIES] = f"{out[Level.STUDY]}/series/{row.se_uid}"
    if spec.level == Level.IMAGE:
        out[Level.IMAGE] = f"{out[Level.SERIES]}/instances/{row.i_uid}"
    return out


def _computed(level: Level, row: Any, urls: dict[Level, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if level == Level.PATIENT:
        out["00201200"] = _element("IS", [row.p_nst])
        out["00201202"] = _element("IS", [row.p_nse])
        out["00201204"] = _element("IS", [row.p_ni])
        return out
    if level == Level.STUDY:
        out["00080061"] = _element("CS", list(row.s_mods or []))
        out["00080062"] = _element("UI", list(row.s_classes or []))
        out["00201206"] = _element("IS", [row.s_nse])
        out["00201208"] = _element("IS", [row.s_ni])
    if level == Level.SERIES:
        out["00201209"] = _element("IS", [row.se_ni])
    if level in (Level.STUDY, Level.IMAGE):
        out["00080056"] = _element("CS", ["ONLINE"])
    if level in urls:
        out["00081190"] = _element("UR", [urls[level]])
    return out


@dataclass(frozen=True, slots=True)
class Shape:
    """What every result of one query carries: computed once per query, not once per row."""

    levels: tuple[Level, ...]
    tags: dict[Level, frozenset[str]]

    @classmethod
    def of(cls, spec: QuerySpec) -> Shape:
        levels = tuple(shown_levels(spec))
        return cls(levels, {lvl: frozenset(wanted(spec, lvl)) for lvl in levels})


def _source(level: Level, row: Any, spec: QuerySpec, tags: frozenset[str]) -> dict[str, Any]:
    if level == Level.PATIENT:
        return loads(row.p_attrs) or {}
    if level == Level.STUDY:
        src = {**(loads(row.s_attrs) or {}), **(loads(row.p_attrs) or {})}
    elif level == Level.SERIES:
        src = loads(row.se_attrs) or {}
    elif spec.include_all:
        return loads(row.i_header) or {}
    else:
        src = {t: loads(v) for t in tags if (v := getattr(row, f"h_{t}", None)) is not None}
    if level == spec.level:
        src |= {t: v for t in tags if t not in KNOWN
                if (v := getattr(row, f"x_{t}", None)) is not None}
    return src


def build(spec: QuerySpec, row: Any, shape: Shape | None = None) -> dict[str, Any]:
    """One result data set (DICOM JSON) for a row of `columns(spec)`."""
    shape = shape or Shape.of(spec)
    urls = _urls(spec, row)
    out: dict[str, Any] = {}
    for level in shape.levels:
        src = _source(level, row, spec, shape.tags[level])
        computed = _computed(level, row, urls)
        tags: Iterable[str] = shape.tags[level]
        if spec.include_all:
            tags = set(tags) | set(src) | set(computed)
        for tag in tags:
            if tag in computed:
                out[tag] = computed[tag]
            elif tag in src:
                el = _resolve_bulk(src[tag], urls.get(Level.IMAGE))
                if el is not None:
                    out[tag] = el
            elif tag != "00080005":
                out[tag] = {"vr": _vr(tag)}
    out.pop("00080005", None)  # JSON and XML answers are Unicode; the door sets a charset
    return dict(sorted(out.items()))

"""QuerySpec → one SQLAlchemy SELECT.

Indexed columns answer the common keys (fast paths for PatientID, names, dates, modality, UIDs);
every other attribute is matched inside the stored DICOM JSON (level `attrs`, or the instance
`header`) with a jsonpath predicate, so any valid key is honoured. Conditions on a lower level
than the query level become correlated EXISTS sub-queries; `visible_to(caller)` and extension
filters are always ANDed on the study table.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeAlias

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    cast,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONPATH

from archive.attributes import LEVEL_KEYWORDS
from archive.caller import Caller
from archive.errors import InvalidQuery
from archive.index.tables import instance, patient, series, study
from archive.index.visibility import visible_to
from archive.query.fold import accent_regex
from archive.query.spec import (
    Condition,
    DateTimeRange,
    Empty,
    FuzzyName,
    Level,
    ListOf,
    Match,
    QuerySpec,
    Range,
    Sequence,
    SingleValue,
    Universal,
    Wildcard,
)

RANK = {Level.PATIENT: 0, Level.STUDY: 1, Level.SERIES: 2, Level.IMAGE: 3}
TABLE = {Level.PATIENT: patient, Level.STUDY: study, Level.SERIES: series, Level.IMAGE: instance}
DOC = {
    Level.PATIENT: patient.c.attrs,
    Level.STUDY: study.c.attrs,
    Level.SERIES: series.c.attrs,
    Level.IMAGE: instance.c.header,
}
CHILD = {Level.PATIENT: Level.STUDY, Level.STUDY: Level.SERIES, Level.SERIES: Level.IMAGE}
LINK = {
    Level.STUDY: study.c.patient_pk == patient.c.pk,
    Level.SERIES: series.c.study_pk == study.c.pk,
    Level.IMAGE: instance.c.series_pk == series.c.pk,
}

# tag → (level, column, kind). Kinds: text, pn, date, time, int, array.
COLUMNS: dict[str, tuple[Level, Any, str]] = {
    "00100020": (Level.PATIENT, patient.c.patient_id, "text"),
    "00100021": (Level.PATIENT, patient.c.issuer, "text"),
    "00100010": (Level.PATIENT, patient.c.patient_name, "pn"),
    "00100030": (Level.PATIENT, patient.c.patient_birth_date, "date"),
    "00100040": (Level.PATIENT, patient.c.patient_sex, "text"),
    "0020000D": (Level.STUDY, study.c.study_uid, "text"),
    "00080020": (Level.STUDY, study.c.study_date, "date"),
    "00080030": (Level.STUDY, study.c.study_time, "time"),
    "00080050": (Level.STUDY, study.c.accession_number, "text"),
    "00200010": (Level.STUDY, study.c.study_id, "text"),
    "00080090": (Level.STUDY, study.c.referring_physician_name, "pn"),
    "00081030": (Level.STUDY, study.c.study_description, "text"),
    "00080061": (Level.STUDY, study.c.modalities, "array"),
    "00080062": (Level.STUDY, study.c.sop_classes, "array"),
    "00201206": (Level.STUDY, study.c.num_series, "int"),
    "00201208": (Level.STUDY, study.c.num_instances, "int"),
    "0020000E": (Level.SERIES, series.c.series_uid, "text"),
    "00080060": (Level.SERIES, series.c.modality, "text"),
    "00200011": (Level.SERIES, series.c.series_number, "int"),
    "0008103E": (Level.SERIES, series.c.series_description, "text"),
    "00080021": (Level.SERIES, series.c.series_date, "date"),
    "00080031": (Level.SERIES, series.c.series_time, "time"),
    "00180015": (Level.SERIES, series.c.body_part, "text"),
    "00400244": (Level.SERIES, series.c.pps_start_date, "date"),
    "00400245": (Level.SERIES, series.c.pps_start_time, "time"),
    "00201209": (Level.SERIES, series.c.num_instances, "int"),
    "00080018": (Level.IMAGE, instance.c.sop_uid, "text"),
    "00080016": (Level.IMAGE, instance.c.sop_class_uid, "text"),
    "00200013": (Level.IMAGE, instance.c.instance_number, "int"),
    "00280010": (Level.IMAGE, instance.c.rows, "int"),
    "00280011": (Level.IMAGE, instance.c.columns, "int"),
    "00280008": (Level.IMAGE, instance.c.number_of_frames, "int"),
}
# Stored archive_fold_name(...) of a PN column (migration 0005, a generated column with its own
# trigram index): folding every name per query costs ~60 µs a row.
FOLDED: dict[str, Any] = {"00100010": literal_column("patient.patient_name_folded")}
# Computed or protocol attributes that exist only in answers.
RETURN_ONLY = frozenset({"00201200", "00201202", "00201204", "00081190", "00080056", "00080054",
                         "00080052", "00080005"})


def _level_tags() -> dict[Level, frozenset[str]]:
    from pydicom.datadict import tag_for_keyword

    return {
        lvl: frozenset(f"{tag_for_keyword(k):08X}" for k in kws if tag_for_keyword(k) is not None)
        for lvl, kws in LEVEL_KEYWORDS.items()
    }


LEVEL_TAGS = _level_tags()


def home_level(tag: str) -> Level:
    """Where an attribute is stored: patient/study/series attrs, else the instance header."""
    if tag in COLUMNS:
        return COLUMNS[tag][0]
    for lvl in (Level.PATIENT, Level.STUDY, Level.SERIES):
        if tag in LEVEL_TAGS[lvl]:
            return lvl
    return Level.IMAGE


# --- indexed columns -------------------------------------------------------------------------

def like_pattern(wildcard: str) -> str:
    out = []
    for ch in wildcard:
        if ch in "\\%_":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _date(value: str) -> dt.date:
    return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def _time(value: str) -> dt.time:
    main, _, frac = value.partition(".")
    return dt.time(int(main[:2]), int(main[2:4]), min(int(main[4:6]), 59), int(frac or 0))


def _scalar_column(col: Any, kind: str, m: Match, tag: str) -> ColumnElement[bool] | None:
    conv: Callable[[Any], Any] = {"date": _date, "time": _time}.get(kind, lambda v: v)
    if kind == "pn":
        col = func.lower(col)
    lower = (lambda v: str(v).lower()) if kind == "pn" else conv
    if isinstance(m, SingleValue):
        return col == lower(m.value)  # type: ignore[no-any-return]
    if isinstance(m, ListOf):
        return col.in_([lower(v) for v in m.values])  # type: ignore[no-any-return]
    if isinstance(m, Wildcard):
        pattern = like_pattern(m.pattern.lower() if kind == "pn" else m.pattern)
        return col.like(pattern, escape="\\")  # type: ignore[no-any-return]
    if isinstance(m, Range):
        parts = []
        if m.low is not None:
            parts.append(col >= conv(m.low))
        if m.high is not None:
            parts.append(col <= conv(m.high))
        return and_(*parts)
    if isinstance(m, Empty):
        return or_(col.is_(None), col == "") if kind in ("text", "pn") else col.is_(None)
    if isinstance(m, FuzzyName):
        folded = FOLDED[tag] if tag in FOLDED else func.archive_fold_name(COLUMNS[tag][1])
        return and_(*[folded.like(f"% {like_pattern(t)}%", escape="\\") for t in m.tokens])
    raise InvalidQuery(f"{tag}: this kind of matching does not apply to the attribute")


def _array_column(col: Any, m: Match) -> ColumnElement[bool]:
    if isinstance(m, SingleValue):
        return col.contains([m.value])  # type: ignore[no-any-return]
    if isinstance(m, ListOf):
        return col.overlap([str(v) for v in m.values])  # type: ignore[no-any-return]
    if isinstance(m, Wildcard):
        member = func.unnest(col).column_valued("member")
        return select(member).where(member.like(like_pattern(m.pattern), escape="\\")).exists()
    if isinstance(m, Empty):
        return func.cardinality(col) == 0
    raise InvalidQuery("this kind of matching does not apply to a multi-valued attribute")


def _moment(value: str) -> dt.datetime:
    main, _, frac = value.partition(".")
    return dt.datetime.combine(_date(main[:8]), _time(main[8:] + "." + (frac or "0")))


def _date_time_clause(date_col: Any, m: DateTimeRange) -> ColumnElement[bool]:
    """Date and time as one moment (date + time is a timestamp in PostgreSQL; a missing time
    counts as midnight). The date-only bounds let the date index narrow the scan first."""
    moment = date_col + func.coalesce(COLUMNS[m.time_tag][1], dt.time(0))
    parts = []
    if m.low is not None:
        parts += [date_col >= _date(m.low), moment >= _moment(m.low)]
    if m.high is not None:
        parts += [date_col <= _date(m.high), moment <= _moment(m.high)]
    return and_(*parts)


def column_clause(cond: Condition) -> ColumnElement[bool] | None:
    _lvl, col, kind = COLUMNS[cond.tag]
    if isinstance(cond.match, DateTimeRange):
        return _date_time_clause(col, cond.match)
    if isinstance(cond.match, Universal):
        return None
    if kind == "array":
        return _array_column(col, cond.match)
    if isinstance(cond.match, FuzzyName) and kind != "pn":
        return None
    return _scalar_column(col, kind, cond.match, cond.tag)


# --- DICOM JSON (jsonpath) -------------------------------------------------------------------

def _jstr(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _regex_escape(text: str) -> str:
    return re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", text)


def _wild_regex(pattern: str) -> str:
    body = "".join(".*" if c == "*" else "." if c == "?" else _regex_escape(c) for c in pattern)
    return f"^{body}$"


def _literal(value: str | int | float) -> str:
    return _jstr(value) if isinstance(value, str) else repr(value)


def _shorten_low(bound: str) -> str:
    """A lower bound without its zero padding, so partial stored values still compare right."""
    head, _, frac = bound.partition(".")
    if frac.strip("0"):
        return bound
    while len(head) > 8 and head.endswith("00"):
        head = head[:-2]
    if len(head) == 6 and head.endswith("0000"):  # TM HH0000 → HH
        head = head[:2]
    return head


def value_predicate(m: Match, vr: str) -> str | None:
    """A jsonpath predicate on `@`, one value of the attribute (PN: one component group)."""
    pn = vr == "PN"
    if isinstance(m, SingleValue):
        if pn:
            return f"@ like_regex {_jstr('^' + _regex_escape(str(m.value)) + '$')} flag \"is\""
        return f"@ == {_literal(m.value)}"
    if isinstance(m, ListOf):
        return "(" + " || ".join(
            value_predicate(SingleValue(v), vr) or "true" for v in m.values
        ) + ")"
    if isinstance(m, Wildcard):
        return f"@ like_regex {_jstr(_wild_regex(m.pattern))} flag \"{'is' if pn else 's'}\""
    if isinstance(m, Range):
        parts = []
        if m.low is not None:
            parts.append(f"@ >= {_jstr(_shorten_low(m.low))}")
        if m.high is not None:
            parts.append(f"@ <= {_jstr(m.high)}")
        return " && ".join(parts)
    if isinstance(m, FuzzyName):
        return " && ".join(
            f"@ like_regex {_jstr(chr(40) + '^|[ ^=,.-])' + accent_regex(t))} flag \"i\""
            for t in m.tokens
        )
    return None


def _accessor(tag: str, vr: str) -> str:
    return f'."{tag}".Value[*]' + (".*" if vr == "PN" else "")


def item_predicate(cond: Condition) -> str | None:
    """A jsonpath predicate on `@`, a data set (or sequence item) holding the attribute."""
    m = cond.match
    if isinstance(m, Universal):
        return None
    if isinstance(m, Empty):
        return f'!exists(@."{cond.tag}".Value[*])'
    if isinstance(m, Sequence):
        inner = [p for p in (item_predicate(c) for c in m.conditions) if p]
        if not inner:
            return None
        return f'exists(@."{cond.tag}".Value[*] ? ({" && ".join(inner)}))'
    pred = value_predicate(m, cond.vr)
    return f"exists(@{_accessor(cond.tag, cond.vr)} ? ({pred}))" if pred else None


def json_clause(doc: Any, cond: Condition) -> ColumnElement[bool] | None:
    pred = item_predicate(cond)
    if pred is None:
        return None
    if isinstance(cond.match, Empty):
        path = f'$."{cond.tag}".Value[*]'
        return not_(doc.op("@?")(cast(literal(path), JSONPATH)))
    return doc.op("@?")(cast(literal(f"$ ? ({pred})"), JSONPATH))  # type: ignore[no-any-return]


def compile_condition(cond: Condition) -> tuple[Level, ColumnElement[bool] | None]:
    if cond.tag in RETURN_ONLY:
        if cond.constrains:
            raise InvalidQuery(f"{cond.tag} is a return key only; it cannot be matched")
        return Level.STUDY, None
    level = home_level(cond.tag)
    if cond.tag in COLUMNS:
        return level, column_clause(cond)
    return level, json_clause(DOC[level], cond)


# --- statements ------------------------------------------------------------------------------

def _exists_below(parent: Level, by_level: dict[Level, list[Any]]) -> ColumnElement[bool] | None:
    child = CHILD.get(parent)
    if child is None:
        return None
    inner = _exists_below(child, by_level)
    own = list(by_level.get(child, []))
    if inner is not None:
        own.append(inner)
    if not own:
        return None
    return exists().where(LINK[child], *own)


def _sensitive(cond: Condition) -> bool:
    m = cond.match
    if isinstance(m, Universal):
        return False
    if isinstance(m, Sequence):
        return True
    if cond.tag not in COLUMNS or COLUMNS[cond.tag][2] == "array":
        return True
    return not isinstance(m, SingleValue | ListOf | Empty)


def value_sensitive(spec: QuerySpec) -> bool:
    """Whether the best plan depends on the values (wildcards, ranges, fuzzy names, arrays,
    stored-JSON keys, extension filters) rather than only on equality with indexed columns;
    also deep pages: a generic plan sees `collection <> $1` and cannot use the partial index
    of visible studies (migration 0005) to skip the offset."""
    return (bool(spec.extension_clauses) or spec.offset > 0
            or any(_sensitive(c) for c in spec.conditions))


def where_clauses(spec: QuerySpec, caller: Caller) -> list[ColumnElement[bool]]:
    """Every WHERE clause of the query at spec.level (visibility always included)."""
    by_level: dict[Level, list[Any]] = defaultdict(list)
    for cond in spec.conditions:
        level, clause = compile_condition(cond)
        if clause is not None:
            by_level[level].append(clause)
    by_level[Level.STUDY] += [visible_to(caller), *spec.extension_clauses]
    q = spec.level
    if q != Level.PATIENT and by_level.get(Level.PATIENT) and value_sensitive(spec):
        # A semi-join on the (small) patient table: the planner finds the matching patients
        # first (pattern/trigram indexes) instead of probing one patient per study in pk order.
        # (Only for value-sensitive queries: those are the ones `page` runs on keys alone.)
        # OFFSET 0 keeps the sub-query from being pulled up into a per-study probe.
        by_level[Level.STUDY].append(study.c.patient_pk.in_(
            select(patient.c.pk).where(*by_level.pop(Level.PATIENT)).offset(0)))
    # Tables of the query level and above are joined; lower levels become EXISTS. At PATIENT
    # level the study table is below, so visibility lands inside the EXISTS over studies.
    direct = [c for lvl, cs in by_level.items() if RANK[lvl] <= RANK[q] for c in cs]
    below = _exists_below(q, by_level)
    return direct + ([below] if below is not None else [])


def from_clause(level: Level) -> Any:
    if level == Level.PATIENT:
        return patient
    joined = study.join(patient, LINK[Level.STUDY])
    if RANK[level] >= RANK[Level.SERIES]:
        joined = series.join(joined, LINK[Level.SERIES])
    if level == Level.IMAGE:
        joined = instance.join(joined, LINK[Level.IMAGE])
    return joined


def key_from(level: Level) -> Any:
    """The tables needed to find the matches' keys: the level and its parents, minus patient
    (patient conditions are a semi-join on study.patient_pk, see where_clauses)."""
    if level == Level.PATIENT:
        return patient
    joined: Any = study
    if RANK[level] >= RANK[Level.SERIES]:
        joined = series.join(joined, LINK[Level.SERIES])
    if level == Level.IMAGE:
        joined = instance.join(joined, LINK[Level.IMAGE])
    return joined


def order_by(spec: QuerySpec) -> list[Any]:
    if spec.level == Level.IMAGE:
        if spec.scoped_to == Level.SERIES:
            return [instance.c.instance_number.asc().nulls_last(), instance.c.pk]
        return [instance.c.pk]
    if spec.level == Level.SERIES:
        if spec.scoped_to == Level.STUDY:
            return [series.c.series_number.asc().nulls_last(), series.c.pk]
        return [series.c.pk]
    return [TABLE[spec.level].c.pk]


def _page(stmt: Select[Any], spec: QuerySpec) -> Select[Any]:
    stmt = stmt.order_by(*order_by(spec))
    if spec.offset:
        stmt = stmt.offset(spec.offset)
    if spec.limit is not None:
        stmt = stmt.limit(spec.limit)
    return stmt


def matching(spec: QuerySpec, caller: Caller, columns: list[Any]) -> Select[Any]:
    """SELECT `columns` FROM the level's joined tables WHERE the query matches (unpaged)."""
    return select(*columns).select_from(from_clause(spec.level)).where(
        true(), *where_clauses(spec, caller)
    )


def keys(spec: QuerySpec, caller: Caller) -> Select[Any]:
    """SELECT the level's pk of every match (no patient join, no wide columns), unpaged."""
    key = TABLE[spec.level].c.pk
    tables = key_from(spec.level) if value_sensitive(spec) else from_clause(spec.level)
    return select(key).select_from(tables).where(true(), *where_clauses(spec, caller))


def page(spec: QuerySpec, caller: Caller, columns: list[Any]) -> Select[Any]:
    """The matches' `columns` in order. A bounded page is found on keys alone (ORDER BY pk
    LIMIT/OFFSET walks an index without touching attrs or patients), then only the page's
    rows are joined to their wide columns. Plain equality keys (UIDs, PatientID) keep the
    one-level query: it finds its few rows directly and plans faster."""
    if not value_sensitive(spec) or (spec.limit is None and not spec.offset):
        return _page(matching(spec, caller, columns), spec)
    key = TABLE[spec.level].c.pk
    found = _page(keys(spec, caller), spec).subquery("page")
    return select(*columns).select_from(
        from_clause(spec.level).join(found, found.c.pk == key)
    ).order_by(*order_by(spec))


def more_after(spec: QuerySpec, caller: Caller) -> Select[Any]:
    """One row if any match lies beyond the page (for the 'more results' Warning)."""
    stmt = keys(spec, caller).order_by(*order_by(spec))
    return stmt.offset(spec.offset + (spec.limit or 0)).limit(1)


StudyPks: TypeAlias = Select[Any]  # a SELECT of matching study pks (cohorts, facets)


def study_pk_select(spec: QuerySpec, caller: Caller) -> StudyPks:
    """Distinct study pks of the studies that hold a match of `spec` (for cohort definitions)."""
    if spec.level == Level.PATIENT:
        raise InvalidQuery("study_pk_select needs a STUDY, SERIES or IMAGE level query")
    if spec.level == Level.STUDY and all(compile_condition(c)[0] != Level.PATIENT
                                         for c in spec.conditions):
        # no patient key: neither the patient join nor DISTINCT (one row per study): the
        # join and de-duplication were most of a 25,000-study selection's time (facet counts)
        return select(study.c.pk).where(true(), *where_clauses(spec, caller))
    return matching(spec, caller, [study.c.pk]).distinct()


# --- result columns (archive.query.results decides which) ------------------------------------

def _first_instance_value(level: Level, tag: str) -> Any:
    """The tag's element in one instance of the study/series (for attributes not indexed)."""
    has = instance.c.header.has_key(tag)
    if level == Level.SERIES:
        q = select(instance.c.header[tag]).where(LINK[Level.IMAGE], has)
    else:
        q = select(instance.c.header[tag]).select_from(
            series.join(instance, LINK[Level.IMAGE])
        ).where(LINK[Level.SERIES], has)
    return q.limit(1).scalar_subquery()


def _text(col: Any) -> Any:
    """JSONB as its text: decoded by `fastjson.loads`, several times faster than the driver's
    `json.loads` codec (decoding dominated result-heavy pages)."""
    return cast(col, Text)


def result_columns(lvl: Level, shown: list[Level], caller: Caller,
                   image_tags: list[str] | None, extra_tags: list[str]) -> list[Any]:
    """The SELECT list for `lvl`'s rows: the attributes of the `shown` levels; at IMAGE the
    header elements `image_tags` (None: the whole header); at STUDY/SERIES the `extra_tags`
    (not indexed) read from one instance of the entity."""
    if lvl == Level.PATIENT:
        counts = select(
            func.count(study.c.pk), func.coalesce(func.sum(study.c.num_series), 0),
            func.coalesce(func.sum(study.c.num_instances), 0),
        ).where(study.c.patient_pk == patient.c.pk, visible_to(caller))
        return [
            patient.c.pk.label("p_pk"), _text(patient.c.attrs).label("p_attrs"),
            counts.with_only_columns(func.count(study.c.pk)).scalar_subquery().label("p_nst"),
            counts.with_only_columns(func.coalesce(func.sum(study.c.num_series), 0))
            .scalar_subquery().label("p_nse"),
            counts.with_only_columns(func.coalesce(func.sum(study.c.num_instances), 0))
            .scalar_subquery().label("p_ni"),
        ]
    cols: list[Any] = [study.c.pk.label("s_pk"), study.c.study_uid.label("s_uid")]
    if Level.STUDY in shown:  # only the levels returned are read (JSON decoding dominates)
        cols += [
            _text(patient.c.attrs).label("p_attrs"), _text(study.c.attrs).label("s_attrs"),
            study.c.modalities.label("s_mods"), study.c.sop_classes.label("s_classes"),
            study.c.num_series.label("s_nse"), study.c.num_instances.label("s_ni"),
        ]
    if RANK[lvl] >= RANK[Level.SERIES]:
        cols += [series.c.pk.label("se_pk"), series.c.series_uid.label("se_uid")]
    if Level.SERIES in shown:
        cols += [_text(series.c.attrs).label("se_attrs"), series.c.num_instances.label("se_ni")]
    if lvl == Level.IMAGE:
        cols += [instance.c.pk.label("i_pk"), instance.c.sop_uid.label("i_uid")]
        if image_tags is None:
            cols.append(_text(instance.c.header).label("i_header"))
        else:
            cols += [_text(instance.c.header[t]).label(f"h_{t}") for t in image_tags]
    elif lvl in (Level.STUDY, Level.SERIES):
        cols += [_first_instance_value(lvl, t).label(f"x_{t}") for t in extra_tags]
    return cols

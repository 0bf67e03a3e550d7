"""Clinical data per case (MIDRC dictionary core): validate a whole batch, then write it at once.

A batch is JSON (a list of case objects with nested tests, conditions, medications,
procedures, observations and studies) or one CSV/TSV table. Every value is checked first and
every problem is reported with its line, column and reason; a batch with any problem writes
nothing. Re-importing upserts: a case's columns present in the batch are replaced, and a child
list present for a case replaces that case's rows of that kind. Dates are never accepted, only
day offsets from the case's index event.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archive.commons.rows import RowError, RowErrors
from archive.errors import InvalidRequest
from archive.index import commons_clinical as clinical_rows
from archive.index.commons_tables import (
    case_study,
    clinical_condition,
    clinical_procedure,
    covid_test,
    medication,
    observation,
)
from archive.index.handles import Connection
from archive.instance import is_valid_uid

SEX = ("Female", "Male", "Not Reported")
RACE = ("American Indian or Alaska Native", "Asian", "Black or African American",
        "Native Hawaiian or other Pacific Islander", "Other", "White", "Not Reported")
ETHNICITY = ("Hispanic or Latino", "Not Hispanic or Latino", "Not Reported")
YES_NO = ("Yes", "No", "Indeterminate", "Not Reported")
INDEX_EVENT = ("COVID-19 Test", "Long COVID Diagnosis", "Study Enrollment",
               "First Imaging Study")
TEST_METHOD = ("RT-PCR", "Rapid antigen test", "Antibody test", "Not Reported")
TEST_RESULT = ("Positive", "Negative", "Indeterminate", "Not Reported")
ALIASES = {"unknown": "Not Reported", "f": "Female", "m": "Male", "pcr": "RT-PCR"}
_DATE = re.compile(r"^\s*(19|20)\d\d-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])([T ].*)?$")
_ID = re.compile(r"^[^\\\x00-\x1f]{1,64}$")


class Bad(ValueError):
    """A value's problem, turned into a RowError by the caller that knows line and column."""


# ---- value checkers: raw value (str from CSV, any from JSON) → stored value -------------------
Check = Callable[[Any], Any]


def _text(limit: int = 256) -> Check:
    def check(v: Any) -> Any:
        if v is None or v == "":
            return None
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise Bad("must be text")
        s = str(v).strip()
        if len(s) > limit:
            raise Bad(f"longer than {limit} characters")
        if _DATE.match(s):
            raise Bad("looks like a calendar date; only day offsets are accepted")
        return s or None
    return check


def _enum(choices: tuple[str, ...]) -> Check:
    lookup = {c.lower(): c for c in choices} | {
        k: v for k, v in ALIASES.items() if v in choices}

    def check(v: Any) -> Any:
        if v is None or v == "":
            return None
        if not isinstance(v, str) or v.strip().lower() not in lookup:
            raise Bad(f"{v!r} is not one of: {', '.join(choices)}")
        return lookup[v.strip().lower()]
    return check


def _int(low: int = -36500, high: int = 36500, required: bool = False) -> Check:
    def check(v: Any) -> Any:
        if v is None or v == "":
            if required:
                raise Bad("is required")
            return None
        if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise Bad(f"{v!r} is not a whole number")
        try:
            n = int(v.strip()) if isinstance(v, str) else int(v)
        except (ValueError, TypeError):
            if isinstance(v, str) and _DATE.match(v):
                raise Bad("is a calendar date; give days from the index event") from None
            raise Bad(f"{v!r} is not a whole number") from None
        if not low <= n <= high:
            raise Bad(f"{n} is outside {low}..{high}")
        return n
    return check


def _bool(v: Any) -> Any:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("yes", "true", "1", "y"):
        return True
    if s in ("no", "false", "0", "n"):
        return False
    raise Bad(f"{v!r} is not Yes or No")


def _case_id(v: Any) -> Any:
    if v is None or not isinstance(v, str | int) or not _ID.match(str(v).strip()):
        raise Bad("is required: the case's de-identified PatientID (1-64 characters)")
    return str(v).strip()


def _zip(v: Any) -> Any:
    if v is None or v == "":
        return None
    s = str(v).strip()
    if not re.fullmatch(r"[0-9]{3}", s):
        raise Bad("must be the first 3 digits of the ZIP code (000 for small areas)")
    return s


def _uid(v: Any) -> Any:
    if not is_valid_uid(v):
        raise Bad(f"{v!r} is not a valid UID")
    return v


def _age(v: Any) -> Any:
    return _int(0, 150)(v)


CASE_COLUMNS: dict[str, Check] = {
    "case_id": _case_id, "site": _text(64), "sex": _enum(SEX), "race": _enum(RACE),
    "ethnicity": _enum(ETHNICITY), "age_at_index": _age, "age_at_index_gt89": _bool,
    "zip": _zip, "covid19_positive": _enum(YES_NO), "index_event": _enum(INDEX_EVENT),
}


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of child row: its JSON list name, its table and its checked columns."""

    name: str
    table: Any
    columns: dict[str, Check]
    json_names: dict[str, str] = field(default_factory=dict)  # accepted synonyms


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("tests", covid_test, {
        "test_name": _text(64), "test_method": _enum(TEST_METHOD),
        "test_result": _enum(TEST_RESULT), "days_from_index": _int(required=True)},
        {"method": "test_method", "result": "test_result", "test_days_from_index":
         "days_from_index", "name": "test_name", "test_result_text": "test_result"}),
    Kind("conditions", clinical_condition, {
        "name": _text(), "code": _text(64), "code_system": _text(64),
        "days_start": _int(), "days_end": _int()},
        {"condition_name": "name", "condition_code": "code",
         "condition_code_system": "code_system", "days_to_condition_start": "days_start",
         "days_to_condition_end": "days_end"}),
    Kind("medications", medication, {
        "name": _text(), "code": _text(64), "code_system": _text(64),
        "medication_type": _text(64), "days_start": _int(), "days_end": _int()},
        {"medication_name": "name", "medication_code": "code", "type": "medication_type",
         "medication_code_system": "code_system", "days_to_medication_start": "days_start",
         "days_to_medication_end": "days_end"}),
    Kind("procedures", clinical_procedure, {
        "name": _text(), "code": _text(64), "code_system": _text(64),
        "days_start": _int(), "days_end": _int()},
        {"procedure_name": "name", "procedure_code": "code",
         "days_to_procedure_start": "days_start", "days_to_procedure_end": "days_end"}),
    Kind("observations", observation, {
        "name": _text(128), "answer": _text(1024), "days": _int()},
        {"observation_name": "name", "observation_answer": "answer",
         "days_to_observation": "days"}),
    Kind("studies", case_study, {
        "study_uid": _uid, "days_to_study": _int(required=True)},
        {"StudyInstanceUID": "study_uid"}),
)}
TABLES = ("cases", *KINDS)
CHILD_TABLES = {name: kind.table for name, kind in KINDS.items()}  # list name → its table


@dataclass(slots=True)
class Batch:
    """A validated batch: case upserts and, per kind, the complete new rows of each case."""

    cases: list[dict[str, Any]] = field(default_factory=list)
    children: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    referenced: dict[str, tuple[int, str]] = field(default_factory=dict)  # case → first use

    def counts(self) -> dict[str, int]:
        out = {"cases": len(self.cases)}
        for kind, per_case in self.children.items():
            out[kind] = sum(len(rows) for rows in per_case.values())
        return out


def _check_row(raw: dict[str, Any], columns: dict[str, Check], synonyms: dict[str, str],
               line: int, where: str, errors: list[RowError]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, value in raw.items():
        column = synonyms.get(name, name)
        if column not in columns:
            errors.append(RowError(line, f"{where}{name}", "unknown column"))
            continue
        try:
            row[column] = columns[column](value)
        except Bad as exc:
            errors.append(RowError(line, f"{where}{name}", str(exc)))
    return row


def _case_rules(row: dict[str, Any], line: int, where: str, errors: list[RowError]) -> None:
    """The HIPAA >89 rule: an age above 89 is stored as gt89 = Yes with no age."""
    age = row.get("age_at_index")
    if age is not None and age > 89:
        row["age_at_index"], row["age_at_index_gt89"] = None, True
    elif age is not None and row.get("age_at_index_gt89") is True:
        errors.append(RowError(line, f"{where}age_at_index_gt89",
                               f"is Yes but age_at_index is {age}"))
    elif "age_at_index" in row and "age_at_index_gt89" not in row:
        row["age_at_index_gt89"] = False


def _day_order(row: dict[str, Any], line: int, where: str, errors: list[RowError]) -> None:
    start, end = row.get("days_start"), row.get("days_end")
    if start is not None and end is not None and end < start:
        errors.append(RowError(line, f"{where}days_end", f"{end} is before days_start {start}"))


def _add_child(batch: Batch, kind: Kind, case_id: str, row: dict[str, Any], line: int,
               where: str, errors: list[RowError]) -> None:
    if kind.name == "observations" and not row.get("name"):
        errors.append(RowError(line, f"{where}name", "is required"))
    _day_order(row, line, where, errors)
    batch.children.setdefault(kind.name, {}).setdefault(case_id, []).append(row)
    batch.referenced.setdefault(case_id, (line, f"{where}case_id"))


# ---- JSON ------------------------------------------------------------------------------------
def parse_json(body: bytes) -> Batch:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    try:  # "\\ud800" is valid JSON with no UTF-8 form: PostgreSQL would refuse it with a 500
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest("body must not contain lone surrogates") from exc
    items = doc.get("cases") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise InvalidRequest('expected a JSON list of cases or {"cases": [...]}')
    batch, errors, seen = Batch(), list[RowError](), set[str]()
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            errors.append(RowError(n, "", "each case must be a JSON object"))
            continue
        _json_case(batch, item, n, errors, seen)
    if errors:
        raise RowErrors(errors)
    return batch


def _json_case(batch: Batch, item: dict[str, Any], n: int, errors: list[RowError],
               seen: set[str]) -> None:
    fields = {k: v for k, v in item.items() if k not in KINDS}
    if "case_id" not in fields:
        fields = {"case_id": item.get("submitter_id"), **{
            k: v for k, v in fields.items() if k != "submitter_id"}}
    row = _check_row(fields, CASE_COLUMNS, {}, n, "", errors)
    case_id = row.get("case_id")
    if case_id is None:
        return
    if case_id in seen:
        errors.append(RowError(n, "case_id", f"case {case_id} appears twice in the batch"))
    seen.add(case_id)
    _case_rules(row, n, "", errors)
    batch.cases.append(row)
    for kind in KINDS.values():
        rows = item.get(kind.name)
        if rows is None:
            continue
        if not isinstance(rows, list):
            errors.append(RowError(n, kind.name, "must be a list"))
            continue
        batch.children.setdefault(kind.name, {})[case_id] = []
        for i, child in enumerate(rows, start=1):
            where = f"{kind.name}[{i}]."
            if not isinstance(child, dict):
                errors.append(RowError(n, where[:-1], "must be an object"))
                continue
            checked = _check_row(child, kind.columns, kind.json_names, n, where, errors)
            _add_child(batch, kind, case_id, checked, n, where, errors)


# ---- CSV / TSV -------------------------------------------------------------------------------
def parse_table(text: str, table: str, delimiter: str) -> Batch:
    """One table per file: `cases` or a child kind (tests, conditions, ...), with a header row."""
    if table not in TABLES:
        raise InvalidRequest(f"unknown clinical table {table!r}; one of {', '.join(TABLES)}")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidRequest("the file is empty") from None
    except csv.Error as exc:
        raise RowErrors([RowError(1, "", f"malformed header: {exc}")]) from exc
    if "case_id" not in header and "submitter_id" not in header:
        raise RowErrors([RowError(1, "case_id", "required column is missing")])
    batch, errors, seen = Batch(), list[RowError](), set[str]()
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            _table_row(batch, table, header, values, reader.line_num, errors, seen)
    except csv.Error as exc:
        errors.append(RowError(reader.line_num, "", f"malformed CSV: {exc}"))
    if errors:
        raise RowErrors(errors)
    return batch


def _table_row(batch: Batch, table: str, header: list[str], values: list[str], line: int,
               errors: list[RowError], seen: set[str]) -> None:
    if len(values) != len(header):
        errors.append(RowError(line, "", f"has {len(values)} fields, the header has "
                                         f"{len(header)}"))
        return
    raw = dict(zip(header, values, strict=True))
    if "submitter_id" in raw and "case_id" not in raw:
        raw["case_id"] = raw.pop("submitter_id")
    if table == "cases":
        row = _check_row(raw, CASE_COLUMNS, {}, line, "", errors)
        if row.get("case_id") in seen:
            errors.append(RowError(line, "case_id", f"case {row['case_id']} appears twice"))
        if row.get("case_id"):
            seen.add(row["case_id"])
            _case_rules(row, line, "", errors)
            batch.cases.append(row)
        return
    kind = KINDS[table]
    try:
        case_id = _case_id(raw.pop("case_id"))
    except Bad as exc:
        errors.append(RowError(line, "case_id", str(exc)))
        return
    row = _check_row(raw, kind.columns, kind.json_names, line, "", errors)
    _add_child(batch, kind, case_id, row, line, "", errors)


def parse(body: bytes, content_type: str, table: str | None) -> Batch:
    if content_type in ("application/json", ""):
        if table not in (None, "cases"):
            raise InvalidRequest("?table= applies to CSV/TSV; JSON nests child rows in cases")
        return parse_json(body)
    delimiter = {"text/csv": ",", "text/tab-separated-values": "\t"}.get(content_type)
    if delimiter is None:
        raise InvalidRequest(f"unsupported clinical data type {content_type!r}: use "
                             "application/json, text/csv or text/tab-separated-values")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the file is not UTF-8: {exc}") from exc
    return parse_table(text, table or "cases", delimiter)


def content_type_for(path_name: str) -> str:
    lower = path_name.lower()
    if lower.endswith(".json"):
        return "application/json"
    if lower.endswith((".tsv", ".tab", ".txt")):
        return "text/tab-separated-values"
    return "text/csv"


# ---- write -----------------------------------------------------------------------------------
async def write(conn: Connection, batch: Batch) -> dict[str, int]:
    """Write a validated batch in the caller's transaction; unknown cases fail the batch."""
    await clinical_rows.upsert_cases(conn, batch.cases)
    await _require_cases(conn, batch)
    for kind_name, per_case in batch.children.items():
        await clinical_rows.replace_children(conn, KINDS[kind_name].table, per_case)
    return batch.counts()


async def _require_cases(conn: Connection, batch: Batch) -> None:
    wanted = set(batch.referenced)
    if not wanted:
        return
    missing = sorted(wanted - await clinical_rows.known_cases(conn, wanted))
    if missing:
        raise RowErrors([RowError(*batch.referenced[c], f"case {c} is not known: import its "
                                                        "case row first (or in the same batch)")
                         for c in missing])

"""OpenAPI 3.1 description of the /commons endpoints, served at GET /commons/openapi.json.

The list of `commons.` QIDO-RS keys is generated from archive.index.commons_fields, so the document
cannot drift from what the server accepts.
"""

from __future__ import annotations

from typing import Any

from archive.commons.clinical import CASE_COLUMNS, KINDS
from archive.index.commons_attributes import CODED_ITEM_TAG, CREATOR, CREATOR_TAG
from archive.index.commons_fields import FIELDS


def _ok(description: str, *types: str) -> dict[str, Any]:
    return {"200": {"description": description,
                    "content": {t: {} for t in (types or ("application/json",))}}}


ERRORS = {"400": {"description": "invalid request; JSON {error, status[, errors: "
                                 "[{line, column, reason}]]}"},
          "404": {"description": "not found (or not visible to the caller)"}}


def _param(name: str, description: str, required: bool = False,
           where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": {"type": "string"}}


def _keys() -> list[dict[str, Any]]:
    return [{"key": f.key, "type": f.kind, "description": f.doc,
             "private_tag": f.tag, "vr": f.vr if f.tag else None}
            for f in FIELDS.values()] + [
        {"key": "commons.observation.<name>", "type": "text",
         "description": "answer of the case's observation <name> (match only)"}]


# What any operation may answer besides its own codes (issue 13: Schemathesis checks that every
# status the archive sends is documented for the operation).
ANY = {"401": {"description": "no valid credential, and the route is not open to anonymous "
                              "callers"},
       "403": {"description": "the caller's role does not allow this"},
       "503": {"description": "the database is unavailable; retry after `Retry-After` seconds"}}
WITH_BODY = {"408": {"description": "the request body stalled (http_body_idle_timeout)"},
             "413": {"description": "the request body is too large"},
             "415": {"description": "unsupported Content-Type (send application/json)"}}


def _op(summary: str, responses: dict[str, Any], params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary,
                          "responses": ANY | (WITH_BODY if body else {}) | responses | ERRORS}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


FILTERS = ("Any QIDO-RS matching key (DICOM keyword or tag, any level) and any commons.* key; "
           "same matching rules as QIDO-RS. commons.* values use the DICOM grammar too "
           "(PS3.18 §8.3.4): `\\` separates alternatives, `a-b` is a range with optional ends; "
           "`,` lists and `a..b` ranges are accepted as aliases.")
COHORT = _param("cohort", "cohort id (UUID)", True, "path")


def document(server: str) -> dict[str, Any]:
    case_schema = {"type": "object", "required": ["case_id"],
                   "properties": {c: {"type": "string"} for c in CASE_COLUMNS}
                   | {k: {"type": "array", "items": {"type": "object", "properties": {
                       c: {"type": "string"} for c in kind.columns}}}
                      for k, kind in KINDS.items()}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Imaging Commons Archive - commons API", "version": "1",
                 "description": "Clinical data, LOINC-harmonized study descriptions, sites, "
                 "datasets and cohorts. QIDO-RS on /dicom-web (and on every cohort root) "
                 "accepts the commons.* keys listed in x-commons-query-keys; includefield="
                 f"commons.<key> returns values in the private block '{CREATOR}' "
                 f"({CREATOR_TAG[:4]},{CREATOR_TAG[4:]}) and the code as a coded item in "
                 f"({CODED_ITEM_TAG[:4]},{CODED_ITEM_TAG[4:]}) and ProcedureCodeSequence."},
        "servers": [{"url": server}],
        "x-commons-query-keys": _keys(),
        "paths": {
            "/commons/cases": {"post": _op(
                "Import clinical data (all-or-nothing; re-import upserts)", _ok("counts"),
                [_param("table", "CSV/TSV only: cases | " + " | ".join(KINDS))],
                {"content": {"application/json": {"schema": {
                    "type": "array", "items": case_schema}},
                    "text/csv": {}, "text/tab-separated-values": {}}})},
            "/commons/cases/{case}": {"get": _op(
                "A case's clinical data and linked studies", _ok("case"),
                [_param("case", "case id (de-identified PatientID)", True, "path")])},
            "/commons/descriptions": {"get": _op(
                "Raw study descriptions per (modality, description) key with study counts",
                _ok("descriptions"), [_param("status", "unmapped (default) | mapped | all")])},
            "/commons/mappings": {
                "get": _op("Description mappings", _ok("mappings"),
                           [_param("status", "proposed | approved | rejected")]),
                "post": _op("Set mappings (re-applied to existing studies)", _ok("results"),
                            body={"content": {"application/json": {"schema": {
                                "type": "object", "properties": {
                                    "modality": {"type": "string"},
                                    "description": {"type": "string"},
                                    "loinc_code": {"type": "string"},
                                    "status": {"enum": ["proposed", "approved", "rejected"]},
                                    "replace": {"type": "boolean"}}}}}})},
            "/commons/loinc": {"get": _op("LOINC Playbook terms", _ok("terms"))},
            "/commons/sites": {"get": _op("Sites with counts", _ok("sites"))},
            "/commons/datasets": {"get": _op("Datasets (batches) with counts", _ok("datasets"))},
            "/commons/facets": {"get": _op(
                "Counts per value of a field under filters", _ok("facets"),
                [_param("field", "a commons.* key or ModalitiesInStudy (repeatable)", True),
                 _param("<filter>", FILTERS)])},
            "/commons/cohorts": {
                "get": _op("Cohorts", _ok("cohorts")),
                "post": _op("Freeze a cohort from filters", {"201": {"description": "cohort"}},
                            body={"content": {"application/json": {"schema": {
                                "type": "object", "properties": {
                                    "name": {"type": "string"},
                                    "filters": {"type": "object", "description": FILTERS},
                                    "query": {"type": "string",
                                              "description": "filters as a query string"}}}}}})},
            "/commons/cohorts/{cohort}": {"get": _op("A cohort", _ok("cohort"), [COHORT])},
            "/commons/cohorts/{cohort}/manifest": {"get": _op(
                "Series manifest with WADO-RS URLs (JSON adds instances and the clinical table)",
                _ok("manifest", "application/json", "text/csv"),
                [COHORT, _param("format", "csv | json (else Accept)")])},
            "/commons/cohorts/{cohort}/clinical": {"get": _op(
                "The cohort's studies joined with clinical data",
                _ok("table", "application/json", "text/csv"),
                [COHORT, _param("format", "csv | json (else Accept)")])},
            "/commons/cohorts/{cohort}/files/{sop}": {"get": _op(
                "A member instance exactly as stored (supports Range)",
                _ok("Part-10 file", "application/dicom"),
                [COHORT, _param("sop", "SOP Instance UID", True, "path")])},
            "/commons/cohorts/{cohort}/dicom-web/studies": {"get": _op(
                "DICOMweb service root (QIDO-RS, WADO-RS) limited to the cohort",
                _ok("as DICOMweb", "application/dicom+json"), [COHORT])},
            **curation_paths(),
        },
    }


DATASET = _param("dataset", "dataset (batch) id", True, "path")
CURATOR = {"403": {"description": "a curator action: needs the curator credential"}}
CONFLICT = {"409": {"description": "refused by the archive's state; JSON {error, status"
                                   "[, shortfall: [{attributes, values, needed, available}]]}"}}


def curation_paths() -> dict[str, Any]:
    """Issue 16: staged datasets, releases, overrides, test sets, LOINC suggestions."""
    return {
        "/commons/datasets/{dataset}/qc": {"get": _op(
            "QC before release: unmapped descriptions (with suggestions), cases without clinical "
            "data, studies without a case, PS3.15 E.1 PHI findings, duplicates (curator)",
            _ok("report") | CURATOR, [DATASET])},
        "/commons/datasets/{dataset}/release": {"post": _op(
            "Release a dataset: split new cases open/sequestered (stratified, sticky, seeded), "
            "publish the open part, record a numbered release (curator)",
            {"201": {"description": "the release"}} | CURATOR | CONFLICT, [DATASET],
            {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "notes": {"type": "string"}, "seed": {"type": "integer"}}}}}})},
        "/commons/releases": {"get": _op("Numbered releases", _ok("releases"))},
        "/commons/releases/{number}": {"get": _op(
            "One release with counts per partition, stratum and marginal cell", _ok("release"),
            [_param("number", "release number", True, "path")])},
        "/commons/cases/{case}/partition": {"post": _op(
            "Override one released case's partition, with a reason (curator)",
            _ok("the case's partition and override history") | CURATOR,
            [_param("case", "case id", True, "path")],
            {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "partition": {"enum": ["open", "sequestered"]},
                "reason": {"type": "string"}}}}}})},
        "/commons/testsets": {
            "get": _op("Test sets (curator)", _ok("testsets") | CURATOR),
            "post": _op(
                "Draw a task-based test set from the sequestered pool as a restricted cohort "
                "(curator)", {"201": {"description": "cohort + testset distribution"}}
                | CURATOR | CONFLICT,
                body={"content": {"application/json": {"schema": {
                    "type": "object", "required": ["name", "size"], "properties": {
                        "name": {"type": "string"}, "size": {"type": "integer"},
                        "filters": {"type": "object", "description": FILTERS},
                        "query": {"type": "string"},
                        "targets": {"type": "object", "description":
                                    '{"attribute": {"value": proportion}}, e.g. '
                                    '{"covid19_positive": {"Yes": 0.5, "No": 0.5}}'},
                        "reuse": {"type": "boolean"}, "seed": {"type": "integer"}}}}}})},
        "/commons/loinc/suggest": {"get": _op(
            "Suggested LOINC codes for a study description, best first", _ok("suggestions"),
            [_param("description", "raw StudyDescription", True),
             _param("modality", "modality or comma-separated list (CR,DX)"),
             _param("limit", "1-20, default 3")])},
    }

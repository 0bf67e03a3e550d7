"""Every `commons.` query key: what it matches, how it reaches a study, how it is returned.

One table drives QIDO filtering (filters.py), includefield results (attributes.py), facets and
cohorts, so a key means the same thing everywhere. A key's *scope* says how a row of its table
reaches a study: study columns directly; the study's harmonization row and LOINC term; or the
case (PatientID = case id) and its clinical rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, func

from archive.index.commons_tables import (
    clinical_case,
    clinical_condition,
    clinical_procedure,
    covid_test,
    loinc_term,
    medication,
    observation,
    study_case,
    study_harmonization,
)
from archive.index.tables import study

PREFIX = "commons."
sh, sc = study_harmonization, study_case


@dataclass(frozen=True, slots=True)
class Scope:
    """How rows carrying a key's column are joined to study pks."""

    source: FromClause
    study_pk: Any
    case_id: Any | None


SCOPES: dict[str, Scope] = {
    "study": Scope(study, study.c.pk, None),
    "loinc": Scope(sh.outerjoin(loinc_term, loinc_term.c.code == sh.c.loinc_code),
                   sh.c.study_pk, None),
    "case": Scope(sc.join(clinical_case, clinical_case.c.case_id == sc.c.case_id),
                  sc.c.study_pk, sc.c.case_id),
    "test": Scope(sc.join(covid_test, covid_test.c.case_id == sc.c.case_id),
                  sc.c.study_pk, sc.c.case_id),
    "condition": Scope(sc.join(clinical_condition, clinical_condition.c.case_id == sc.c.case_id),
                       sc.c.study_pk, sc.c.case_id),
    "medication": Scope(sc.join(medication, medication.c.case_id == sc.c.case_id),
                        sc.c.study_pk, sc.c.case_id),
    "procedure": Scope(sc.join(clinical_procedure, clinical_procedure.c.case_id == sc.c.case_id),
                       sc.c.study_pk, sc.c.case_id),
    "observation": Scope(sc.join(observation, observation.c.case_id == sc.c.case_id),
                         sc.c.study_pk, sc.c.case_id),
}


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    kind: str  # text | int | uint | bool
    scope: str
    column: Any
    doc: str
    tag: str | None = None  # private element (0011,10xx) carrying it in results
    vr: str = "LO"
    extra: ColumnElement[bool] | None = None  # fixed condition (e.g. positive tests only)


_days_from_study = covid_test.c.days_from_index - sc.c.days_to_study
_positive = func.lower(covid_test.c.test_result) == "positive"
_negative = func.lower(covid_test.c.test_result) == "negative"

FIELDS: dict[str, Field] = {f.key: f for f in (
    Field("commons.site", "text", "study", study.c.site, "contributing site", "00111010"),
    Field("commons.dataset", "text", "study", study.c.dataset,
          "dataset (submission batch, e.g. SITE_20260301)", "00111011"),
    Field("commons.study_description", "text", "study", study.c.study_description,
          "the study description as sent (free text: case-insensitive, * and ? wildcards)"),
    Field("commons.loinc_code", "text", "loinc", sh.c.loinc_code,
          "harmonized LOINC Playbook code", "00111001"),
    Field("commons.loinc_long_common_name", "text", "loinc", loinc_term.c.long_common_name,
          "LOINC Long Common Name (the harmonized study description)", "00111002", "LT"),
    Field("commons.loinc_system", "text", "loinc", loinc_term.c.body_system,
          "LOINC system / body region", "00111003"),
    Field("commons.loinc_method", "text", "loinc", loinc_term.c.method,
          "LOINC method (XR, XR.portable, CT, CT.angio, ...)", "00111004"),
    Field("commons.loinc_contrast", "text", "loinc", loinc_term.c.contrast,
          "LOINC contrast timing (W, WO, WO & W)", "00111005"),
    Field("commons.mapping_version", "int", "loinc", sh.c.mapping_version,
          "mapping version that set the study's code", "00111006", "SL"),
    Field("commons.case.id", "text", "case", clinical_case.c.case_id,
          "case id (the de-identified PatientID)", "00111020"),
    Field("commons.case.site", "text", "case", clinical_case.c.site,
          "site the case was submitted by", "0011102A"),
    Field("commons.case.sex", "text", "case", clinical_case.c.sex,
          "Female | Male | Not Reported", "00111021"),
    Field("commons.case.race", "text", "case", clinical_case.c.race, "race", "00111022"),
    Field("commons.case.ethnicity", "text", "case", clinical_case.c.ethnicity, "ethnicity",
          "00111023"),
    Field("commons.case.age_at_index", "uint", "case", clinical_case.c.age_at_index,
          "age in years at the index event (0-89; see age_at_index_gt89)", "00111024", "SL"),
    Field("commons.case.age_at_index_gt89", "bool", "case", clinical_case.c.age_at_index_gt89,
          "older than 89 at the index event (age not given)", "00111025", "CS"),
    Field("commons.case.zip", "text", "case", clinical_case.c.zip, "3-digit ZIP", "00111028"),
    Field("commons.case.covid19_positive", "text", "case", clinical_case.c.covid19_positive,
          "Yes | No | Indeterminate | Not Reported", "00111026"),
    Field("commons.case.index_event", "text", "case", clinical_case.c.index_event,
          "the day-0 event of all day offsets", "00111027"),
    Field("commons.days_to_study", "int", "case", sc.c.days_to_study,
          "days from the index event to the study", "00111029", "SL"),
    Field("commons.test.name", "text", "test", covid_test.c.test_name,
          "test name (COVID-19)", "00111036"),
    Field("commons.test.method", "text", "test", covid_test.c.test_method,
          "RT-PCR | Rapid antigen test | Not Reported", "00111033"),
    Field("commons.test.result", "text", "test", covid_test.c.test_result,
          "Positive | Negative | Indeterminate | Not Reported", "00111032"),
    Field("commons.test.days_from_index", "int", "test", covid_test.c.days_from_index,
          "test day relative to the index event", "00111034", "SL"),
    Field("commons.test.days_from_study", "int", "test", _days_from_study,
          "test day minus study day (negative: test before the study)", "00111035", "SL"),
    Field("commons.days_from_study_to_pos_covid_test", "int", "test", _days_from_study,
          "days from the study to each positive test (same test row)", "00111030", "SL",
          _positive),
    Field("commons.days_from_study_to_neg_covid_test", "int", "test", _days_from_study,
          "days from the study to each negative test (same test row)", "00111031", "SL",
          _negative),
    Field("commons.condition.code", "text", "condition", clinical_condition.c.code,
          "condition code (e.g. ICD-10 U07.1)", "00111040"),
    Field("commons.condition.name", "text", "condition", clinical_condition.c.name,
          "condition name", "00111041"),
    Field("commons.medication.code", "text", "medication", medication.c.code, "medication code",
          "00111042"),
    Field("commons.medication.name", "text", "medication", medication.c.name, "medication name",
          "00111043"),
    Field("commons.medication.type", "text", "medication", medication.c.medication_type,
          "medication type (Systemic steroids, Vaccine, ...)", "00111044"),
    Field("commons.procedure.code", "text", "procedure", clinical_procedure.c.code,
          "procedure code", "00111045"),
    Field("commons.procedure.name", "text", "procedure", clinical_procedure.c.name,
          "procedure name (e.g. Breathing Support)", "00111046"),
)}

OBSERVATION_PREFIX = "commons.observation."


def field_for(key: str) -> Field | None:
    """The field of a key, including dynamic `commons.observation.<name>` keys."""
    if key in FIELDS:
        return FIELDS[key]
    name = key[len(OBSERVATION_PREFIX):] if key.startswith(OBSERVATION_PREFIX) else ""
    if name and len(name) <= 128:
        return Field(key, "text", "observation", observation.c.answer,
                     f"answer of observation {name!r}",
                     extra=and_(observation.c.name == name))
    return None

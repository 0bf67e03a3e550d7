"""Matching cases (PS3.4 C.2.2.2) run through every door: QIDO-RS, pynetdicom C-FIND, findscu.

Each case: an id, the query keys (keyword, tag or dotted path → value), the query level, the
studies (corpus letters) whose entities must match, and the doors it applies to (fuzzy name
matching and empty-value matching are QIDO-RS parameters with no C-FIND spelling).
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_DOORS = frozenset({"qido", "pynetdicom", "findscu"})


@dataclass(frozen=True)
class Case:
    id: str
    keys: tuple[tuple[str, str], ...]
    expected: frozenset[str]
    level: str = "STUDY"
    doors: frozenset[str] = ALL_DOORS


def case(id: str, keys: dict[str, str], expected: str, level: str = "STUDY",
         doors: frozenset[str] = ALL_DOORS) -> Case:
    return Case(id, tuple(keys.items()), frozenset(expected), level, doors)


QIDO_ONLY = frozenset({"qido"})

CASES = [
    # single value: case-sensitive except PN
    case("patient-id", {"PatientID": "PID-A"}, "A"),
    case("patient-id-by-tag", {"00100020": "PID-B"}, "B"),
    case("patient-id-is-case-sensitive", {"PatientID": "pid-a"}, ""),
    case("pn-exact", {"PatientName": "SMITH^Anna"}, "B"),
    case("pn-case-insensitive", {"PatientName": "smith^anna"}, "B"),
    case("pn-non-ascii", {"PatientName": "Müller^José"}, "A"),
    case("accession", {"AccessionNumber": "ACC-C"}, "C"),
    case("description-case-sensitive", {"StudyDescription": "ct chest"}, ""),
    # wildcards
    case("pn-prefix", {"PatientName": "smith*"}, "BC"),
    case("pn-infix", {"PatientName": "*son*"}, "C"),
    case("pn-question-mark", {"PatientName": "?MITH^*"}, "B"),
    case("pn-non-ascii-wildcard", {"PatientName": "*ÜLLER*"}, "A"),
    case("description-wildcard", {"StudyDescription": "CT*"}, "A"),
    case("accession-question", {"AccessionNumber": "ACC-?"}, "ABC"),
    case("lone-star-is-universal", {"PatientID": "*"}, "ABC"),
    # universal (return key only)
    case("universal", {"PatientName": "", "StudyDate": ""}, "ABC"),
    # UID list
    case("uid-list", {"StudyInstanceUID": "{A}\\{B}"}, "AB"),
    # date / time ranges
    case("date-single", {"StudyDate": "20240115"}, "A"),
    case("date-range", {"StudyDate": "20240101-20240131"}, "A"),
    case("date-open-end", {"StudyDate": "20240201-"}, "B"),
    case("date-open-start", {"StudyDate": "-20231231"}, "C"),
    case("time-range", {"StudyTime": "0800-0900"}, "A"),
    case("time-partial-single", {"StudyTime": "14"}, "B"),
    case("time-range-to-midnight", {"StudyTime": "2300-"}, "C"),
    # date AND time ranges together are one range of moments (PS3.4 C.2.2.2.5.1): from
    # 2023-12-31 12:00 to 2024-02-20 15:00, not 12:00-15:00 on each day (which is B only)
    case("date-time-combined", {"StudyDate": "20231231-20240220", "StudyTime": "1200-1500"}, "ABC"),
    case("date-time-combined-edges", {"StudyDate": "20231231-20240220", "StudyTime": "0900-1400"},
         "AC"),
    case("date-time-combined-open-start", {"StudyDate": "-20240115", "StudyTime": "-0900"}, "AC"),
    case("date-time-combined-open-end", {"StudyDate": "20240115-", "StudyTime": "0900-"}, "B"),
    case("date-range-single-time-stays-per-day", {"StudyDate": "20231231-20240220",
                                                  "StudyTime": "14"}, "B"),
    case("birth-date-range", {"PatientBirthDate": "19700101-19801231"}, "B"),
    # attributes outside the indexed columns (stored DICOM JSON)
    case("json-attribute", {"InstitutionName": "General Hospital"}, "AC"),
    case("json-attribute-wildcard", {"InstitutionName": "Other*"}, "B"),
    case("sequence-path", {"ProcedureCodeSequence.CodeValue": "P1"}, "A"),
    case("sequence-path-by-tag", {"00081032.00080100": "P2"}, "B"),
    case("sequence-same-item", {"ProcedureCodeSequence.CodeValue": "P1",
                                "ProcedureCodeSequence.CodingSchemeDesignator": "OTHER"}, ""),
    case("private-attribute", {"00091001": "alpha"}, "A"),
    # relational: a lower level's attribute at study level
    case("series-attribute-at-study-level", {"Modality": "MR"}, "BC"),
    case("modalities-in-study", {"ModalitiesInStudy": "SR"}, "A"),
    case("modalities-in-study-list", {"ModalitiesInStudy": "SR\\MR"}, "ABC"),
    case("combined", {"PatientName": "smith*", "ModalitiesInStudy": "CT"}, "C"),
    # series and instance levels
    case("series-by-modality", {"Modality": "SR"}, "A", level="SERIES"),
    case("series-by-study", {"StudyInstanceUID": "{C}", "Modality": "MR"}, "C", level="SERIES"),
    case("series-description-wildcard", {"SeriesDescription": "MR series*"}, "BC",
         level="SERIES"),
    case("instance-number", {"InstanceNumber": "2"}, "A", level="IMAGE"),
    case("instance-by-patient", {"PatientID": "PID-B"}, "B", level="IMAGE"),
    # QIDO-RS only
    case("fuzzy-order-and-accents", {"PatientName": "jose muller", "fuzzymatching": "true"},
         "A", doors=QIDO_ONLY),
    case("fuzzy-word-prefix", {"PatientName": "ANNA", "fuzzymatching": "true"}, "B",
         doors=QIDO_ONLY),
    case("fuzzy-off", {"PatientName": "anna", "fuzzymatching": "false"}, "", doors=QIDO_ONLY),
    case("empty-value", {"StudyDescription": '""'}, "C", doors=QIDO_ONLY),
]


def resolve(keys: tuple[tuple[str, str], ...], uids: dict[str, str]) -> list[tuple[str, str]]:
    """Fill {A}-style placeholders with the corpus's study UIDs."""
    return [(k, v.format(**uids)) for k, v in keys]

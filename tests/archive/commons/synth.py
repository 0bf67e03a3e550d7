"""A deterministic synthetic commons: sites, cases with clinical data, tiny imaging studies.

Raw study descriptions are drawn from the shipped Playbook sample (the spellings hospitals
send, with case and spacing varied) plus descriptions no mapping covers, so harmonization
coverage is known in advance. Everything derives from a fixed seed; expected answers are
computed here in Python, independently of the SQL under test.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from typing import Any

from archive.commons.normalize import key
from archive.commons.playbook import read_playbook, shipped_playbook
from tests import factories as f

SITES = ("SITE_A", "SITE_B", "SITE_C")
EXPLICIT_DATASET = {"SITE_B": "SITE_B_20260301"}
UNMAPPED = {"CR": ["CHEST PORTABLE ROUTINE", "OUTSIDE FILM READ"],
            "CT": ["CT OUTSIDE CONSULT", "CT RESEARCH PROTOCOL 7"]}
RACES = ("White", "Black or African American", "Asian", "Other", "Not Reported")


@dataclass
class Study:
    uid_name: str
    case_id: str
    site: str
    modality: str
    description: str
    days_to_study: int | None
    sequestered: bool = False

    @property
    def uid(self) -> str:
        return f.uid(self.uid_name)


@dataclass
class Case:
    case_id: str
    site: str
    sex: str
    race: str
    ethnicity: str
    age: int  # true age; > 89 is reported as gt89
    zip: str
    covid19_positive: str
    tests: list[dict[str, Any]] = field(default_factory=list)
    studies: list[Study] = field(default_factory=list)
    has_clinical: bool = True
    index_event: str = "COVID-19 Test"
    conditions: list[dict[str, Any]] = field(default_factory=list)
    medications: list[dict[str, Any]] = field(default_factory=list)
    procedures: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "site": self.site, "sex": self.sex, "race": self.race,
                "ethnicity": self.ethnicity, "age_at_index": self.age, "zip": self.zip,
                "covid19_positive": self.covid19_positive, "index_event": self.index_event,
                "tests": self.tests, "conditions": self.conditions,
                "medications": self.medications, "procedures": self.procedures,
                "observations": self.observations,
                "studies": [{"study_uid": s.uid, "days_to_study": s.days_to_study}
                            for s in self.studies if s.days_to_study is not None]}


@dataclass
class Commons:
    cases: list[Case]
    codes: dict[tuple[str, str], str]  # approved mapping key → code (from the shipped file)

    @property
    def studies(self) -> list[Study]:
        return [s for c in self.cases for s in c.studies]

    def case(self, case_id: str) -> Case:
        return next(c for c in self.cases if c.case_id == case_id)

    def code_of(self, s: Study) -> str | None:
        return self.codes.get(key([s.modality], s.description))


def _vary(rng: random.Random, text: str) -> str:
    """Spellings differ between sites: case and spacing vary, the words do not."""
    choice = rng.random()
    if choice < 0.3:
        text = text.lower()
    elif choice < 0.5:
        text = "  " + text.replace(" ", "  ", 1) + " "
    return text


def _descriptions() -> dict[str, list[str]]:
    rows = list(csv.DictReader(shipped_playbook().open(encoding="utf-8")))
    out: dict[str, list[str]] = {"CR": [], "CT": []}
    for r in rows:
        mods = r["modality"].split(";")
        raws = [d for d in r["example_raw_descriptions"].split(";") if d.strip()]
        if "CR" in mods:
            out["CR"] += raws[:3]
        elif mods == ["CT"] and "Chest" in r["body_system"]:
            out["CT"] += raws[:3]
    return out


def build(n_cases: int = 240, seed: int = 7) -> Commons:
    rng = random.Random(seed)
    book = read_playbook(shipped_playbook().read_text(encoding="utf-8"))
    codes = {(m.modality_norm, m.description_norm): m.loinc_code for m in book.mappings}
    pool = _descriptions()
    cases = []
    for n in range(n_cases):
        site = SITES[n % len(SITES)]
        age = rng.choice([rng.randint(18, 89), rng.randint(18, 89), rng.randint(90, 99)])
        positive = rng.random() < 0.55
        c = Case(f"{site[-1]}{n:05d}", site, rng.choice(("Female", "Male")),
                 rng.choice(RACES), rng.choice(("Hispanic or Latino", "Not Hispanic or Latino")),
                 age, f"{rng.randint(100, 999)}", "Yes" if positive else "No",
                 has_clinical=n % 20 != 19)
        _events(c, n)
        for t in range(rng.randint(1, 3)):
            result = "Positive" if positive and t == 0 else rng.choice(("Negative", "Positive"))
            c.tests.append({"test_method": rng.choice(("RT-PCR", "Rapid antigen test")),
                            "test_result": result, "days_from_index": rng.randint(-5, 20)})
        for s in range(1 + (n % 4 == 0)):
            modality = "CR" if rng.random() < 0.7 else "CT"
            unmapped = rng.random() < 0.08
            raw = rng.choice(UNMAPPED[modality] if unmapped else pool[modality])
            days = None if n % 10 == 5 else rng.randint(-10, 30)
            c.studies.append(Study(f"synth-{c.case_id}-{s}", c.case_id, site, modality,
                                   _vary(rng, raw), days, sequestered=n % 25 == 24))
        cases.append(c)
    return Commons(cases, codes)


def _events(c: Case, n: int) -> None:
    """Coded clinical events, on fixed rules so the expected answers are easy to state."""
    if n % 7 == 3:
        c.index_event = "Study Enrollment"
    if c.covid19_positive == "Yes":
        c.conditions.append({"name": "COVID-19", "code": "U07.1", "code_system": "ICD-10-CM",
                             "days_start": 0, "days_end": 14})
    if n % 3 == 0:
        c.conditions.append({"name": "Hypertension", "code": "I10", "code_system": "ICD-10-CM"})
    if n % 4 == 1:
        c.medications.append({"name": "dexamethasone", "code": "3264", "code_system": "RxNorm",
                              "medication_type": "Systemic steroids", "days_start": 1,
                              "days_end": 10})
    if n % 5 == 2:
        c.procedures.append({"name": "Breathing Support", "code": "5A1955Z",
                             "code_system": "ICD-10-PCS", "days_start": 2})
    c.observations.append({"name": "smoking_status",
                           "answer": ("Never", "Former", "Current")[n % 3]})


def datasets(commons: Commons, site: str) -> list[Any]:
    """One tiny image per study (16x16) of a site, ready for STOW-RS."""
    out = []
    for s in commons.studies:
        if s.site == site:
            out.append(f.image(s.uid_name, "se1", 1, modality=s.modality, rows=16, columns=16,
                               patient_id=s.case_id, patient_name=f"Case^{s.case_id}",
                               study_description=s.description))
    return out

"""LOINC/RSNA Radiology Playbook terms and seed mappings from a CSV file.

The project ships `archive/data/loinc_playbook.csv` (77 codes verified against two public lists,
with the raw descriptions hospitals actually send); `archive loinc load FILE` replaces it. Rows
whose raw description would map one key to two codes are kept out and reported, because a
description must never map to two codes (the first row, in file order, wins).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from archive.commons.normalize import key
from archive.commons.rows import RowError, RowErrors

CODE = re.compile(r"^[0-9]{1,7}-[0-9]$")
REQUIRED = ("loinc_code", "long_common_name")
# Long Common Name prefix → Playbook "method" (modality) axis.
_METHODS = (("Portable XR", "XR.portable"), ("PET+CT", "PT+CT"), ("CTA", "CT.angio"),
            ("CT Guidance", "CT.guidance"), ("XR", "XR"), ("CT", "CT"), ("MR", "MR"),
            ("PT", "PT"), ("NM", "NM"), ("US", "US"), ("MG", "MG"))


def shipped_playbook() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "loinc_playbook.csv"


def method_from_name(long_common_name: str) -> str | None:
    for prefix, method in _METHODS:
        if long_common_name.startswith(prefix + " "):
            return method
    return None


@dataclass(frozen=True, slots=True)
class Term:
    code: str
    long_common_name: str
    modality: str | None
    body_system: str | None
    method: str | None
    contrast: str | None
    source: str | None

    def row(self) -> dict[str, str | None]:
        return {"code": self.code, "long_common_name": self.long_common_name,
                "modality": self.modality, "body_system": self.body_system,
                "method": self.method, "contrast": self.contrast, "source": self.source}


@dataclass(frozen=True, slots=True)
class SeedMapping:
    modality_norm: str
    description_norm: str
    raw_example: str
    loinc_code: str

    def row(self) -> dict[str, str]:
        return {"modality_norm": self.modality_norm, "description_norm": self.description_norm,
                "raw_example": self.raw_example, "loinc_code": self.loinc_code}


@dataclass(slots=True)
class Playbook:
    terms: list[Term] = field(default_factory=list)
    mappings: list[SeedMapping] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def read_playbook(text: str) -> Playbook:
    """Parse and validate the whole file; raises RowErrors listing every bad row."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise RowErrors([RowError(1, c, "required column is missing") for c in missing])
    book, errors = Playbook(), []
    seen: dict[tuple[str, str], str] = {}
    codes: set[str] = set()
    for line, row in enumerate(reader, start=2):
        code = (row.get("loinc_code") or "").strip()
        name = _clean(row.get("long_common_name"))
        if not CODE.match(code):
            errors.append(RowError(line, "loinc_code", f"not a LOINC code: {code!r}"))
            continue
        if code in codes:
            errors.append(RowError(line, "loinc_code", f"code {code} appears twice"))
            continue
        if name is None:
            errors.append(RowError(line, "long_common_name", "must not be empty"))
            continue
        codes.add(code)
        book.terms.append(Term(code, name, _clean(row.get("modality")),
                               _clean(row.get("body_system")),
                               _clean(row.get("method")) or method_from_name(name),
                               _clean(row.get("contrast")), _clean(row.get("sources"))))
        _seed_rows(book, seen, code, row)
    if errors:
        raise RowErrors(errors)
    return book


def _seed_rows(book: Playbook, seen: dict[tuple[str, str], str], code: str,
               row: dict[str, str]) -> None:
    modalities = [m for m in (row.get("modality") or "").split(";") if m.strip()] or [""]
    for raw in (row.get("example_raw_descriptions") or "").split(";"):
        if not raw.strip():
            continue
        for modality in modalities:
            k = key(modality, raw)
            if k in seen:
                if seen[k] != code:
                    book.conflicts.append(
                        f"{k[0]} {raw.strip()!r}: kept {seen[k]}, not {code}")
                continue
            seen[k] = code
            book.mappings.append(SeedMapping(k[0], k[1], raw.strip(), code))

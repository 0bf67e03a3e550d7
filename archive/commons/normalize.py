"""The harmonization key: (normalized modality, normalized StudyDescription).

MIDRC maps descriptions by exact match after normalization (casefold, trimmed, blanks collapsed,
modality spelling variants merged: CR/DX are one radiography group, PT/CT one PET-CT group).
The same function builds the key for a mapping and for a study, so the two always agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

BLANK = "[blank]"
_BLANKS = {"", "nan", "none", "<none>", "(blank)", "[blank]", "null"}
# Objects that say nothing about how the study was acquired.
NON_IMAGE = frozenset({"SR", "PR", "KO", "SEG", "RTSTRUCT", "REG", "DOC", "FID", "RWV"})
_WS = re.compile(r"\s+")


def normalize_description(raw: str | None) -> str:
    text = _WS.sub(" ", (raw or "").strip()).casefold()
    return BLANK if text in _BLANKS else text


def normalize_modality(modalities: Iterable[str] | str | None) -> str:
    """One group name for a study's set of modalities (or a mapping's modality field)."""
    if isinstance(modalities, str):
        modalities = re.split(r"[;,\s\\]+", modalities)
    mods = {m.strip().upper() for m in modalities or () if m and m.strip()}
    mods = {m for m in mods if m.casefold() not in _BLANKS}
    if mods - NON_IMAGE:
        mods -= NON_IMAGE
    if not mods:
        return BLANK
    if mods <= {"CR", "DX"}:
        return "CR,DX"
    if "CTPT" in mods or ("PT" in mods and mods <= {"CT", "PT", "CTPT"}):
        return "CT,PT"
    return ",".join(sorted(mods))


def key(modalities: Iterable[str] | str | None, description: str | None) -> tuple[str, str]:
    return normalize_modality(modalities), normalize_description(description)

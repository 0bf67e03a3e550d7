"""Radiology study-description features: the rules half of LOINC suggestion.

Study descriptions are short, abbreviated and vendor-shaped (`XR CHEST PA/LAT`, `CT A/P W/WO`,
`Thorax^PE_STUDY (Adult)`). A general text model does not know that `CAP` is chest + abdomen +
pelvis or that `W/WO` differs from `WO`; these rules turn a description (or a Playbook Long
Common Name, through the same code) into the axes the Playbook itself uses: modality, body
region, contrast timing, views/projections, and flags such as portable or screening.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

_Repl = str | Callable[[re.Match[str]], str] | None

# Multi-word patterns first (order matters): each becomes canonical tokens.
_PHRASES: tuple[tuple[str, _Repl], ...] = (
    (r"\(?\b(adult|peds|pediatric|child|children)\)?", " "),
    (r"\(rad\)|-cs\b|\(s\)", " "),
    (r"guidance for localization of tumor", " tumor "),
    (r"\bw\s*/\s*wo\b|\bw\s*/\s*w/?o\b|\bwwo\b|\bwo\s*/\s*w\b|\bw\s*(and|&|\+|or)\s*wo\b|\bw\s+wo\b"
     r"|\bwith\s+(and|&|\/)\s*without\b|\bwo\s+and\s+w\b|\bwo & w\b|\bw/?\s*&\s*w/?o\b", " ctr_wwo "),
    (r"\bw\s*/\s*o\b|\bwithout\b|\bnon[\s-]?con(trast)?\b|\bnoncon\b|\bno\s+con(trast)?\b"
     r"|\bwo\b", " ctr_wo "),
    (r"\bw\s*/|\bwith\b|\bw\b|\+c\b", " ctr_w "),
    (r"\bc\s*/\s*a\s*/\s*p\b|\bcap\b", " chest abdomen pelvis "),
    (r"\ba\s*/\s*p\b", " abdomen pelvis "),
    (r"\bap\s*(or|/)\s*pa\b|\bpa\s*(or|/)\s*ap\b", " frontal "),
    (r"\bc[\s-]?spine\b|\bcervical\b", " cspine "),
    (r"\bl[\s-]?spine\b|\blumbar\b", " lspine "),
    (r"\bv\s*/\s*q\b|\bvq\b|\bventilation\b", " vq "),
    (r"\bskull base to thigh\b|\bwhole body\b|\bwb\b", " wholebody "),
    (r"\binsp(iration|iratory|ir)?\b\s*(/|and|&)?\s*\bexp(iration|iratory|ir)?\b", " inspexp "),
    (r"\blow[\s-]?dose\b|\bldct\b|\bscreen(ing)?\b|\blw dose\b", " screening "),
    (r"\bcalc(ium|m)?\b|\bca score\b", " calcium "),
    (r"\b(\d)\s*\+\s*(vw|views?|v)?\b|\bmin(imum)?\s+(\d)\s*(vw|views?|v)?\b"
     r"|\b(\d)\s+or\s+more\b|\bge (\d)\b",
     lambda m: f" views{next(g for g in (m.group(1), m.group(4), m.group(6), m.group(7)) if g)}plus "),
    (r"\b(\d|one|two|single)\s*-?\s*(vw|views?|v)\b|\b(single|one|two)\b", None),
    (r"\bx[\s-]?ray\b|\bxr\b|\bradiograph\w*\b|\bdg\b|\bplain film\b", " xr "),
)
_VIEW_WORDS = {"1": 1, "one": 1, "single": 1, "2": 2, "two": 2, "3": 3, "4": 4}
_TOKEN_MAP: dict[str, tuple[str, ...]] = {
    "cxr": ("xr", "chest"), "dpcxr": ("xr", "chest"), "thorax": ("chest",), "thoracic": ("chest",),
    "chest": ("chest",), "lung": ("chest", "lung"), "lungs": ("chest", "lung"),
    "abd": ("abdomen",), "abdomen": ("abdomen",), "abdominal": ("abdomen",), "abdomin": ("abdomen",),
    "pelvis": ("pelvis",), "pel": ("pelvis",), "pelv": ("pelvis",), "pelvi": ("pelvis",),
    "pelvic": ("pelvis",), "kub": ("abdomen", "kub", "ap"), "babygram": ("chest", "abdomen"),
    "head": ("head",), "brain": ("head",), "stroke": ("head", "stroke"), "neck": ("neck",),
    "cspine": ("cspine",), "lspine": ("lspine",), "spine": ("spine",),
    "heart": ("heart",), "cardiac": ("heart",), "card": ("heart",), "coronary": ("coronary",),
    "coronaries": ("coronary",), "rib": ("ribs",), "ribs": ("ribs",), "breast": ("breast",),
    "mammo": ("mg", "breast"), "mammogram": ("mg", "breast"), "mammography": ("mg", "breast"),
    "cta": ("ct", "angio"), "angio": ("angio",), "angiogram": ("angio",), "angiography": ("angio",),
    "vascular": ("angio",), "vessels": ("angio",), "arteries": ("angio",), "aorta": ("angio",),
    "dissection": ("angio",), "pe": ("pe",), "ctpe": ("ct", "pe"), "embolus": ("pe",),
    "embolism": ("pe",), "emboli": ("pe",), "emb": ("pe",), "pulmonary": ("pulmonary",),
    "port": ("portable",),
    "portable": ("portable",), "bedside": ("portable",), "icu": ("portable",), "porta": ("portable",),
    "biopsy": ("biopsy",), "bx": ("biopsy",), "tube": ("tube",), "drain": ("tube",),
    "guided": ("guidance",), "guidance": ("guidance",), "surgery": ("surgery",), "intraop": ("surgery",),
    "or": (), "operative": ("surgery",), "perfusion": ("perfusion",), "vq": ("vq",),
    "outside": ("unspecified",), "import": ("unspecified",), "exchange": ("unspecified",),
    "other": ("unspecified",), "unspecified": ("unspecified",), "reference": ("unspecified",),
    "treatment": ("unspecified",), "oncology": ("unspecified",),
    "wholebody": ("wholebody",), "tumor": ("tumor",), "lymphoma": ("tumor", "wholebody"),
    "myeloma": ("tumor", "wholebody"), "cancer": ("tumor",), "fdg": ("pt", "wholebody"),
    "pet": ("pt",), "ct": ("ct",), "mr": ("mr",), "mri": ("mr",), "nm": ("nm",), "us": ("us",),
    "ultrasound": ("us",), "mg": ("mg",), "xr": ("xr",), "dx": ("xr",), "cr": ("xr",),
    "pa": ("pa",), "posteroanterior": ("pa",), "ap": ("ap",), "lat": ("lat",), "lateral": ("lat",),
    "frontal": ("frontal",), "obl": ("oblique",), "oblique": ("oblique",), "obliques": ("oblique",),
    "upright": ("upright",), "erect": ("upright",), "supine": ("supine",), "flat": ("supine",),
    "inspexp": ("inspexp",), "screening": ("screening",), "calcium": ("calcium",),
    "stone": ("abdomen", "pelvis", "stone"), "renal": ("abdomen",), "urogram": ("abdomen", "pelvis"),
    "hrct": ("chest",), "ctr_w": ("ctr_w",), "ctr_wo": ("ctr_wo",), "ctr_wwo": ("ctr_wwo",),
}
REGIONS = frozenset({"chest", "abdomen", "pelvis", "head", "neck", "cspine", "lspine", "heart",
                     "coronary", "ribs", "breast", "wholebody"})
FLAGS = frozenset({"angio", "pe", "pulmonary", "portable", "biopsy", "tube", "guidance", "surgery",
                   "vq", "unspecified", "tumor", "screening", "calcium", "inspexp", "oblique",
                   "upright", "supine", "lung", "kub", "stone", "stroke", "perfusion"})
PROJECTIONS = frozenset({"pa", "ap", "lat", "frontal", "oblique"})
MODALITIES = frozenset({"xr", "ct", "mr", "pt", "nm", "us", "mg"})
# DICOM Modality (0008,0060) → modality group used by the Playbook's method axis.
DICOM_GROUP = {"CR": "xr", "DX": "xr", "RF": "xr", "XR": "xr", "CT": "ct", "MR": "mr", "PT": "pt",
               "CTPT": "pt", "NM": "nm", "US": "us", "MG": "mg"}


@dataclass(frozen=True, slots=True)
class Features:
    modalities: frozenset[str] = field(default_factory=frozenset)
    regions: frozenset[str] = field(default_factory=frozenset)
    flags: frozenset[str] = field(default_factory=frozenset)
    projections: frozenset[str] = field(default_factory=frozenset)
    contrast: str | None = None  # "W", "WO", "WWO"
    views: str | None = None  # "1", "2", "4plus", …
    tokens: tuple[str, ...] = ()
    words: frozenset[str] = field(default_factory=frozenset)  # raw words, for exemplar overlap

    @property
    def canonical(self) -> str:
        """Expanded text for the embedding model (abbreviations spelled out)."""
        return " ".join(self.tokens)


def _views(match: re.Match[str]) -> str:
    word = next(g for g in match.groups() if g)
    return f" views{_VIEW_WORDS.get(word, 1)} "


def features(text: str) -> Features:
    """Parse a study description or a Long Common Name into Playbook axes."""
    s = " " + re.sub(r"[\^_]", " ", (text or "")).lower() + " "
    s = re.sub(r"(\d)(v|vw)\b", r"\1 \2", s)
    for pattern, repl in _PHRASES:
        s = re.sub(pattern, _views if repl is None else repl, s)
    raw = re.findall(r"[a-z0-9_]+", s)
    tokens: list[str] = []
    for tok in raw:
        tokens += _TOKEN_MAP.get(tok, (tok,) if re.fullmatch(r"views\d\w*", tok) else ())
    return _collect(tokens, raw)


def _collect(tokens: list[str], raw: list[str]) -> Features:
    contrast = next((t[4:].upper() for t in ("ctr_wwo", "ctr_wo", "ctr_w") if t in tokens), None)
    views = next((t[5:] for t in tokens if t.startswith("views")), None)
    regions = {t for t in tokens if t in REGIONS}
    flags = {t for t in tokens if t in FLAGS}
    if "pe" in flags:  # a PE study is a pulmonary CT angiogram whatever it is called
        flags |= {"angio", "pulmonary"}
    if "pulmonary" in flags:
        regions.add("chest")
    if "lung" in flags and "pt" not in tokens and "nm" not in tokens:
        flags.discard("lung")
    if "screening" in flags and "mg" not in tokens and "breast" not in regions:
        regions.add("chest")  # low-dose screening CT is a lung screen unless said otherwise
    projections = {t for t in tokens if t in PROJECTIONS}
    words = [t for t in tokens if not t.startswith("ctr_")]
    words += [{"W": "with contrast", "WO": "without contrast", "WWO": "with and without contrast"}
              .get(contrast or "", "")]
    return Features(frozenset(t for t in tokens if t in MODALITIES), frozenset(regions),
                    frozenset(flags), frozenset(projections), contrast, views,
                    tuple(w for w in words if w) or tuple(raw),
                    frozenset(w for w in raw if not w.startswith("ctr_")) | set(tokens))


def implied(f: Features) -> Features:
    """Defaults radiologists read into a *description* (never applied to a term's name)."""
    if f.contrast is None and "screening" in f.flags and "chest" in f.regions and "mg" not in f.modalities:
        return replace(f, contrast="WO")  # lung-cancer screening CT is low-dose, never enhanced
    return f


def view_count(f: Features) -> str | None:
    """Number of views said or implied by the projections (PA + LAT = 2)."""
    if f.views:
        return f.views
    named = f.projections - {"frontal"} if "frontal" not in f.projections else f.projections
    if "oblique" in named:
        return "4plus"
    return str(len(named)) if len(named) >= 2 else None

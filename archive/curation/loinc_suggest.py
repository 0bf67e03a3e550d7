"""Suggested LOINC Playbook codes for study descriptions nobody has mapped yet.

Three sources, one score per Playbook term (best first):

- **Rules** (`loinc_text.features`): modality, body region, contrast timing, views/projections
  and flags (portable, PE, screening …) parsed from the description and from each term's Long
  Common Name by the same code; agreement adds, contradiction subtracts. Modality is a hard
  filter: a CT description never gets an XR code.
- **Exemplars**: the Playbook's example descriptions and the mappings this archive's curators
  approved. A description equal (after normalization) to an approved one gets that code first;
  otherwise the most similar exemplar of each code adds to that code's score, so the
  suggester learns from every approval.
- **Embeddings**: `wordllama`'s 16 MB static embedding model, shipped inside its wheel and loaded
  from the package directory (no network): cosine similarity between the expanded description
  and each Long Common Name, for wording the rules do not know.

The weights were tuned on the Playbook examples (leave-one-out); `bench/loinc_suggest.py`
measures accuracy on a separate held-out set.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archive.curation.loinc_text import DICOM_GROUP, Features, features, implied, view_count

MAX_DESCRIPTION = 256  # StudyDescription is LO (64 chars); longer input is cut, not parsed whole
_FLAG_WEIGHTS = {"angio": 2.0, "pe": 2.0, "pulmonary": 1.0, "portable": 1.5, "biopsy": 2.5,
                 "tube": 2.5, "guidance": 1.0, "surgery": 2.0, "vq": 2.5, "unspecified": 2.5,
                 "tumor": 1.0, "screening": 2.0, "calcium": 2.5, "inspexp": 2.0, "oblique": 1.5,
                 "upright": 1.0, "supine": 1.0, "lung": 1.0, "kub": 0.0, "stone": 0.0,
                 "stroke": 0.0, "perfusion": 0.5}


@dataclass(frozen=True, slots=True)
class Suggestion:
    """`score`: higher is better, comparable within one answer (rules + similarities; a
    description a curator already approved gets +20)."""

    loinc_code: str
    long_common_name: str
    score: float

    def as_dict(self) -> dict[str, object]:
        return {"loinc_code": self.loinc_code, "long_common_name": self.long_common_name,
                "score": round(self.score, 4)}


@dataclass(frozen=True, slots=True)
class PlaybookTerm:
    loinc_code: str
    long_common_name: str
    modalities: frozenset[str]  # modality groups (xr, ct, …)
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApprovedMapping:
    modality: str
    description: str
    loinc_code: str
    long_common_name: str = ""


def modality_groups(modality: str | Sequence[str] | None) -> frozenset[str]:
    """DICOM modality value(s) ('CR,DX', ['CT', 'PT'], 'CR;DX') → Playbook modality groups."""
    if modality is None:
        return frozenset()
    parts = modality.replace(";", ",").replace("\\", ",").split(",") if isinstance(modality, str) \
        else list(modality)
    return frozenset(DICOM_GROUP[p.strip().upper()] for p in parts if p.strip().upper() in DICOM_GROUP)


def shipped_terms() -> list[PlaybookTerm]:
    """The 77-term table shipped as archive/data/loinc_playbook.csv."""
    path = Path(__file__).resolve().parents[1] / "data" / "loinc_playbook.csv"
    return read_terms(path.read_text(encoding="utf-8"))


def read_terms(text: str) -> list[PlaybookTerm]:
    terms = []
    for row in csv.DictReader(text.splitlines()):
        name = row["long_common_name"].strip()
        groups = modality_groups(row.get("modality") or "") | features(name).modalities
        examples = tuple(e.strip() for e in (row.get("example_raw_descriptions") or "").split(";")
                         if e.strip())
        terms.append(PlaybookTerm(row["loinc_code"].strip(), name, groups, examples))
    return terms


def load_mapping_table(path: str | Path) -> list[ApprovedMapping]:
    """MIDRC's TSV layout: Modality / StudyDescription / LOINC code / Long Common Name."""
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            norm = {k.strip().casefold(): (v or "").strip() for k, v in row.items() if k}
            code = norm.get("loinc code") or norm.get("loinc_code") or ""
            if not code:
                continue
            rows.append(ApprovedMapping(norm.get("modality", ""), norm.get("studydescription", ""),
                                        code, norm.get("long common name", "")))
    return rows


def normalized(modality: str | Sequence[str] | None, description: str) -> tuple[frozenset[str], str]:
    return modality_groups(modality), " ".join(description.casefold().split())


class Embedder:
    """wordllama's static embeddings, loaded from the files inside the installed wheel.

    `WordLlama.load()` looks for the tokenizer under `wordllama/tokenizer/` while the wheel ships
    it under `wordllama/tokenizers/`, and then tries Hugging Face; loading the two files directly
    keeps the archive offline whatever the cache holds.
    """

    def __init__(self) -> None:
        import wordllama
        from safetensors import safe_open
        from wordllama.inference import WordLlamaInference
        from wordllama.wordllama import WordLlama

        root = Path(wordllama.__file__).parent
        tokenizer = WordLlama.load_tokenizer(root / "tokenizers" / "l2_supercat_tokenizer_config.json")
        with safe_open(str(root / "weights" / "l2_supercat_256.safetensors"), framework="np") as fh:
            matrix = fh.get_tensor("embedding.weight")
        self._model = WordLlamaInference(matrix, tokenizer)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length rows, one per text."""
        vectors = np.asarray(self._model.embed(list(texts) or [""]), dtype=np.float32)[: len(texts)]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-9)


@functools.lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    return Embedder()


def rule_score(q: Features, t: Features) -> float:
    """Agreement of a description's features with a term's (positive = agrees)."""
    score = 0.0
    if q.regions or t.regions:
        inter, union = len(q.regions & t.regions), len(q.regions | t.regions)
        score += 5.0 * inter / union - (2.0 if not inter and q.regions else 0.0)
    for flag in q.flags | t.flags:
        w = _FLAG_WEIGHTS.get(flag, 0.5)
        score += w if flag in q.flags and flag in t.flags else -w
    score += _contrast_score(q.contrast, t.contrast)
    score += _view_score(q, t)
    return score


def _contrast_score(q: str | None, t: str | None) -> float:
    if q == t:
        return 1.5 if q else 0.3
    if q and t:
        return -2.5
    return -0.6 if t else -0.4


def _view_score(q: Features, t: Features) -> float:
    score = 0.0
    qv, tv = view_count(q), view_count(t)
    if qv and tv:
        score += 1.2 if qv == tv else -1.2
    elif tv and not qv:
        score -= 0.3
    qp = q.projections - {"frontal"} if "frontal" not in t.projections else q.projections
    for p in qp | t.projections:
        if p in qp and p in t.projections:
            score += 0.8
        elif (p == "frontal" and t.projections & {"pa", "ap"}) or (p in ("pa", "ap") and "frontal" in qp):
            score += 0.2
        else:
            score -= 0.6
    return score


@dataclass(frozen=True, slots=True)
class _Exemplar:
    code: str
    groups: frozenset[str]
    text: str
    features: Features
    approved: bool = False  # a curator of this archive approved it (weighs more)


class Suggester:
    """Scores every Playbook term for a description; build once, call `suggest` many times."""

    W_EMBED, W_EXEMPLAR, W_EXACT, W_NEAR, NEAR = 2.0, 2.0, 20.0, 20.0, 0.7

    def __init__(self, terms: Sequence[PlaybookTerm], approved: Iterable[ApprovedMapping] = (),
                 embedder: Embedder | None = None) -> None:
        self.terms = list(terms)
        self.names = {t.loinc_code: t.long_common_name for t in self.terms}
        self.embedder = embedder or default_embedder()
        self.term_features = [features(t.long_common_name) for t in self.terms]
        self.term_vectors = self.embedder.embed([f.canonical for f in self.term_features])
        # the Long Common Name is an exemplar too, so a term with few examples is not outvoted
        self.exemplars = [_Exemplar(t.loinc_code, t.modalities, e, features(e))
                          for t in self.terms for e in (t.long_common_name, *t.examples)]
        self.exemplars += [_Exemplar(a.loinc_code, modality_groups(a.modality), a.description,
                                     features(a.description), approved=True)
                           for a in approved if a.description.strip()]
        self.exemplar_vectors = self.embedder.embed([e.features.canonical for e in self.exemplars])
        self.exact = {normalized(list(e.groups), e.text)[1]: e.code for e in self.exemplars if e.approved}
        for a in approved:
            if a.loinc_code not in self.names and a.long_common_name:
                self.names[a.loinc_code] = a.long_common_name

    def suggest(self, modality: str | Sequence[str] | None, description: str, limit: int = 3,
                *, skip_exemplar: str | None = None) -> list[Suggestion]:
        """Best `limit` codes, best first; `skip_exemplar` leaves one exemplar out (benchmarks)."""
        description = description[:MAX_DESCRIPTION]
        q = implied(features(description))
        groups = modality_groups(modality) or q.modalities
        if "pt" in q.modalities:
            groups |= {"pt"}
        qv = self.embedder.embed([q.canonical])[0]
        scores: dict[str, float] = {}
        for term, tf, tv in zip(self.terms, self.term_features, self.term_vectors, strict=True):
            if groups and not groups & term.modalities:
                continue
            scores[term.loinc_code] = rule_score(q, tf) + self.W_EMBED * float(tv @ qv)
        self._add_exemplars(scores, q, qv, groups, skip_exemplar)
        exact = self.exact.get(normalized(modality, description)[1])
        if exact is not None:
            scores[exact] = scores.get(exact, 0.0) + self.W_EXACT
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[: max(limit, 0)]
        return [Suggestion(code, self.names.get(code, ""), round(s, 4)) for code, s in ranked]

    def _add_exemplars(self, scores: dict[str, float], q: Features, qv: np.ndarray,
                       groups: frozenset[str], skip: str | None) -> None:
        if not self.exemplars:
            return
        sims = self.exemplar_vectors @ qv
        best: dict[str, float] = {}
        near: dict[str, float] = {}
        for ex, sim in zip(self.exemplars, sims, strict=True):
            if ex.code not in scores or ex.text == skip or (groups and ex.groups and not groups & ex.groups):
                continue
            union = q.words | ex.features.words
            jac = len(q.words & ex.features.words) / len(union) if union else 0.0
            value = 0.5 * float(sim) + 0.5 * jac
            best[ex.code] = max(best.get(ex.code, 0.0), value)
            if ex.approved:
                near[ex.code] = max(near.get(ex.code, 0.0), value - self.NEAR)
        for code, value in best.items():
            scores[code] += self.W_EXEMPLAR * value
        for code, value in near.items():
            # a near-duplicate of a description approved here outweighs the generic rules
            scores[code] += self.W_NEAR * max(0.0, value)


@functools.lru_cache(maxsize=1)
def _shipped_suggester() -> Suggester:
    return Suggester(shipped_terms())


def suggest(modality: str | Sequence[str] | None, description: str, limit: int = 3, *,
            approved: Sequence[ApprovedMapping] = ()) -> list[Suggestion]:
    """Suggested codes for one description, from the shipped Playbook (+ approved mappings)."""
    suggester = Suggester(shipped_terms(), approved) if approved else _shipped_suggester()
    return suggester.suggest(modality, description, limit)

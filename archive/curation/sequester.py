"""Stratified, sticky sequestration of whole cases (open vs sequestered).

Why not MIDRC's per-cell coin flips: flipping a biased coin per case (or rounding each stratum
cell on its own) leaves every stratum within a case or two of the target, but the errors add
up in the marginals (all women at one site, all COVID-positive cases, …), where with thousands of
tiny cells they drift by tens of cases. Here the split is a *controlled rounding* problem:

1. Group cases into strata (CDC age bin × sex × race × ethnicity × COVID-19 × site × modality).
   For stratum s the real-valued target of newly sequestered cases is
   t_s = f·(old_s + new_s) − seq_old_s, clipped to [0, new_s]: earlier assignments are sticky and
   the target corrects whatever drift earlier batches left in that stratum.
2. Each stratum gets ⌊t_s⌋ or ⌈t_s⌉ new sequestered cases — never further than one case from the
   target, the best whole cases allow. The first choice comes from systematic rounding (a seeded
   random start u, cumulative sums over strata sorted by their keys), which also fixes the batch
   total at ⌊Σt_s + u⌋, so small strata (t_s < 1) are not all rounded down: their remainders carry
   over to the next stratum and the overall fraction stays on target.
3. A local search then moves one unit from one stratum to another (total unchanged, each stratum
   still within its floor/ceil) while that lowers Σ_c e_c²/n_c over every marginal cell c
   (every single attribute, every pair, and site × sex × COVID-19), where e_c is the cell's
   sequestered count minus f·n_c over old and new cases together. Weighting by 1/n_c
   (n_c times the squared fraction error) keeps small cells from being sacrificed to large
   ones and vice versa; a greedy search is not exact, so a cell of hundreds of cases may end
   two or three cases off (a fraction error well under 1 %). This is a greedy form of
   the cube method's balancing step: strata stay exact to one case, marginals move towards
   exact.
4. Which cases of a stratum are sequestered follows a seeded hash order of case ids, so the same
   seed and input give the same assignment whatever the input order.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from archive.curation.strata import DEFAULT_ATTRIBUTES, Case, stratum_of

DEFAULT_FRACTION = 0.2
_EPS = 1e-12


class Partition(StrEnum):
    OPEN = "open"
    SEQUESTERED = "sequestered"


@dataclass(frozen=True, slots=True)
class CellRow:
    """One stratum or marginal cell after the split (old and new cases together)."""

    attributes: tuple[str, ...]
    values: tuple[str, ...]
    open: int
    sequestered: int

    @property
    def total(self) -> int:
        return self.open + self.sequestered

    @property
    def fraction(self) -> float:
        return self.sequestered / self.total if self.total else 0.0

    def deviation(self, target: float) -> float:
        """Sequestered cases minus the target count (whole cases can't do better than ±0.5)."""
        return self.sequestered - target * self.total


@dataclass(frozen=True, slots=True)
class SequesterReport:
    seed: int
    fraction: float
    attributes: tuple[str, ...]
    new_open: int
    new_sequestered: int
    total_open: int
    total_sequestered: int
    strata: tuple[CellRow, ...]
    marginals: tuple[CellRow, ...]

    @property
    def overall_fraction(self) -> float:
        total = self.total_open + self.total_sequestered
        return self.total_sequestered / total if total else 0.0

    def max_stratum_deviation(self) -> float:
        return max((abs(r.deviation(self.fraction)) for r in self.strata), default=0.0)

    def max_marginal_deviation(self, min_cases: int = 0) -> float:
        """Largest |fraction − target| over marginal cells with at least `min_cases` cases."""
        rows = [r for r in self.marginals if r.total >= max(min_cases, 1)]
        return max((abs(r.fraction - self.fraction) for r in rows), default=0.0)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready release record: seed, counts by partition, strata and marginal cells."""
        def rows(cells: Sequence[CellRow]) -> list[dict[str, object]]:
            return [{"attributes": list(r.attributes), "values": list(r.values), "open": r.open,
                     "sequestered": r.sequestered, "fraction": round(r.fraction, 6)} for r in cells]
        return {"seed": self.seed, "fraction": self.fraction, "attributes": list(self.attributes),
                "new": {"open": self.new_open, "sequestered": self.new_sequestered},
                "total": {"open": self.total_open, "sequestered": self.total_sequestered},
                "overall_fraction": round(self.overall_fraction, 6),
                "max_stratum_deviation_cases": round(self.max_stratum_deviation(), 6),
                "max_marginal_deviation": round(self.max_marginal_deviation(), 6),
                "strata": rows(self.strata), "marginals": rows(self.marginals)}

    def marginal_error(self) -> float:
        """Σ e_c²/n_c over all marginal cells: the quantity the local search lowers."""
        return sum(r.deviation(self.fraction) ** 2 / r.total for r in self.marginals if r.total)


@dataclass(frozen=True, slots=True)
class Sequestration:
    assignments: dict[str, Partition]  # new cases only; earlier ones are not repeated
    report: SequesterReport


def default_marginals(attributes: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Every single attribute, every pair, and site × sex × COVID-19 when all three exist."""
    out: list[tuple[str, ...]] = [(a,) for a in attributes]
    out += itertools.combinations(attributes, 2)
    triple = ("site", "sex", "covid19_positive")
    if all(a in attributes for a in triple):
        out.append(triple)
    return tuple(out)


def case_order(seed: int, case_id: str) -> str:
    """Seeded, input-order-independent position of a case inside its stratum."""
    return hashlib.sha256(f"{seed}:{case_id}".encode()).hexdigest()


def sequester(cases: Iterable[Case], existing: Mapping[str, Partition | str], *, seed: int,
              fraction: float = DEFAULT_FRACTION,
              attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
              marginals: Sequence[Sequence[str]] | None = None) -> Sequestration:
    """Assign every case of `cases` that has no entry in `existing`; earlier ones keep theirs.

    `cases` should include the earlier cases too (with their attributes) so that the new
    assignment corrects their strata and marginals; earlier ids missing from `cases` are kept
    but cannot be balanced against.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], not {fraction}")
    attributes = tuple(attributes)
    margins = tuple(tuple(m) for m in (marginals or default_marginals(attributes)))
    unknown = {a for m in margins for a in m} - set(attributes)
    if unknown:
        raise ValueError(f"marginals use attributes outside the strata: {sorted(unknown)}")
    by_id = {c.case_id: c for c in cases}
    old = {cid: Partition(p) for cid, p in existing.items()}
    strata = _group(by_id.values(), old, attributes)
    keys = sorted(strata)
    x = _controlled_rounding(keys, strata, old, fraction, seed, attributes, margins)
    assignments: dict[str, Partition] = {}
    for k, n_seq in zip(keys, x, strict=True):
        new_ids = sorted((c for c in strata[k] if c not in old), key=lambda c: case_order(seed, c))
        for i, cid in enumerate(new_ids):
            assignments[cid] = Partition.SEQUESTERED if i < n_seq else Partition.OPEN
    report = build_report(by_id.values(), {**old, **assignments}, assignments,
                          seed=seed, fraction=fraction, attributes=attributes, marginals=margins)
    return Sequestration(assignments, report)


def _group(cases: Iterable[Case], old: Mapping[str, Partition],
           attributes: Sequence[str]) -> dict[tuple[str, ...], list[str]]:
    strata: dict[tuple[str, ...], list[str]] = {}
    for case in cases:
        strata.setdefault(stratum_of(case, attributes), []).append(case.case_id)
    return strata


def _controlled_rounding(keys: Sequence[tuple[str, ...]], strata: Mapping[tuple[str, ...], list[str]],
                         old: Mapping[str, Partition], fraction: float, seed: int,
                         attributes: Sequence[str], margins: Sequence[Sequence[str]]) -> np.ndarray:
    """Integer new-sequestered counts per stratum (steps 1–3 of the module docstring)."""
    n_all = np.array([len(strata[k]) for k in keys], dtype=float)
    n_new = np.array([sum(c not in old for c in strata[k]) for k in keys], dtype=float)
    seq_old = np.array([sum(old.get(c) == Partition.SEQUESTERED for c in strata[k]) for k in keys],
                       dtype=float)
    target = np.clip(fraction * n_all - seq_old, 0.0, n_new)
    lo, hi = np.floor(target + _EPS), np.minimum(np.ceil(target - _EPS), n_new)
    u = float(np.random.default_rng(seed).random())
    cum = np.floor(np.cumsum(target) + u + _EPS)
    x = np.clip(np.diff(np.concatenate(([math.floor(u + _EPS)], cum))), lo, hi)
    # The batch total aims at the cumulative target: clipping strata whose earlier cases were
    # over-sequestered (t_s < 0) must not push the total up.
    wanted = fraction * n_all.sum() - seq_old.sum()
    total = int(np.clip(math.floor(wanted + u + _EPS), lo.sum(), hi.sum()))
    balancer = _Balancer(keys, attributes, margins, n_all, seq_old, fraction)
    return balancer.run(x, lo, hi, total).astype(int)


class _Balancer:
    """Greedy unit moves between strata that lower the weighted marginal error."""

    def __init__(self, keys: Sequence[tuple[str, ...]], attributes: Sequence[str],
                 margins: Sequence[Sequence[str]], n_all: np.ndarray, seq_old: np.ndarray,
                 fraction: float) -> None:
        pos = {a: i for i, a in enumerate(attributes)}
        self.index: list[np.ndarray] = []  # per marginal: cell number of each stratum
        offset = 0
        for margin in margins:
            cells: dict[tuple[str, ...], int] = {}
            idx = [cells.setdefault(tuple(k[pos[a]] for a in margin), len(cells)) for k in keys]
            self.index.append(np.array(idx, dtype=np.int64) + offset)
            offset += len(cells)
        self.cells = offset
        n_cell = self._sum(n_all)
        self.weight = 1.0 / np.maximum(n_cell, 1.0)
        self.base = self._sum(seq_old) - fraction * n_cell

    def _sum(self, per_stratum: np.ndarray) -> np.ndarray:
        out = np.zeros(self.cells)
        for idx in self.index:
            out += np.bincount(idx, weights=per_stratum, minlength=self.cells)
        return out

    def _gather(self, per_cell: np.ndarray) -> np.ndarray:
        return sum((per_cell[idx] for idx in self.index), np.zeros(len(self.index[0])))

    def _cost(self, e: np.ndarray) -> np.ndarray:
        """Per-cell cost e²/n: n·(fraction error)², a chi-square-like balance of cells' sizes."""
        return self.weight * e * e

    def _deltas(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = self.base + self._sum(x)
        now = self._cost(e)
        self._cell_up, self._cell_down = self._cost(e + 1) - now, self._cost(e - 1) - now
        up = np.where(x < hi - _EPS, self._gather(self._cell_up), np.inf)
        down = np.where(x > lo + _EPS, self._gather(self._cell_down), np.inf)
        return up, down

    def _shared(self, s: int, t: int) -> float:
        """Cells holding both strata don't change when one unit moves from t to s."""
        return float(sum(self._cell_up[idx[s]] + self._cell_down[idx[s]]
                         for idx in self.index if idx[s] == idx[t]))

    def run(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: int,
            max_moves: int | None = None) -> np.ndarray:
        x = x.copy()
        if not len(x):
            return x
        while x.sum() != total:  # fix the batch total with the cheapest single steps
            up, down = self._deltas(x, lo, hi)
            step = 1 if x.sum() < total else -1
            x[int(np.argmin(up if step > 0 else down))] += step
        for _ in range(max_moves or 20 * len(x) + 100):
            up, down = self._deltas(x, lo, hi)
            move = self._best_pair(up, down)
            if move is None:
                break
            x[move[0]] += 1
            x[move[1]] -= 1
        return x

    def _best_pair(self, up: np.ndarray, down: np.ndarray, k: int = 8) -> tuple[int, int] | None:
        """Best unit move among the k cheapest single ups and downs (a greedy, not exact, step)."""
        ups = [int(i) for i in np.argsort(up)[:k] if np.isfinite(up[i])]
        downs = [int(i) for i in np.argsort(down)[:k] if np.isfinite(down[i])]
        best, pair = -1e-9, None
        for s in ups:
            for t in downs:
                if s != t:
                    gain = up[s] + down[t] - self._shared(s, t)
                    if gain < best:
                        best, pair = gain, (s, t)
        return pair


def build_report(cases: Iterable[Case], partition: Mapping[str, Partition], new: Mapping[str, Partition],
                 *, seed: int, fraction: float, attributes: Sequence[str],
                 marginals: Sequence[Sequence[str]]) -> SequesterReport:
    """Counts by partition per stratum and per marginal cell, over old and new cases."""
    attributes = tuple(attributes)
    rows: dict[tuple[str, ...], list[int]] = {}
    for case in cases:
        p = partition.get(case.case_id)
        if p is not None:
            rows.setdefault(stratum_of(case, attributes), [0, 0])[p == Partition.SEQUESTERED] += 1
    strata = tuple(CellRow(attributes, k, v[0], v[1]) for k, v in sorted(rows.items()))
    pos = {a: i for i, a in enumerate(attributes)}
    margin_rows: list[CellRow] = []
    for margin in marginals:
        cells: dict[tuple[str, ...], list[int]] = {}
        for r in strata:
            c = cells.setdefault(tuple(r.values[pos[a]] for a in margin), [0, 0])
            c[0] += r.open
            c[1] += r.sequestered
        margin_rows += [CellRow(tuple(margin), k, v[0], v[1]) for k, v in sorted(cells.items())]
    new_seq = sum(p == Partition.SEQUESTERED for p in new.values())
    total_seq = sum(p == Partition.SEQUESTERED for p in partition.values())
    return SequesterReport(seed, fraction, attributes, len(new) - new_seq, new_seq,
                           len(partition) - total_seq, total_seq, strata, tuple(margin_rows))


def coin_flip_assign(cases: Iterable[Case], existing: Mapping[str, Partition | str], *, seed: int,
                     fraction: float = DEFAULT_FRACTION,
                     attributes: Sequence[str] = DEFAULT_ATTRIBUTES) -> dict[str, Partition]:
    """Baseline for comparison: MIDRC-style per-cell coin flips (sticky too).

    Each stratum cell on its own sequesters ⌊f·n⌋ new cases plus one more with probability
    frac(f·n): every cell is within one case of its target, but nothing ties the cells
    together, so the marginals drift.
    """
    rng = np.random.default_rng(seed)
    strata: dict[tuple[str, ...], list[str]] = {}
    for case in cases:
        if case.case_id not in existing:
            strata.setdefault(stratum_of(case, attributes), []).append(case.case_id)
    out: dict[str, Partition] = {}
    for k in sorted(strata):
        ids = sorted(strata[k], key=lambda c: case_order(seed, c))
        want = fraction * len(ids)
        n_seq = math.floor(want) + int(rng.random() < want - math.floor(want))
        out.update({cid: Partition.SEQUESTERED if i < n_seq else Partition.OPEN
                    for i, cid in enumerate(ids)})
    return out

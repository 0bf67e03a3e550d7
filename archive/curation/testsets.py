"""Task-based (quota) test sets drawn from the sequestered pool.

MIDRC's task-based sampling draws cases until the largest category margin is under a threshold.
Here the target is met by construction, in three steps:

1. **Joint target by iterative proportional fitting.** The curator gives marginal proportions
   per attribute (COVID-19 × sex × age bin …). Starting from the pool's own joint counts (so that
   combinations the pool lacks stay empty and associations the pool has are kept), IPF scales
   the joint table until every marginal equals size × target; cells are capped at what the pool
   holds after each sweep, so the fit never asks for cases that do not exist.
2. **Integer quotas per cell.** Largest-remainder rounding of the fitted table, then unit moves
   between cells until every marginal hits its own largest-remainder integer target and no
   cell exceeds its supply.
3. **Draw.** Inside each cell, cases in a seeded hash order of their ids (reproducible,
   independent of input order).

When the pool cannot meet a quota the draw is refused with `Shortfall`, which lists per quota
what is needed and what the pool has (the HTTP layer answers 409 with it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from archive.curation.sequester import case_order
from archive.curation.strata import Case, stratum_value

Targets = Mapping[str, Mapping[str, float]]
_TOL = 1e-6


@dataclass(frozen=True, slots=True)
class QuotaGap:
    """One unmet quota: `attributes`/`values` name the cell (one attribute for a marginal)."""

    attributes: tuple[str, ...]
    values: tuple[str, ...]
    needed: int
    available: int

    @property
    def missing(self) -> int:
        return self.needed - self.available

    def as_dict(self) -> dict[str, object]:
        return {"attributes": list(self.attributes), "values": list(self.values),
                "needed": self.needed, "available": self.available, "missing": self.missing}


class Shortfall(Exception):
    """The sequestered pool cannot meet the requested size or proportions (→ 409)."""

    def __init__(self, gaps: Sequence[QuotaGap]) -> None:
        self.gaps = tuple(gaps)
        parts = [f"{'×'.join(g.attributes)}={'/'.join(g.values)}: need {g.needed}, have {g.available}"
                 for g in self.gaps]
        super().__init__("the pool cannot meet the quotas: " + "; ".join(parts))


@dataclass(frozen=True, slots=True)
class Achieved:
    attribute: str
    value: str
    target: float
    count: int
    fraction: float


@dataclass(frozen=True, slots=True)
class TestSet:
    __test__ = False  # not a pytest class, despite the name

    case_ids: tuple[str, ...]
    seed: int
    quotas: dict[tuple[str, ...], int]  # joint cell (values in target order) → cases drawn
    achieved: tuple[Achieved, ...]

    def distribution(self) -> dict[str, dict[str, dict[str, float]]]:
        """JSON-ready {attribute: {value: {"target", "achieved", "count"}}}."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for a in self.achieved:
            out.setdefault(a.attribute, {})[a.value] = {
                "target": a.target, "achieved": a.fraction, "count": a.count}
        return out


def validate_targets(targets: Targets) -> dict[str, dict[str, float]]:
    """Proportions must be non-negative and sum to 1 per attribute (a 400 otherwise)."""
    clean: dict[str, dict[str, float]] = {}
    for attr, props in targets.items():
        if not props:
            raise ValueError(f"target for {attr!r} is empty")
        values = {stratum_value(attr, v) if attr != "age" else str(v): float(p)
                  for v, p in props.items()}
        if any(p < 0 or not math.isfinite(p) for p in values.values()):
            raise ValueError(f"target proportions for {attr!r} must be finite and >= 0")
        if abs(sum(values.values()) - 1.0) > 1e-3:
            raise ValueError(f"target proportions for {attr!r} sum to {sum(values.values()):.4f}, not 1")
        clean[attr] = {v: p for v, p in values.items() if p > 0}
    return clean


def draw_test_set(pool: Iterable[Case], size: int, targets: Targets, *, seed: int,
                  exclude: Iterable[str] = ()) -> TestSet:
    """Draw `size` cases from `pool` (sequestered cases) matching `targets`; or raise Shortfall.

    `exclude` holds cases already used by other test sets (pass () to allow reuse).
    """
    if size <= 0:
        raise ValueError("size must be positive")
    goal = validate_targets(targets)
    attrs = tuple(goal)
    cells = _cells(pool, goal, set(exclude))
    keys = list(itertools.product(*(list(goal[a]) for a in attrs)))
    supply = np.array([len(cells.get(k, ())) for k in keys], dtype=float)
    marg = {a: _integer_split(size, goal[a]) for a in attrs}
    _check_marginals(attrs, keys, supply, marg, size)
    fitted = _ipf(keys, attrs, supply, {a: {v: float(n) for v, n in marg[a].items()} for a in attrs})
    # no proportions asked: one cell, the whole pool (supply was checked above)
    quotas = _integer_quotas(keys, attrs, fitted, supply, marg) if attrs else np.array([size])
    chosen: list[str] = []
    for k, q in zip(keys, quotas, strict=True):
        chosen += sorted(cells.get(k, ()), key=lambda c: case_order(seed, c))[:q]
    return TestSet(tuple(chosen), seed, {k: int(q) for k, q in zip(keys, quotas, strict=True) if q},
                   _achieved(attrs, keys, quotas, goal, size))


def _cells(pool: Iterable[Case], goal: Mapping[str, Mapping[str, float]],
           exclude: set[str]) -> dict[tuple[str, ...], list[str]]:
    cells: dict[tuple[str, ...], list[str]] = {}
    for case in pool:
        if case.case_id in exclude:
            continue
        k = tuple(stratum_value(a, case.attributes.get(a)) for a in goal)
        if all(v in goal[a] for v, a in zip(k, goal, strict=True)):
            cells.setdefault(k, []).append(case.case_id)
    return cells


def _integer_split(size: int, props: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder apportionment of `size` over values (ties by value name)."""
    raw = {v: size * p / sum(props.values()) for v, p in props.items()}
    out = {v: math.floor(x + _TOL) for v, x in raw.items()}
    for v in sorted(raw, key=lambda v: (-(raw[v] - out[v]), v))[: size - sum(out.values())]:
        out[v] += 1
    return out


def _check_marginals(attrs: Sequence[str], keys: Sequence[tuple[str, ...]], supply: np.ndarray,
                     marg: Mapping[str, Mapping[str, int]], size: int) -> None:
    gaps = []
    if supply.sum() < size:
        gaps.append(QuotaGap(("*",), ("*",), size, int(supply.sum())))
    for i, a in enumerate(attrs):
        for v, need in marg[a].items():
            have = int(sum(s for k, s in zip(keys, supply, strict=True) if k[i] == v))
            if have < need:
                gaps.append(QuotaGap((a,), (v,), need, have))
    if gaps:
        raise Shortfall(gaps)


def _ipf(keys: Sequence[tuple[str, ...]], attrs: Sequence[str], supply: np.ndarray,
         marg: Mapping[str, Mapping[str, float]], sweeps: int = 200) -> np.ndarray:
    """Capped IPF of the pool's joint counts to the marginal targets."""
    table = supply.copy()
    masks = {(i, v): np.array([k[i] == v for k in keys]) for i, a in enumerate(attrs) for v in marg[a]}
    for _ in range(sweeps):
        for i, a in enumerate(attrs):
            for v, want in marg[a].items():
                m = masks[(i, v)]
                have = table[m].sum()
                if have > 0:
                    table[m] *= want / have
        table = np.minimum(table, supply)
        if all(abs(table[masks[(i, v)]].sum() - want) < 1e-6
               for i, a in enumerate(attrs) for v, want in marg[a].items()):
            break
    return table


def _integer_quotas(keys: Sequence[tuple[str, ...]], attrs: Sequence[str], fitted: np.ndarray,
                    supply: np.ndarray, marg: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    """Round the fitted table, then move single cases between cells until marginals are exact."""
    size = sum(next(iter(marg.values())).values())
    q = np.minimum(np.floor(fitted + _TOL), supply)
    for i in np.argsort(-(fitted - q), kind="stable"):
        if q.sum() >= size:
            break
        if q[i] < supply[i]:
            q[i] += 1
    member, want = _membership(keys, attrs, marg)
    for _ in range(4 * size + 100):
        gap = want - member @ q
        if not gap.any():
            return q.astype(int)
        move = _best_move(member, gap, q, supply)
        if move is None:
            break
        q[move[0]] -= 1
        q[move[1]] += 1
    raise Shortfall(_joint_gaps(keys, attrs, q, marg, supply))


def _membership(keys: Sequence[tuple[str, ...]], attrs: Sequence[str],
                marg: Mapping[str, Mapping[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    """0/1 matrix (marginal cell × joint cell) and the integer target of each marginal cell."""
    rows, want = [], []
    for i, a in enumerate(attrs):
        for v, need in marg[a].items():
            rows.append([k[i] == v for k in keys])
            want.append(need)
    return np.array(rows, dtype=float), np.array(want, dtype=float)


def _best_move(member: np.ndarray, gap: np.ndarray, q: np.ndarray, supply: np.ndarray,
               k: int = 16) -> tuple[int, int] | None:
    """The unit move (one case from cell src to cell dst) that lowers Σ|gap| most.

    Single-cell effects are computed for all cells at once; exact pair effects (cells sharing
    a marginal value cancel there) only for the k most promising sources and destinations.
    """
    up = np.abs(gap - 1) - np.abs(gap)  # effect on each marginal cell of one more case
    down = np.abs(gap + 1) - np.abs(gap)
    add = np.where(q < supply, member.T @ up, np.inf)
    rem = np.where(q > 0, member.T @ down, np.inf)
    best, move = -0.5, None
    for dst in np.argsort(add, kind="stable")[:k]:
        for src in np.argsort(rem, kind="stable")[:k]:
            if src == dst or not (np.isfinite(add[dst]) and np.isfinite(rem[src])):
                continue
            shared = member[:, dst] * member[:, src]
            delta = add[dst] + rem[src] - float(shared @ (up + down))
            if delta < best:
                best, move = delta, (int(src), int(dst))
    return move


def _joint_gaps(keys: Sequence[tuple[str, ...]], attrs: Sequence[str], q: np.ndarray,
                marg: Mapping[str, Mapping[str, int]], supply: np.ndarray) -> list[QuotaGap]:
    """Marginals the best integer table still misses: each is short of cases in some cell."""
    gaps = []
    for i, a in enumerate(attrs):
        for v, need in marg[a].items():
            got = int(sum(n for k, n in zip(keys, q, strict=True) if k[i] == v))
            if got < need:
                gaps.append(QuotaGap((a,), (v,), need, got))
    return gaps


def _achieved(attrs: Sequence[str], keys: Sequence[tuple[str, ...]], quotas: np.ndarray,
              goal: Mapping[str, Mapping[str, float]], size: int) -> tuple[Achieved, ...]:
    out = []
    for i, a in enumerate(attrs):
        for v, p in goal[a].items():
            count = int(sum(n for k, n in zip(keys, quotas, strict=True) if k[i] == v))
            out.append(Achieved(a, v, p, count, count / size))
    return tuple(out)

"""A synthetic commons with realistic skew, for curation tests and benchmarks.

Proportions loosely follow MIDRC's public summary: most cases from a few large sites, more
older patients, a White majority with long-tailed minorities, ~40 % COVID-positive, chest
radiographs (CR/DX) dominating, CT second. Attributes are correlated (site shifts race and
modality; age shifts COVID status) so that marginals are not trivially balanced.
"""

from __future__ import annotations

import numpy as np

from archive.curation.strata import Case

SITES = {"site-A": 0.40, "site-B": 0.25, "site-C": 0.18, "site-D": 0.12, "site-E": 0.05}
SEX = {"Female": 0.52, "Male": 0.47, "Not Reported": 0.01}
RACE = {"White": 0.58, "Black or African American": 0.22, "Asian": 0.07, "Other": 0.05,
        "American Indian or Alaska Native": 0.01, "Native Hawaiian or other Pacific Islander": 0.01,
        "Not Reported": 0.06}
ETHNICITY = {"Not Hispanic or Latino": 0.80, "Hispanic or Latino": 0.13, "Not Reported": 0.07}
MODALITY = {"CR": 0.35, "DX": 0.25, "CT": 0.22, "CR+CT": 0.10, "DX+CT": 0.05, "MR": 0.03}


def _pick(rng: np.random.Generator, table: dict[str, float], n: int) -> list[str]:
    p = np.array(list(table.values()))
    return list(rng.choice(list(table), size=n, p=p / p.sum()))


def synthetic_cases(n: int, seed: int = 7, prefix: str = "case") -> list[Case]:
    rng = np.random.default_rng(seed)
    sites = _pick(rng, SITES, n)
    ages = np.clip(rng.normal(58, 19, n), 0, 89).astype(int)
    out = []
    for i in range(n):
        race = _pick(rng, RACE, 1)[0]
        if sites[i] == "site-B" and rng.random() < 0.3:
            race = "Black or African American"
        modality = _pick(rng, MODALITY, 1)[0]
        if sites[i] == "site-E" and rng.random() < 0.5:
            modality = "CT"
        covid = "Yes" if rng.random() < (0.30 + 0.25 * (ages[i] >= 65)) else "No"
        if rng.random() < 0.02:
            covid = "Not Reported"
        out.append(Case(f"{prefix}-{i:06d}", {
            "site": sites[i], "sex": _pick(rng, SEX, 1)[0], "race": race,
            "ethnicity": _pick(rng, ETHNICITY, 1)[0], "covid19_positive": covid,
            "age": int(ages[i]) if rng.random() > 0.01 else None, "modality": modality}))
    return out

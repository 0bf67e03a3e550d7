"""Top-1 / top-3 accuracy of LOINC suggestions on held-out study descriptions (issue 16).

Run: `python -m bench.loinc_suggest` (add `-v` to list the misses). The held-out set
`bench/loinc_heldout.tsv` says in its header how it was built. Also prints the leave-one-out
figure over the Playbook's own example descriptions (what the rule weights were tuned on) and a
fuzzy string baseline (difflib ratio against Long Common Names + examples) for comparison.
"""

from __future__ import annotations

import argparse
import difflib
import time
from collections.abc import Callable
from pathlib import Path

from archive.curation.loinc_suggest import PlaybookTerm, Suggester, modality_groups, shipped_terms

HELDOUT = Path(__file__).with_name("loinc_heldout.tsv")
_BLANKS = {"[blank]", "(blank)", "<none>", "0", ""}


def heldout() -> list[tuple[str, str, str]]:
    rows = []
    for line in HELDOUT.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            modality, description, code = line.split("\t")
            rows.append((modality, description, code))
    return rows


def fuzzy_baseline(terms: list[PlaybookTerm], modality: str, description: str) -> list[str]:
    groups = modality_groups(modality)
    scored = []
    for t in terms:
        if groups and not groups & t.modalities:
            continue
        texts = [t.long_common_name, *t.examples]
        best = max(difflib.SequenceMatcher(None, description.lower(), x.lower()).ratio() for x in texts)
        scored.append((best, t.loinc_code))
    return [c for _, c in sorted(scored, reverse=True)[:3]]


def accuracy(rows: list[tuple[str, str, str]], rank: Callable[[str, str], list[str]],
             verbose: bool = False) -> tuple[float, float]:
    top1 = top3 = 0
    for modality, description, code in rows:
        got = rank(modality, description)
        top1 += got[:1] == [code]
        top3 += code in got[:3]
        if verbose and got[:1] != [code]:
            print(f"  miss: {modality:3} {description!r} want {code} got {got[:3]}")
    return top1 / len(rows), top3 / len(rows)


def leave_one_out(suggester: Suggester, terms: list[PlaybookTerm]) -> tuple[int, float, float]:
    rows = [(sorted(t.modalities)[0].upper().replace("XR", "DX"), e, t.loinc_code)
            for t in terms for e in t.examples if e.strip().lower() not in _BLANKS]

    def rank(modality: str, description: str) -> list[str]:
        return [s.loinc_code for s in suggester.suggest(modality, description, 3,
                                                        skip_exemplar=description)]
    a1, a3 = accuracy(rows, rank)
    return len(rows), a1, a3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="list held-out misses")
    args = parser.parse_args()
    terms = shipped_terms()
    started = time.perf_counter()
    suggester = Suggester(terms)
    load = time.perf_counter() - started
    rows = heldout()
    seen = {" ".join(e.casefold().split()) for t in terms for e in t.examples}
    overlap = [d for _, d, _ in rows if " ".join(d.casefold().split()) in seen]
    if overlap:
        raise SystemExit(f"held-out descriptions also in the Playbook examples: {overlap}")
    started = time.perf_counter()
    a1, a3 = accuracy(rows, lambda m, d: [s.loinc_code for s in suggester.suggest(m, d, 3)], args.verbose)
    per_query = (time.perf_counter() - started) / len(rows) * 1000
    b1, b3 = accuracy(rows, lambda m, d: fuzzy_baseline(terms, m, d))
    n, l1, l3 = leave_one_out(suggester, terms)
    print(f"held-out set: {len(rows)} descriptions, {len({r[2] for r in rows})} codes "
          f"(of {len(terms)} in the Playbook table)")
    print(f"suggester     top-1 {a1:.1%}  top-3 {a3:.1%}  ({per_query:.1f} ms/query, load {load:.1f} s)")
    print(f"fuzzy string  top-1 {b1:.1%}  top-3 {b3:.1%}")
    print(f"leave-one-out over {n} Playbook examples (tuning set): top-1 {l1:.1%}  top-3 {l3:.1%}")


if __name__ == "__main__":
    main()

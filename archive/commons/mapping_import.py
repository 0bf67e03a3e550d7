"""`archive mapping import FILE.tsv`: a curated mapping table as one curator action.

The file is in MIDRC's layout (`Modality / StudyDescription / LOINC code / Long Common Name`,
tab-separated, read by archive.curation.loinc_suggest.load_mapping_table). Every row becomes an
approved mapping through the ordinary mapping flow (`harmonize.set_mapping`: history, version,
re-application to stored studies), codes the term table lacks are added with the file's Long
Common Name, and the import is all-or-nothing: a row that contradicts an approved mapping (or
another row of the file) stops it unless `replace` is given, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archive.commons.harmonize import set_mapping
from archive.commons.normalize import key
from archive.curation.loinc_suggest import ApprovedMapping
from archive.errors import InvalidRequest
from archive.index import mappings as rows_of
from archive.index.handles import Connection


class ImportErrors(InvalidRequest):
    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(f"{len(problems)} row(s) refused; nothing was imported")
        self.problems = list(problems)


async def import_table(conn: Connection, rows: Sequence[ApprovedMapping], curator: str,
                       source: str, replace: bool = False) -> dict[str, Any]:
    """Import in the caller's transaction; ImportErrors (roll back) when any row is refused."""
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for n, r in enumerate(rows, start=2):  # line 1 is the header
        k = key(r.modality, r.description)
        if not r.modality.strip() or not r.description.strip():
            problems.append(f"line {n}: modality and StudyDescription are required")
        elif seen.setdefault(k, r.loinc_code) != r.loinc_code:
            problems.append(f"line {n}: {k[0]} {k[1]!r} maps to {seen[k]} earlier in the file, "
                            f"not {r.loinc_code}")
    terms = {r.loinc_code: r.long_common_name for r in rows if r.long_common_name}
    await rows_of.add_terms(conn, terms, source)
    updated = written = 0
    for n, r in enumerate(rows, start=2):
        if problems:
            break
        try:
            done = await set_mapping(conn, r.modality, r.description, r.loinc_code, "approved",
                                     curator, replace)
        except InvalidRequest as exc:
            problems.append(f"line {n}: {exc.reason}")
            continue
        written += 1
        updated += int(done["studies_updated"])
    if problems:
        raise ImportErrors(problems)
    return {"rows": len(rows), "mappings": written, "keys": len(seen),
            "studies_updated": updated}

"""QIDO-RS at millions of instances: indexes of listed studies, statistics on commons keys.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29

Measured with `python -m bench.qido_scale` (10k / 1M / 3M instances; docs/sizing.md):

* `study_listed_pk_idx` (pk) WHERE collection <> 'sequestered' AND collection <> 'staged':
  what an ordinary reader may list since the release workflow hid staged studies too. The
  0005 index `study_visible_pk_idx` covers only the first condition, so every study page
  re-read each study's heap row to test `<> 'staged'`: a last page at 1M instances (offset
  32k) walked 32k heap rows, 446 ms → 56 ms as an index-only scan (load average ≈ 20). Kept
  next to 0005's index, which still serves contributors (`<> 'staged' OR site = own`).
* `study_listed_patient_idx` (patient_pk, pk) WHERE the same: the studies of a set of
  patients (name, fuzzy-name and birth-date keys become a patient semi-join, see
  archive.query.sql.where_clauses) as an index-only scan. Without it a fuzzy name matching
  672 patients at 1M read the whole study table (seq scan, 120 ms); with it 672 index-only
  probes (16 ms). Kept small by the predicate and two bigint columns.
* Extended statistics on `lower(...)` of the text columns `commons.` keys match
  (archive.index.commons_matching compares `lower(column)`): without them PostgreSQL guesses
  0.5 % for `lower(sex) = 'male'` (53 rows for 5,333 at 1M), joins every male case's studies
  with nested loops and sorts them: `commons.case.sex` + `commons.case.age_at_index` took
  1,340 ms at 1M; with the statistics it walks studies in pk order and stops at the page:
  98 ms. Statistics objects cost nothing at write time (ANALYZE fills them) and are not
  part of Alembic's autogenerate comparison, so archive/index/commons_tables.py is unchanged.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

LISTED = "collection <> 'sequestered' AND collection <> 'staged'"
# table → text columns matched as lower(column) by commons keys (≤ 8 expressions per object)
LOWERED = {
    "clinical_case": ["site", "sex", "race", "ethnicity", "zip", "covid19_positive",
                      "index_event"],
    "covid_test": ["test_name", "test_method", "test_result"],
    "clinical_condition": ["code", "name"],
    "medication": ["code", "name", "medication_type"],
    "clinical_procedure": ["code", "name"],
    "observation": ["answer"],
    "study": ["site", "dataset", "study_description"],
}


def _stats_name(table: str) -> str:
    return f"{table}_lower_stx"


def upgrade() -> None:
    op.execute(f"CREATE INDEX IF NOT EXISTS study_listed_pk_idx ON study (pk) WHERE {LISTED}")
    op.execute("CREATE INDEX IF NOT EXISTS study_listed_patient_idx ON study (patient_pk, pk) "
               f"WHERE {LISTED}")
    for table, columns in LOWERED.items():
        exprs = ", ".join(f"(lower({c}))" for c in columns)
        if len(columns) == 1:  # a single expression: per-expression statistics only
            op.execute(f"CREATE STATISTICS IF NOT EXISTS {_stats_name(table)} ON {exprs} "
                       f"FROM {table}")
        else:  # expression statistics (+ MCV lists across them, cheap on these tables)
            op.execute(f"CREATE STATISTICS IF NOT EXISTS {_stats_name(table)} (mcv) ON {exprs} "
                       f"FROM {table}")
        op.execute(f"ANALYZE {table}")
    op.execute("ANALYZE study")


def downgrade() -> None:
    for table in LOWERED:
        op.execute(f"DROP STATISTICS IF EXISTS {_stats_name(table)}")
    op.execute("DROP INDEX IF EXISTS study_listed_patient_idx")
    op.execute("DROP INDEX IF EXISTS study_listed_pk_idx")

"""Facet rows carry a revision, so each server process can keep them in memory and catch up.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29

`/commons/explore` counted every facet with one SQL statement over `study` ⋈ `study_facet`:
0.8 s p50 at 100,000 studies on an idle 2-core machine (bench/portal_facets.py), four times
the portal's 200 ms goal; the scan, join and per-row expressions are PostgreSQL's floor. Each
process now keeps the facet rows as columns in memory (archive/commons/facet_cache.py) and
counts them with NumPy; this revision lets it fetch only what changed since it last looked:

* `study_facet.rev`: the refresh that last wrote the row. `study_facet_refresh()` takes one
  value of `study_facet_rev_seq` per run *after* its advisory lock, so revisions grow in
  commit order: a reader that has seen every row up to revision R misses nothing when it
  next asks for `rev > R`.
* `study_facet_gone`: the studies whose row a refresh removed (deleted studies), with the
  refresh's revision, so a reader learns of deletions the same way.
* The study columns the facets and visibility read (collection, site, dataset, study date,
  modalities) now mark the study when they change, as patient_pk already did: a release that
  sequesters a study reaches the cache through the same marks (and until its refresh, through
  the marks themselves: a reader overlays the marked studies' current values).
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

SINGLE = ["case_id", "case_site", "case_sex", "case_race", "case_ethnicity", "case_age_at_index",
          "case_age_at_index_gt89", "case_zip", "case_covid19_positive", "case_index_event",
          "loinc_code", "loinc_long_common_name", "loinc_system", "loinc_method",
          "loinc_contrast", "mapping_version"]
MULTI = ["body_parts", "manufacturers", "test_name", "test_method", "test_result",
         "condition_code", "condition_name", "medication_code", "medication_name",
         "medication_type", "procedure_code", "procedure_name"]
COLUMNS = SINGLE + MULTI


def _refresh(with_rev: bool) -> str:
    """study_facet_refresh() of 0015, or (with_rev) stamping rows and recording deletions."""
    rev_decl = "r bigint;" if with_rev else ""
    rev_take = "r := nextval('study_facet_rev_seq');" if with_rev else ""
    gone_returning = "RETURNING f.study_pk" if with_rev else ""
    tomb = ("tomb AS (INSERT INTO study_facet_gone (study_pk, rev) "
            "SELECT study_pk, r FROM gone),") if with_rev else ""
    cols = "study_pk, " + ", ".join(COLUMNS) + (", rev" if with_rev else "")
    values = "v.study_pk, " + ", ".join(f"v.{c}" for c in COLUMNS) + (", r" if with_rev else "")
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS) + (
        ", rev = EXCLUDED.rev" if with_rev else "")
    return f"""
CREATE OR REPLACE FUNCTION study_facet_refresh() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint; {rev_decl}
BEGIN
    IF NOT EXISTS (SELECT 1 FROM study_facet_dirty) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('study_facet_refresh'));
    {rev_take}
    WITH marks AS (DELETE FROM study_facet_dirty RETURNING study_pk, case_id),
    pks AS (SELECT study_pk AS pk FROM marks WHERE study_pk IS NOT NULL
            UNION
            SELECT s.pk FROM marks m JOIN patient p ON p.patient_id = m.case_id
                                     JOIN study s ON s.patient_pk = p.pk),
    gone AS (DELETE FROM study_facet f WHERE f.study_pk IN (SELECT pk FROM pks)
             AND NOT EXISTS (SELECT 1 FROM study s WHERE s.pk = f.study_pk) {gone_returning}),
    {tomb}
    fresh AS (INSERT INTO study_facet ({cols})
              SELECT {values} FROM study_facet_source v WHERE v.study_pk IN (SELECT pk FROM pks)
              ON CONFLICT (study_pk) DO UPDATE SET {sets}
              RETURNING 1)
    SELECT count(*) INTO n FROM fresh;
    RETURN n;
END $$
"""


STUDY_COLUMNS = ("collection", "site", "dataset", "study_date", "modalities")
WHEN = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in STUDY_COLUMNS)


def upgrade() -> None:
    op.execute("CREATE SEQUENCE study_facet_rev_seq")
    op.execute("ALTER TABLE study_facet ADD COLUMN rev bigint NOT NULL DEFAULT 0")
    op.execute("CREATE INDEX study_facet_rev_idx ON study_facet (rev)")
    op.execute("CREATE TABLE study_facet_gone (study_pk bigint NOT NULL, rev bigint NOT NULL)")
    op.execute("CREATE INDEX study_facet_gone_rev_idx ON study_facet_gone (rev)")
    op.execute(_refresh(with_rev=True))
    op.execute(f"CREATE TRIGGER study_facet_study_columns AFTER UPDATE OF "
               f"{', '.join(STUDY_COLUMNS)} ON study FOR EACH ROW WHEN ({WHEN}) "
               f"EXECUTE FUNCTION study_facet_mark_study()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS study_facet_study_columns ON study")
    op.execute(_refresh(with_rev=False))
    op.execute("DROP TABLE IF EXISTS study_facet_gone")
    op.execute("DROP INDEX IF EXISTS study_facet_rev_idx")
    op.execute("ALTER TABLE study_facet DROP COLUMN IF EXISTS rev")
    op.execute("DROP SEQUENCE IF EXISTS study_facet_rev_seq")

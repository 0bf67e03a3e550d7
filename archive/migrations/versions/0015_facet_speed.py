"""Facet counts at scale: one facet row per study, kept by triggers; statistics on lower(...).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29

`/commons/explore` counted every facet by joining study → patient → clinical_case,
study_harmonization → loinc_term, series and the clinical child tables on every request: about
3-7 s at 100,000 studies (bench/portal_facets.py; docs/performance.md). This revision adds:

* `study_facet_source`: a view, one row per study with the facet values that do not live on the
  study row itself (its case's columns, its LOINC term, the distinct body parts and
  manufacturers of its series, the distinct values of its case's clinical rows). Column names
  are the commons keys without `commons.` and with `.` → `_` (`commons.case.sex` → `case_sex`).
* `study_facet`: that view kept as a table (the explore query reads this).
* `study_facet_dirty`: which studies (by pk) or cases (by case id) changed since the table was
  last brought up to date. Triggers on every source table append here in the writer's own
  transaction (a plain INSERT: no shared row, so concurrent ingests do not queue on it), and
  `study_facet_refresh()` (called by explore before it counts, under an advisory lock) takes the
  marks and re-reads the marked studies from the view in ONE statement, so the rows it writes
  come from a snapshot that contains every change whose marks it consumed. The refresh is the
  table's only writer (no foreign key: a study delete must never wait on, or deadlock with, a
  refresh); a deleted study is marked and its row removed by the next refresh, and explore
  reads `study` LEFT JOIN `study_facet`, so a leftover row is never counted. Collection, site,
  dataset, date and modalities are read from `study` itself at query time, so releases and
  collection moves need no mark.
* Statistics on the `lower(...)` expressions that commons text filters compile to (PostgreSQL
  had none and estimated 238 rows for 25,000, choosing nested loops): extended statistics on
  single expressions (PostgreSQL 14+).
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# (column, type, expression over c = clinical_case, h = study_harmonization, t = loinc_term)
SINGLE = [
    ("case_id", "text", "c.case_id"),
    ("case_site", "text", "c.site"),
    ("case_sex", "text", "c.sex"),
    ("case_race", "text", "c.race"),
    ("case_ethnicity", "text", "c.ethnicity"),
    ("case_age_at_index", "integer", "c.age_at_index"),
    ("case_age_at_index_gt89", "boolean", "c.age_at_index_gt89"),
    ("case_zip", "text", "c.zip"),
    ("case_covid19_positive", "text", "c.covid19_positive"),
    ("case_index_event", "text", "c.index_event"),
    ("loinc_code", "text", "h.loinc_code"),
    ("loinc_long_common_name", "text", "t.long_common_name"),
    ("loinc_system", "text", "t.body_system"),
    ("loinc_method", "text", "t.method"),
    ("loinc_contrast", "text", "t.contrast"),
    ("mapping_version", "bigint", "h.mapping_version"),
]
# (column, table, value column, key): distinct values, NULL included (a NULL is a facet value)
MULTI = [
    ("body_parts", "series", "body_part", "study_pk = s.pk"),
    ("manufacturers", "series", "attrs -> '00080070' -> 'Value' ->> 0", "study_pk = s.pk"),
    ("test_name", "covid_test", "test_name", "case_id = c.case_id"),
    ("test_method", "covid_test", "test_method", "case_id = c.case_id"),
    ("test_result", "covid_test", "test_result", "case_id = c.case_id"),
    ("condition_code", "clinical_condition", "code", "case_id = c.case_id"),
    ("condition_name", "clinical_condition", "name", "case_id = c.case_id"),
    ("medication_code", "medication", "code", "case_id = c.case_id"),
    ("medication_name", "medication", "name", "case_id = c.case_id"),
    ("medication_type", "medication", "medication_type", "case_id = c.case_id"),
    ("procedure_code", "clinical_procedure", "code", "case_id = c.case_id"),
    ("procedure_name", "clinical_procedure", "name", "case_id = c.case_id"),
]
COLUMNS = [c for c, _, _ in SINGLE] + [c for c, *_ in MULTI]


def _multi(table: str, value: str, key: str) -> str:
    """Distinct values of a study's series, or of its case's rows (NULL without a case)."""
    values = f"ARRAY(SELECT DISTINCT {value} FROM {table} WHERE {key} ORDER BY 1)"
    return values if key.startswith("study_pk") else \
        f"CASE WHEN c.case_id IS NULL THEN NULL ELSE {values} END"


VIEW = f"""
CREATE VIEW study_facet_source AS
SELECT s.pk AS study_pk,
       {", ".join(f"{e} AS {c}" for c, _, e in SINGLE)},
       {", ".join(f"{_multi(t, v, k)} AS {c}" for c, t, v, k in MULTI)}
FROM study s
LEFT JOIN patient p ON p.pk = s.patient_pk
LEFT JOIN clinical_case c ON c.case_id = p.patient_id
LEFT JOIN study_harmonization h ON h.study_pk = s.pk
LEFT JOIN loinc_term t ON t.code = h.loinc_code
"""

TABLE = f"""
CREATE TABLE study_facet (
    study_pk bigint PRIMARY KEY,
    {", ".join(f"{c} {t}" for c, t, _ in SINGLE)},
    {", ".join(f"{c} text[]" for c, *_ in MULTI)}
)
"""

REFRESH = f"""
CREATE FUNCTION study_facet_refresh() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM study_facet_dirty) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('study_facet_refresh'));
    WITH marks AS (DELETE FROM study_facet_dirty RETURNING study_pk, case_id),
    pks AS (SELECT study_pk AS pk FROM marks WHERE study_pk IS NOT NULL
            UNION
            SELECT s.pk FROM marks m JOIN patient p ON p.patient_id = m.case_id
                                     JOIN study s ON s.patient_pk = p.pk),
    gone AS (DELETE FROM study_facet f WHERE f.study_pk IN (SELECT pk FROM pks)
             AND NOT EXISTS (SELECT 1 FROM study s WHERE s.pk = f.study_pk)),
    fresh AS (INSERT INTO study_facet
              SELECT v.* FROM study_facet_source v WHERE v.study_pk IN (SELECT pk FROM pks)
              ON CONFLICT (study_pk) DO UPDATE SET
              {", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS)}
              RETURNING 1)
    SELECT count(*) INTO n FROM fresh;
    RETURN n;
END $$
"""

# (function, body): each marks what changed; the triggers below say when they fire
MARKERS = [
    ("study_facet_mark_study", """
        INSERT INTO study_facet_dirty (study_pk)
        VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.pk ELSE NEW.pk END);"""),
    ("study_facet_mark_study_pk", """
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO study_facet_dirty (study_pk) VALUES (OLD.study_pk);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO study_facet_dirty (study_pk) VALUES (NEW.study_pk);
        END IF;"""),
    ("study_facet_mark_case", """
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO study_facet_dirty (case_id) VALUES (OLD.case_id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO study_facet_dirty (case_id) VALUES (NEW.case_id);
        END IF;"""),
    ("study_facet_mark_patient", """
        INSERT INTO study_facet_dirty (study_pk) SELECT pk FROM study WHERE patient_pk = NEW.pk;"""),
    ("study_facet_mark_loinc", """
        INSERT INTO study_facet_dirty (study_pk)
        SELECT study_pk FROM study_harmonization
        WHERE loinc_code IN (CASE WHEN TG_OP <> 'INSERT' THEN OLD.code END,
                             CASE WHEN TG_OP <> 'DELETE' THEN NEW.code END);"""),
]

_ROW = "AFTER {events} ON {table} FOR EACH ROW"
TRIGGERS = [
    ("study_facet_study_ins", "INSERT OR DELETE", "study", None, "study_facet_mark_study"),
    ("study_facet_study_upd", "UPDATE OF patient_pk", "study",
     "OLD.patient_pk IS DISTINCT FROM NEW.patient_pk", "study_facet_mark_study"),
    ("study_facet_series_ins", "INSERT OR DELETE", "series", None, "study_facet_mark_study_pk"),
    ("study_facet_series_upd", "UPDATE", "series",
     "OLD.study_pk IS DISTINCT FROM NEW.study_pk OR OLD.body_part IS DISTINCT FROM NEW.body_part"
     " OR (OLD.attrs -> '00080070') IS DISTINCT FROM (NEW.attrs -> '00080070')",
     "study_facet_mark_study_pk"),
    ("study_facet_harmonization", "INSERT OR UPDATE OR DELETE", "study_harmonization", None,
     "study_facet_mark_study_pk"),
    ("study_facet_patient_upd", "UPDATE OF patient_id", "patient",
     "OLD.patient_id IS DISTINCT FROM NEW.patient_id", "study_facet_mark_patient"),
    ("study_facet_loinc", "INSERT OR UPDATE OR DELETE", "loinc_term", None,
     "study_facet_mark_loinc"),
    *[(f"study_facet_{t}", "INSERT OR UPDATE OR DELETE", t, None, "study_facet_mark_case")
      for t in ("clinical_case", "covid_test", "clinical_condition", "medication",
                "clinical_procedure")],
]

LOWER_STATISTICS = [("clinical_case", c) for c in ("sex", "race", "ethnicity", "site",
                                                    "index_event")] + [
    ("covid_test", c) for c in ("test_name", "test_method", "test_result")] + [
    ("study", c) for c in ("site", "dataset")] + [
    ("loinc_term", c) for c in ("long_common_name", "body_system", "method", "contrast")]


def _stat_name(table: str, column: str) -> str:
    return f"{table}_lower_{column}_stat"


def upgrade() -> None:
    op.execute(VIEW)
    op.execute(TABLE)
    op.execute("CREATE TABLE study_facet_dirty (study_pk bigint, case_id text)")
    op.execute(REFRESH)
    for name, body in MARKERS:
        op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                   f"BEGIN{body}\n    RETURN NULL;\nEND $$")
    for name, events, table, when, function in TRIGGERS:
        condition = f" WHEN ({when})" if when else ""
        op.execute(f"CREATE TRIGGER {name} {_ROW.format(events=events, table=table)}"
                   f"{condition} EXECUTE FUNCTION {function}()")
    op.execute("INSERT INTO study_facet SELECT * FROM study_facet_source")
    op.execute(f"""DO $$ BEGIN
        IF current_setting('server_version_num')::int >= 140000 THEN
            {" ".join(f"CREATE STATISTICS IF NOT EXISTS {_stat_name(t, c)} ON (lower({c})) "
                      f"FROM {t};" for t, c in LOWER_STATISTICS)}
        END IF;
    END $$""")
    op.execute(f"ANALYZE {', '.join(sorted({t for t, _ in LOWER_STATISTICS}))}, study_facet")


def downgrade() -> None:
    for t, c in LOWER_STATISTICS:
        op.execute(f"DROP STATISTICS IF EXISTS {_stat_name(t, c)}")
    for name, _, table, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for name, _ in MARKERS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.execute("DROP FUNCTION IF EXISTS study_facet_refresh()")
    op.execute("DROP TABLE IF EXISTS study_facet_dirty")
    op.execute("DROP TABLE IF EXISTS study_facet")
    op.execute("DROP VIEW IF EXISTS study_facet_source")

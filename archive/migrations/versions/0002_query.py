"""Query indexes: name folding for fuzzy PN matching, pattern and trigram indexes, JSONB GIN.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

`archive_fold_name(text)` must stay identical to archive/query/fold.py (a test compares them).
pg_trgm is optional: where the extension is not available (some embedded builds) the trigram
indexes are skipped and infix wildcard / fuzzy queries fall back to scans of the small patient
and study tables.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FOLD_FROM = "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳßøØđĐħĦıłŁŧŦæÆœŒðÐþÞ"
FOLD_TO = "aaaaaaceeeeiiiinooooouuuuyaaaaaaceeeeiiiinooooouuuuyyaaaaaaccccccccddeeeeeeeeeegggggggghhiiiiiiiiijjkkllllllnnnnnnoooooorrrrrrssssssssttttuuuuuuuuuuuuwwyyyzzzzzzoouuaaiioouuuuuuuuuuaaaaggkkoooojggnnaaaaaaeeeeiiiioooorrrruuuusstthhaaeeooooooooyysooddhhillttaaooddtt"

FOLD_FUNCTION = (
    "CREATE OR REPLACE FUNCTION archive_fold_name(name text) RETURNS text "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT AS $fold$ "
    "SELECT ' ' || btrim(regexp_replace(lower(translate(name, '" + FOLD_FROM + "', '" + FOLD_TO
    + "')), '[\\^=,.\\s''-]+', ' ', 'g')) || ' ' $fold$"
)

TRIGRAM = """
DO $trgm$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXECUTE 'CREATE INDEX IF NOT EXISTS patient_name_trgm_idx ON patient '
                'USING gin (lower(patient_name) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX IF NOT EXISTS patient_name_fold_trgm_idx ON patient '
                'USING gin (archive_fold_name(patient_name) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX IF NOT EXISTS study_description_trgm_idx ON study '
                'USING gin (study_description gin_trgm_ops)';
        EXECUTE 'CREATE INDEX IF NOT EXISTS study_referring_trgm_idx ON study '
                'USING gin (lower(referring_physician_name) gin_trgm_ops)';
    END IF;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE NOTICE 'pg_trgm not available: infix wildcard queries will scan';
END
$trgm$
"""

STATEMENTS = [
    FOLD_FUNCTION,
    "CREATE INDEX IF NOT EXISTS patient_name_pattern_idx ON patient "
    "(lower(patient_name) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS patient_id_pattern_idx ON patient (patient_id text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS patient_birth_date_idx ON patient (patient_birth_date)",
    "CREATE INDEX IF NOT EXISTS study_accession_pattern_idx ON study "
    "(accession_number text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS study_referring_pattern_idx ON study "
    "(lower(referring_physician_name) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS study_description_pattern_idx ON study "
    "(study_description text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS study_id_idx ON study (study_id)",
    "CREATE INDEX IF NOT EXISTS study_attrs_gin_idx ON study USING gin (attrs jsonb_path_ops)",
    "CREATE INDEX IF NOT EXISTS series_date_idx ON series (series_date)",
    "CREATE INDEX IF NOT EXISTS series_body_part_idx ON series (body_part)",
    "CREATE INDEX IF NOT EXISTS series_attrs_gin_idx ON series USING gin (attrs jsonb_path_ops)",
    TRIGRAM,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for index in ("patient_name_trgm_idx", "patient_name_fold_trgm_idx",
                  "study_description_trgm_idx", "study_referring_trgm_idx",
                  "patient_name_pattern_idx", "patient_id_pattern_idx", "patient_birth_date_idx",
                  "study_accession_pattern_idx", "study_referring_pattern_idx",
                  "study_description_pattern_idx", "study_id_idx", "study_attrs_gin_idx",
                  "series_date_idx", "series_body_part_idx", "series_attrs_gin_idx"):
        op.execute(f"DROP INDEX IF EXISTS {index}")
    op.execute("DROP FUNCTION IF EXISTS archive_fold_name(text)")

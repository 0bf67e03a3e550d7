"""Retrieve: precomputed WADO-RS metadata text per instance.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

`instance.metadata` holds the instance's DICOM JSON *as text*, Pixel Data included as a
`bulk:TAG` BulkDataURI marker, kept up to date by a trigger whenever `header` or `pixels` is
written (so ingest needs no change). Series/study metadata is then one `string_agg` of
`replace(metadata, 'bulk:', <instance URL>/bulkdata/)` in PostgreSQL: no jsonb → text
conversion per request and no JSON work in Python. lz4 TOAST compression is used where the
server supports it (faster to decompress than pglz).
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Header + Available Transfer Syntax UID (0008,3002: the stored syntax, so a viewer knows what
# `transfer-syntax=*` will return) + Pixel Data as a BulkDataURI marker.
METADATA_EXPR = (
    "({t}.header || jsonb_build_object('00083002', jsonb_build_object('vr', 'UI', 'Value', "
    "jsonb_build_array({t}.transfer_syntax))) || "
    "CASE WHEN {t}.pixels IS NULL THEN '{{}}'::jsonb "
    "ELSE jsonb_build_object({t}.pixels->>'tag', jsonb_build_object("
    "'vr', {t}.pixels->>'vr', 'BulkDataURI', 'bulk:' || ({t}.pixels->>'tag'))) END)::text"
)

FUNCTION = f"""
CREATE OR REPLACE FUNCTION archive_instance_metadata() RETURNS trigger
LANGUAGE plpgsql AS $meta$
BEGIN
    NEW.metadata := {METADATA_EXPR.format(t="NEW")};
    RETURN NEW;
END
$meta$
"""

LZ4 = """
DO $lz4$
BEGIN
    ALTER TABLE instance ALTER COLUMN metadata SET COMPRESSION lz4;
EXCEPTION WHEN others THEN
    RAISE NOTICE 'lz4 not available: metadata keeps the default TOAST compression';
END
$lz4$
"""

STATEMENTS = [
    "ALTER TABLE instance ADD COLUMN metadata text",
    LZ4,
    FUNCTION,
    "CREATE TRIGGER instance_metadata BEFORE INSERT OR UPDATE OF header, pixels, transfer_syntax "
    "ON instance "
    "FOR EACH ROW EXECUTE FUNCTION archive_instance_metadata()",
    f"UPDATE instance SET metadata = {METADATA_EXPR.format(t='instance')}",
    "ALTER TABLE instance ALTER COLUMN metadata SET NOT NULL",
]


def upgrade() -> None:
    for statement in STATEMENTS:  # asyncpg: one statement per execute
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS instance_metadata ON instance")
    op.execute("DROP FUNCTION IF EXISTS archive_instance_metadata()")
    op.execute("ALTER TABLE instance DROP COLUMN IF EXISTS metadata")

"""instance.metadata: the writer may supply it; the trigger builds it only when it does not.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29

The BEFORE INSERT/UPDATE trigger of 0003 built `metadata` from the header jsonb for every row
(jsonb concatenation, then jsonb → text): the largest single item of PostgreSQL's work per
ingested instance (issue 14, bench/pg_cost.py: ≈0.06–0.07 ms of the backend's CPU per row, a
third of the batched instance insert's).
Ingest now sends the text, spliced by the parse worker from the header's own JSON
(archive/index_json.py). The one trigger becomes two with a WHEN condition, evaluated without
calling the function (a PL/pgSQL call that returns at once still cost ≈0.025 ms per row):

* `instance_metadata` BEFORE INSERT, when the row comes without metadata;
* `instance_metadata_update` BEFORE UPDATE OF header, pixels, transfer_syntax, when the update
  leaves metadata NULL or as it was (a writer that changes the header without sending it).

`archive_instance_metadata()` is unchanged. Rows stored before keep their metadata: the same
DICOM JSON content (see archive/index_json.py for the byte format).
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_EXECUTE = "FOR EACH ROW {when} EXECUTE FUNCTION archive_instance_metadata()"


def upgrade() -> None:
    op.execute("DROP TRIGGER instance_metadata ON instance")
    op.execute("CREATE TRIGGER instance_metadata BEFORE INSERT ON instance "
               + _EXECUTE.format(when="WHEN (NEW.metadata IS NULL)"))
    op.execute("CREATE TRIGGER instance_metadata_update BEFORE UPDATE OF header, pixels, "
               "transfer_syntax ON instance " + _EXECUTE.format(
                   when="WHEN (NEW.metadata IS NULL OR NEW.metadata IS NOT DISTINCT FROM "
                        "OLD.metadata)"))


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS instance_metadata_update ON instance")
    op.execute("DROP TRIGGER IF EXISTS instance_metadata ON instance")
    op.execute("CREATE TRIGGER instance_metadata BEFORE INSERT OR UPDATE OF header, pixels, "
               "transfer_syntax ON instance " + _EXECUTE.format(when=""))

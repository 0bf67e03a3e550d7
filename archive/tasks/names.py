"""Task names. They are stored in each queued row, so they are fixed strings, never derived from
module paths a refactoring could change; changing one needs a migration of queued rows."""

REAPPLY_MAPPING = "harmonize.reapply_key"
SWEEP_ORPHANS = "storage.sweep_orphans"
RETRY_STALLED = "queue.retry_stalled"
REFRESH_FACETS = "commons.refresh_facets"

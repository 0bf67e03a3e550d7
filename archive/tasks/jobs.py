"""What each queued job does. Every job is idempotent — it reads the state it brings the index
to when it runs, never from its arguments alone — because a job whose worker died after its
commit but before it was marked done runs again on another node."""

from __future__ import annotations

import logging

from procrastinate import App, JobContext

from archive.core import Core
from archive.index import commons_explore, commons_harmonize
from archive.sweep import sweep_orphans

log = logging.getLogger("archive.tasks")


def core_of(context: JobContext) -> Core:
    """The node's Core, handed to the worker as additional context by archive.tasks.runner."""
    core = (context.additional_context or {}).get("core")
    if not isinstance(core, Core):
        raise RuntimeError("job run without a node core (start it with `archive worker`)")
    return core


async def reapply_mapping(context: JobContext, modality: str, description: str) -> int:
    """Re-apply a harmonization key's mapping (archive.commons.harmonize queues this with each
    mapping change) to every study with that key, as the mapping stands when the job runs —
    not as it was queued — so a rerun, or a run after a newer change, still ends right."""
    core = core_of(context)
    async with core.engine.begin() as conn:
        changed = await commons_harmonize.reapply_current(conn, modality, description)
    log.info("mapping re-applied", extra={"modality": modality, "description": description,
                                          "studies_updated": changed})
    return changed


async def sweep(context: JobContext, timestamp: int) -> dict[str, int]:
    """Periodic orphan sweep while every node keeps ingesting: only journaled keys of dead
    writers or past the grace period go (archive.sweep); the spool is each node's own."""
    core = core_of(context)
    return await sweep_orphans(core.engine, core.blobs, clear_spool=False)


async def refresh_facets(context: JobContext, timestamp: int) -> int:
    """Periodic catch-up of the per-study facet rows (migration 0015): explore refreshes them
    before it counts, but an archive that only ingests would otherwise keep piling up the
    triggers' marks (about three per new study) until someone explores. Idempotent: it applies
    whatever is marked when it runs."""
    core = core_of(context)
    async with core.engine.connect() as conn:
        return await commons_explore.refresh_facets(conn)


async def retry_stalled(app: App, stalled_seconds: float) -> int:
    """Put back to `todo` the running jobs of workers silent for `stalled_seconds` (killed,
    frozen or cut off): procrastinate finds them by heartbeat; this makes it periodic."""
    retried = 0
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_seconds):
        await app.job_manager.retry_job(job)
        log.warning("retrying the job of a stalled worker",
                    extra={"job_id": job.id, "task": job.task_name, "worker": job.worker_id})
        retried += 1
    return retried

"""The task queue's schema and settings: migration 0021 holds procrastinate's schema for the
pinned version (a version bump without a new revision fails here), the queue's tables are left
out of the autogenerate comparison, and the job settings reach `archive serve` / `archive worker`."""

from __future__ import annotations

import importlib.metadata
from importlib.resources import files
from types import ModuleType

from archive import config
from archive.cli import parser, settings_from
from archive.index.schema import include_object
from tests.migration_files import load_migration


def revision() -> ModuleType:
    return load_migration("0014_task_queue.py")


def test_migration_holds_the_installed_procrastinate_schema() -> None:
    rev = revision()
    installed = importlib.metadata.version("procrastinate")
    assert installed == rev.PROCRASTINATE_VERSION, (
        f"procrastinate {installed} is installed, migration 0021 holds {rev.PROCRASTINATE_VERSION}'s"
        " schema: add a revision applying procrastinate/sql/migrations/ between them")
    shipped = files("procrastinate").joinpath("sql/schema.sql").read_text()
    assert rev.SCHEMA.strip() == shipped.strip()


def test_the_schema_splits_into_whole_statements() -> None:
    parts = revision().statements(revision().SCHEMA)
    assert sum(p.startswith("CREATE FUNCTION") for p in parts) == revision().SCHEMA.count(
        "CREATE FUNCTION")
    assert all(p.rstrip().endswith(";") for p in parts)
    assert all(p.count("$$") % 2 == 0 for p in parts)  # no function body cut in two


def test_autogenerate_leaves_the_queue_tables_alone() -> None:
    assert not include_object(None, "procrastinate_jobs", "table", True, None)
    assert include_object(None, "study", "table", True, None)


def test_job_settings_reach_serve_and_worker() -> None:
    serve = settings_from(parser().parse_args(["serve", "--no-jobs", "--job-concurrency", "3"]))
    assert serve.run_jobs is False and serve.job_concurrency == 3
    assert settings_from(parser().parse_args(["serve"])).run_jobs is True
    worker = settings_from(parser().parse_args(["worker", "--job-concurrency", "5"]))
    assert worker.job_concurrency == 5
    env = config.load(environ={"ARCHIVE_RUN_JOBS": "false", "ARCHIVE_JOB_STALLED_SECONDS": "4"})
    assert env.run_jobs is False and env.job_stalled_seconds == 4.0

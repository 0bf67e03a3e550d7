"""The retrieve core on a real index: visibility, keys, DELETE and its crash safety."""

from __future__ import annotations

import pytest

from archive.core import Caller
from archive.delete import delete
from archive.errors import NotFound
from archive.retrieve import Keys, locate, locate_keys
from archive.sweep import sweep_orphans
from tests import factories as f
from tests.conftest import RunningArchive
from tests.dicomweb.test_wado import store

PUBLIC = Caller()
CURATOR = Caller(may_see_sequestered=True)


def test_locate_orders_and_applies_visibility(server: RunningArchive) -> None:
    store(server, list(reversed(f.series_of(3, "loc1"))))
    secret = f.image("loc2")
    store(server, [secret], **{"X-Archive-Collection": "sequestered"})
    study = f.image("loc1").StudyInstanceUID
    found = server.run(locate(server.core, PUBLIC, study))
    assert [loc.sop_uid for loc in found] == [f.image("loc1", "se1", n).SOPInstanceUID
                                               for n in (1, 2, 3)]
    assert all(loc.path.is_file() and loc.path.stat().st_size == loc.size for loc in found)
    with pytest.raises(NotFound):
        server.run(locate(server.core, PUBLIC, secret.StudyInstanceUID))
    assert len(server.run(locate(server.core, CURATOR, secret.StudyInstanceUID))) == 1
    keys = Keys(studies=(study, secret.StudyInstanceUID))
    assert len(server.run(locate_keys(server.core, PUBLIC, keys))) == 3
    assert len(server.run(locate_keys(server.core, CURATOR, keys))) == 4


def test_delete_hides_sequestered_and_recounts(server: RunningArchive) -> None:
    secret = f.image("del1")
    store(server, [secret], **{"X-Archive-Collection": "sequestered"})
    with pytest.raises(NotFound):
        server.run(delete(server.core, PUBLIC, secret.StudyInstanceUID))
    gone = server.run(delete(server.core, CURATOR, secret.StudyInstanceUID))
    assert (gone.instances, gone.studies) == (1, 1)
    assert server.sql("SELECT count(*) AS n FROM patient")[0]["n"] == 0


def test_crash_between_commit_and_unlink_leaves_orphans_the_sweep_removes(
    server: RunningArchive,
) -> None:
    datasets = f.series_of(2, "del2")
    store(server, datasets)
    found = server.run(locate(server.core, PUBLIC, datasets[0].StudyInstanceUID))
    saved = {loc.path: loc.path.read_bytes() for loc in found}
    first = datasets[0]
    server.run(delete(server.core, PUBLIC, first.StudyInstanceUID, first.SeriesInstanceUID,
                      first.SOPInstanceUID))
    for path, data in saved.items():  # as if the process died before unlinking
        if not path.exists():
            path.write_bytes(data)
    result = server.run(sweep_orphans(server.core.engine, server.core.blobs))
    assert result["orphan_blobs"] == 1
    left = server.run(locate(server.core, PUBLIC, datasets[0].StudyInstanceUID))
    assert [loc.sop_uid for loc in left] == [datasets[1].SOPInstanceUID]
    assert all(loc.path.exists() for loc in left)
    row = server.sql("SELECT num_instances FROM study")[0]
    assert row["num_instances"] == 1

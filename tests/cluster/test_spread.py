"""C-STORE spread over two nodes by four clients (issue 15): two `archive serve` processes on
one database and one bucket of a real object store (SeaweedFS); each client alternates between
the nodes, and the studies are shared between clients, so concurrent writes of one study arrive
through both nodes. Afterwards every instance is present through either node, byte-identical to
what was sent, and the study and series aggregates are right."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from tests import factories as f
from tests.cluster.procs import Proc
from tests.dicomweb.test_wado import parts
from tests.s3 import BUCKET

pytestmark = pytest.mark.slow
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
STUDIES, SERIES, PER_SERIES, CLIENTS = 2, 3, 8, 4


@pytest.fixture
def nodes(seaweed: Any, database_url: str, tmp_path: Path) -> Iterator[list[Proc]]:
    storage = ["--storage", f"s3://{BUCKET}/spread-{uuid.uuid4().hex[:8]}", "--s3-endpoint",
               seaweed.endpoint, "--s3-region", "us-east-1", "--s3-path-style"]
    started = [Proc("serve", tmp_path / name, database_url, *storage) for name in ("a", "b")]
    try:
        for p in started:
            p.start()
        yield started
    finally:
        for p in started:
            p.stop()


def _client(k: int, nodes: list[Proc], work: list[pydicom.Dataset],
            statuses: dict[str, int], errors: list[str]) -> None:
    """Client k sends its share, one association per node, alternating instance by instance."""
    ae = AE(ae_title="SPREAD")  # one sender (one site), four parallel associations
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assocs = [ae.associate("127.0.0.1", n.dimse, ae_title="ARCHIVE") for n in nodes]
    try:
        if not all(a.is_established for a in assocs):
            errors.append(f"client {k}: association refused")
            return
        for i, ds in enumerate(work):
            status = assocs[(i + k) % len(assocs)].send_c_store(ds)
            statuses[ds.SOPInstanceUID] = int(status.Status) if status else -1
    finally:
        for a in assocs:
            if a.is_established:
                a.release()


def test_c_store_by_four_clients_over_two_nodes(nodes: list[Proc]) -> None:
    sent = [f.image(f"spread{s}", f"se{se}", n, rows=32, columns=32)
            for s in range(STUDIES) for se in range(SERIES) for n in range(1, PER_SERIES + 1)]
    statuses: dict[str, int] = {}
    errors: list[str] = []
    clients = [threading.Thread(target=_client, args=(k, nodes, sent[k::CLIENTS], statuses,
                                                      errors)) for k in range(CLIENTS)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(300)
    assert not errors, errors
    assert len(statuses) == len(sent) and set(statuses.values()) == {0}, statuses
    for ds in sent:
        expected = encode(ds, False, True)  # what pynetdicom put on the wire
        got = []
        for node in nodes:
            url = (f"{node.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                   f"/instances/{ds.SOPInstanceUID}")
            r = requests.get(url, headers={"Accept": AS_STORED}, timeout=60)
            assert r.status_code == 200, (node.url, r.status_code)
            [(_, body)] = parts(r)
            got.append(body)
        assert got[0] == got[1], ds.SOPInstanceUID  # one object, whichever node serves it
        meta = pydicom.dcmread(BytesIO(got[0]), stop_before_pixels=True).file_meta
        offset = 132 + 12 + int(meta.FileMetaInformationGroupLength)
        assert got[0][offset:] == expected, ds.SOPInstanceUID
    for node in nodes:
        studies = requests.get(f"{node.url}/studies", timeout=60, params={
            "includefield": "00201206,00201208", "StudyInstanceUID": ",".join(
                sorted({d.StudyInstanceUID for d in sent}))}).json()
        assert len(studies) == STUDIES
        for st in studies:
            assert st["00201206"]["Value"] == [SERIES], st
            assert st["00201208"]["Value"] == [SERIES * PER_SERIES], st
            uid = st["0020000D"]["Value"][0]
            series = requests.get(f"{node.url}/studies/{uid}/series", timeout=60,
                                  params={"includefield": "00201209"}).json()
            assert sorted(s["00201209"]["Value"][0] for s in series) == [PER_SERIES] * SERIES

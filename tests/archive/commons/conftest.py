"""A module-scoped archive holding the synthetic commons (built once per test module).

The data go in through the real doors: images by STOW-RS (dicomweb-client, with the site and
collection headers a contributing site would send), clinical data by POST /commons/cases.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.archive.commons import synth
from tests.conftest import RunningArchive, ServerThread, _admin, _with_db, make_settings

CURATOR = "curator-secret"
AUTH = {"Authorization": f"Bearer {CURATOR}"}


@dataclass
class Loaded:
    server: RunningArchive
    commons: synth.Commons


def store(server: RunningArchive, commons: synth.Commons) -> None:
    for site in synth.SITES:
        by_uid = {s.uid: s for s in commons.studies}
        images = synth.datasets(commons, site)
        for sequestered in (False, True):
            headers = {"X-Archive-Site": site} | AUTH
            if site in synth.EXPLICIT_DATASET:
                headers["X-Archive-Dataset"] = synth.EXPLICIT_DATASET[site]
            if sequestered:
                headers["X-Archive-Collection"] = "sequestered"
            client = DICOMwebClient(server.url, headers=headers)
            batch = [d for d in images if by_uid[d.StudyInstanceUID].sequestered == sequestered]
            for i in range(0, len(batch), 60):
                client.store_instances(batch[i:i + 60])


def post_clinical(server: RunningArchive, commons: synth.Commons) -> requests.Response:
    cases = [c.as_json() for c in commons.cases if c.has_clinical]
    return requests.post(f"{server.base}/commons/cases", json=cases, headers=AUTH, timeout=120)


@contextmanager
def running_commons(pg_server_url: str, template_db: str, tmp: Path,
                    **overrides: Any) -> Iterator[Loaded]:
    """A fresh database and archive holding the synthetic commons, for one test module."""
    name = f"archive_c_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    url = _with_db(pg_server_url, name)
    thread = ServerThread(make_settings(tmp, url, curator_token=CURATOR, **overrides), url)
    try:
        server = thread.start()
        commons = synth.build()
        r = post_clinical(server, commons)  # clinical rows first: they link up when images come
        assert r.status_code == 200, r.text
        store(server, commons)
        yield Loaded(server, commons)
    finally:
        thread.stop()
        asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def loaded(pg_server_url: str, template_db: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    with running_commons(pg_server_url, template_db, tmp_path_factory.mktemp("commons")) as c:
        yield c

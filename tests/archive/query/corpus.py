"""A small, deterministic corpus for matching tests, stored through the real STOW-RS door.

Four studies (A, B, C, S) whose attributes exercise every matching rule; S is stored into the
sequestered collection, so it must never appear to an ordinary caller.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from tests import factories as f
from tests.conftest import RunningArchive, ServerThread, _admin, _with_db, make_settings


@dataclass(frozen=True)
class Corpus:
    uids: dict[str, str]  # letter → StudyInstanceUID

    def letters(self, study_uids: list[str]) -> set[str]:
        back = {v: k for k, v in self.uids.items()}
        return {back.get(u, u) for u in study_uids}


def _code(value: str, scheme: str = "LOCAL") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = f"procedure {value}"
    return item


def _study(letter: str, *, pid: str, name: str, date: str, time: str, desc: str | None,
           modalities: list[str], institution: str, code: str | None, private: str | None,
           birth: str, per_series: int = 1) -> list[Dataset]:
    out = []
    for s, modality in enumerate(modalities, start=1):
        for n in range(1, per_series + 1):
            ds = f.image(f"q{letter}", f"se{s}", n, modality=modality, patient_id=pid,
                         patient_name=name, study_date=date,
                         study_description=desc or "", rows=8, columns=8)
            ds.StudyTime = time
            ds.PatientBirthDate = birth
            ds.SeriesNumber = s
            ds.SeriesDescription = f"{modality} series {s}"
            ds.InstitutionName = institution
            ds.AccessionNumber = f"ACC-{letter}"
            if desc is None:
                del ds.StudyDescription
            if code:
                ds.ProcedureCodeSequence = [_code(code)]
            if private:
                block = ds.private_block(0x0009, "ACME 1.0", create=True)
                block.add_new(0x01, "LO", private)
            out.append(ds)
    return out


def store_corpus(server: RunningArchive) -> Corpus:
    studies = {
        "A": _study("A", pid="PID-A", name="Müller^José", date="20240115", time="083000",
                    desc="CT CHEST", modalities=["CT", "SR"], institution="General Hospital",
                    code="P1", private="alpha", birth="19600101", per_series=2),
        "B": _study("B", pid="PID-B", name="SMITH^Anna", date="20240220", time="141500",
                    desc="MR BRAIN", modalities=["MR"], institution="Other Clinic",
                    code="P2", private="beta", birth="19750505"),
        "C": _study("C", pid="PID-C", name="smithson^bob", date="20231231", time="235959",
                    desc=None, modalities=["CT", "MR"], institution="General Hospital",
                    code=None, private=None, birth="19900909"),
    }
    auth = {"Authorization": f"Bearer {server.settings.curator_token}"}  # writers need a role
    client = DICOMwebClient(server.url, headers=auth)
    for letter in ("A", "B", "C"):
        client.store_instances(studies[letter])
    hidden = _study("S", pid="PID-S", name="SECRET^Sam", date="20240115", time="083000",
                    desc="CT CHEST", modalities=["CT"], institution="General Hospital",
                    code="P1", private="alpha", birth="19600101")
    body = b"".join(b"--XbOuNdArYx\r\nContent-Type: application/dicom\r\n\r\n" + f.to_bytes(d)
                    + b"\r\n" for d in hidden) + b"--XbOuNdArYx--\r\n"
    r = requests.post(
        server.url + "/studies?collection=sequestered", data=body, timeout=60,
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx',
                 "Accept": "application/dicom+json", **auth},
    )
    assert r.status_code == 200, r.text
    uids = {k: v[0].StudyInstanceUID for k, v in studies.items()}
    uids["S"] = hidden[0].StudyInstanceUID
    return Corpus(uids)


@contextmanager
def running_with_corpus(pg_server_url: str, template_db: str, tmp: Path,
                        **overrides: Any) -> Iterator[tuple[RunningArchive, Corpus]]:
    """A server on a fresh database with the corpus stored, shared by a module's tests."""
    name = f"archive_q_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    url = _with_db(pg_server_url, name)
    thread = ServerThread(make_settings(tmp, url, **overrides), url)
    try:
        server = thread.start()
        yield server, store_corpus(server)
    finally:
        thread.stop()
        asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

"""Audit trail: batched writes into the append-only table, export formats, syslog over TCP."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from lxml import etree

from archive.identity.audit import AuditAction, AuditEvent, Outcome, to_xml
from archive.identity.audit_log import AuditWriter, query_events
from archive.identity.roles import Identity, Kind, Role
from archive.identity.syslog import SyslogSender, frame
from archive.index.engine import create_engine
from tests.identity.test_keys_cli import archive

CURATOR = Identity("alice", Role.CURATOR, Kind.OIDC, None, "198.51.100.4")
SITE_A = Identity("gw-a", Role.CONTRIBUTOR, Kind.API_KEY, "SITE_A", "203.0.113.9")


def _events(n: int, who: Identity = SITE_A) -> list[AuditEvent]:
    return [AuditEvent.now(AuditAction.INSTANCES_TRANSFERRED, who, study_uids=[f"1.2.3.{i}"],
                           event_action="C", detail={"instances": 1}) for i in range(n)]


async def test_batched_writer_groups_events_and_costs_little(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    w = AuditWriter(engine, batch_size=100, flush_seconds=0.05)
    w.start()
    try:
        events = _events(1000)
        t0 = time.perf_counter()
        for e in events:
            w.record(e)
        per_event = (time.perf_counter() - t0) / len(events)
        await w.flush()
        assert (w.written, w.dropped) == (1000, 0)
        assert w.batches <= 20  # ~10 full batches, not 1000 INSERTs
        assert per_event < 50e-6, f"record() took {per_event * 1e6:.1f} µs"
        # a lone event is written after flush_seconds without anyone calling flush()
        w.record(AuditEvent.now(AuditAction.QUERY, CURATOR))
        await asyncio.sleep(0.5)
        assert w.written == 1001
        async with engine.connect() as conn:
            rows = await query_events(conn, study="1.2.3.7")
            queries = await query_events(conn, action="Query", actor="alice")
        assert [e.study_uids for _, e in rows] == [("1.2.3.7",)]
        (_, q), = queries
        assert (q.role, q.kind, q.source, q.event_action) == ("curator", "oidc", "198.51.100.4", "E")
    finally:
        await w.close()
        await engine.dispose()


async def test_table_is_append_only(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    w = AuditWriter(engine, batch_size=10, flush_seconds=0.01)
    w.start()
    w.record(_events(1)[0])
    await w.close()
    await engine.dispose()
    conn = await asyncpg.connect(database_url)
    try:
        for sql in ("UPDATE audit_event SET actor = 'mallory'", "DELETE FROM audit_event",
                    "TRUNCATE audit_event"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT actor FROM audit_event") == "gw-a"
    finally:
        await conn.close()


async def test_writer_survives_database_outage_by_dropping_counted() -> None:
    from tests.conftest import free_port

    engine = create_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/x", pool_size=1)
    w = AuditWriter(engine, batch_size=5, flush_seconds=0.01, retries=1)
    w.start()
    for e in _events(3):
        w.record(e)
    await w.flush()
    assert (w.written, w.dropped) == (0, 3)
    await w.close()
    await engine.dispose()


def test_xml_message_structure() -> None:
    e = AuditEvent(datetime(2026, 11, 29, 1, 2, 3, tzinfo=UTC), AuditAction.STUDY_DELETED,
                   "alice", "curator", "oidc", None, "198.51.100.4", ("1.2.3", "1.2.4"),
                   Outcome.SUCCESS, "D", {})
    root = etree.fromstring(to_xml(e, "ARCHIVE"))
    assert root.tag == "AuditMessage"
    assert [c.tag for c in root] == ["EventIdentification", "ActiveParticipant",
                                     "AuditSourceIdentification",
                                     "ParticipantObjectIdentification",
                                     "ParticipantObjectIdentification"]
    ev = root.find("EventIdentification")
    assert ev.attrib == {"EventActionCode": "D", "EventDateTime": "2026-11-29T01:02:03.000+00:00",
                         "EventOutcomeIndicator": "0"}
    assert ev.find("EventID").attrib == {"csd-code": "110105", "codeSystemName": "DCM",
                                         "originalText": "DICOM Study Deleted"}
    ap = root.find("ActiveParticipant")
    assert (ap.get("UserID"), ap.get("NetworkAccessPointID"), ap.get("UserIsRequestor")) == (
        "alice", "198.51.100.4", "true")
    po = root.findall("ParticipantObjectIdentification")
    assert [p.get("ParticipantObjectID") for p in po] == ["1.2.3", "1.2.4"]
    assert po[0].find("ParticipantObjectIDTypeCode").get("csd-code") == "110180"
    fail = AuditEvent.now(AuditAction.USER_AUTHENTICATION, SITE_A, outcome=Outcome.MINOR_FAILURE,
                          detail={"reason": "token expired"})
    froot = etree.fromstring(to_xml(fail))
    assert froot.find("EventIdentification/EventOutcomeDescription").text == "token expired"
    assert froot.find("EventIdentification/EventTypeCode").get("originalText") == "Login"
    assert froot.find("EventIdentification").get("EventOutcomeIndicator") == "4"


def test_query_event_carries_the_query() -> None:
    import base64

    q = AuditEvent.now(AuditAction.QUERY, CURATOR, detail={"query": "PatientID=P1&limit=10"})
    po = etree.fromstring(to_xml(q)).find("ParticipantObjectIdentification")
    assert po.find("ParticipantObjectIDTypeCode").get("csd-code") == "110181"
    assert base64.b64decode(po.find("ParticipantObjectQuery").text) == b"PatientID=P1&limit=10"


def test_action_codes_follow_cid_400() -> None:
    assert {a.code for a in AuditAction} >= {"110102", "110103", "110104", "110105", "110112",
                                              "110113", "110114"}
    assert AuditAction.parse("110112") is AuditAction.QUERY
    assert AuditAction.parse("study_deleted") is AuditAction.STUDY_DELETED


async def _seed(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    w = AuditWriter(engine, batch_size=50, flush_seconds=0.01)
    w.start()
    for e in _events(3):
        w.record(e)
    old = AuditEvent.now(AuditAction.QUERY, CURATOR)
    w.record(AuditEvent(old.time - timedelta(days=10), old.action, old.actor, old.role, old.kind,
                        old.site, old.source, (), old.outcome, old.event_action, {}))
    await w.close()
    await engine.dispose()


def test_export_cli_formats(database_url: str) -> None:
    asyncio.run(_seed(database_url))
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = archive("audit", "export", "--since", since, "--format", "jsonl",
                database_url=database_url)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["study_uids"] for x in lines] == [["1.2.3.0"], ["1.2.3.1"], ["1.2.3.2"]]
    assert {x["action"] for x in lines} == {"DICOM Instances Transferred"}
    assert lines[0]["actor"] == "gw-a" and lines[0]["site"] == "SITE_A"
    allx = archive("audit", "export", "--format", "ps3.15-xml", database_url=database_url)
    assert allx.returncode == 0, allx.stderr
    root = etree.fromstring(allx.stdout.encode())
    msgs = root.findall("AuditMessage")
    assert len(msgs) == 4
    assert sorted(m.find("EventIdentification/EventID").get("csd-code") for m in msgs) == [
        "110104", "110104", "110104", "110112"]
    only = archive("audit", "export", "--actor", "alice", database_url=database_url)
    assert [json.loads(x)["action"] for x in only.stdout.splitlines()] == ["Query"]


async def test_syslog_over_tcp_octet_counting() -> None:
    received = bytearray()
    got = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.extend(data)
            if received.count(b"<AuditMessage>") >= 3:
                got.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = SyslogSender("127.0.0.1", port, audit_source="ARCHIVE")
    sender.start()
    try:
        alert = AuditEvent.now(AuditAction.SECURITY_ALERT, SITE_A, outcome=Outcome.MINOR_FAILURE)
        events = [*_events(2), alert]
        sender.send(events)
        async with asyncio.timeout(10):
            await got.wait()
    finally:
        await sender.close()
        server.close()
        await server.wait_closed()
    messages = _split_octet_counted(bytes(received))
    assert len(messages) == 3
    for msg, e in zip(messages, events, strict=True):
        header, _, xml = msg.partition(b"\xef\xbb\xbf")
        pri_version, ts, host, app, procid, msgid, sd = header.decode().split(" ")[:7]
        assert app == "archive" and msgid == "IHE+RFC-3881" and sd == "-" and host and procid
        assert pri_version == ("<85>1" if e.outcome is Outcome.SUCCESS else "<84>1")
        assert datetime.fromisoformat(ts) == e.time
        root = etree.fromstring(xml)
        assert root.find("EventIdentification/EventID").get("originalText") == e.action.value
    assert sender.sent == 3
    assert frame(events[0]).split(b" ", 1)[0] == str(len(frame(events[0]).split(b" ", 1)[1])).encode()


def _split_octet_counted(data: bytes) -> list[bytes]:
    """RFC 6587 §3.4.1: MSG-LEN SP SYSLOG-MSG, repeated."""
    out = []
    while data:
        length, _, rest = data.partition(b" ")
        n = int(length)
        out.append(rest[:n])
        data = rest[n:]
    return out


async def test_syslog_reconnects_after_collector_restart() -> None:
    """Events sent while the collector is down arrive once it listens."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sender = SyslogSender("127.0.0.1", port)
    sender.start()
    sender.send(_events(1))
    await asyncio.sleep(0.3)  # collector down: sender retries
    received = bytearray()
    got = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.extend(data)
            got.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        async with asyncio.timeout(10):
            await got.wait()
    finally:
        await sender.close()
        server.close()
        await server.wait_closed()
    assert len(_split_octet_counted(bytes(received))) == 1

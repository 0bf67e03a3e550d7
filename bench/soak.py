"""Soak test (issue 13; not in CI): mixed load with faults, then proof nothing acknowledged
was lost.

    nice -n 5 python -m bench.soak [--minutes 30] [--fault-every 120] [--out bench/results]

For `--minutes` (default 30) several clients run at once against one archive server
(`python -m archive serve`, a subprocess this script starts and restarts): STOW-RS (1 or 3
instances per request), C-STORE (pynetdicom, several AE titles), QIDO-RS, WADO (each read checked
against what was sent) and DELETE (of studies kept aside for it). Every `--fault-every` seconds
one fault, in turn:

- **PostgreSQL restart** — a private cluster the soak initdb's itself on a free port
  (tests/reliability/pg_cluster.py), never the shared 127.0.0.1:5432 server; stopped
  ("fast"), down for 10 s, started again;
- **kill -9 of the archive server** (its whole process group) and a restart;
- **disk full** — the archive's data directory is a small tmpfs mounted for the run (needs
  root; skipped, and said so, otherwise); a filler file takes every free byte for 20 s.

Success counts only on HTTP 200/202 (the instances listed as stored) or DICOM 0x0000. At the end
the faults stop and every acknowledged instance is fetched (WADO-URI, transferSyntax=*) and
compared with the bytes sent — the whole Part 10 file for STOW-RS, the data set as encoded on
the wire for C-STORE (the archive writes its own file meta) — and every deleted study must be
gone. The server's RSS (main process and process tree) and the load average are sampled every
10 s. Results: `<out>/soak-<UTC stamp>.json` (everything) and `.md` (the summary).

Bounded: clients pause between requests (`--think`), data is a few KB per instance, the tmpfs
is `--tmpfs-mb` (default 384), everything talks to 127.0.0.1 and every process it started is
stopped by its PID at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from archive.config import Settings
from tests import factories as f
from tests.conftest import free_port
from tests.reliability.pg_cluster import Cluster

SAMPLE_EVERY = 10.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Sent:
    """What the archive acknowledged: enough to check it byte for byte later."""
    study: str
    series: str
    sop: str
    door: str  # stow | cstore
    file_sha: str | None  # the whole Part 10 file sent (STOW-RS)
    dataset_sha: str  # the data set as encoded (Explicit VR LE)
    dataset_len: int


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, Sent] = field(default_factory=dict)  # read by WADO, never deleted
    deletable: collections.deque[tuple[str, list[Sent]]] = field(
        default_factory=collections.deque)  # acknowledged studies kept for DELETE
    deleted: dict[str, list[Sent]] = field(default_factory=dict)  # study → its instances
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n


class ArchiveProcess:
    """`python -m archive serve` in its own process group, restartable, killable with -9."""

    def __init__(self, work: Path, data_dir: Path, database_url: str, token: str) -> None:
        self.work, self.data_dir, self.database_url = work, data_dir, database_url
        self.http_port, self.dimse_port = free_port(), free_port()
        self.ae_title = Settings().ae_title
        self.token = token
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, wait: float = 180) -> None:
        self.starts += 1
        log = open(self.work / f"server-{self.starts}.log", "wb")  # noqa: SIM115 (child's)
        env = os.environ | {"ARCHIVE_CURATOR_TOKEN": self.token, "ARCHIVE_LOG_FORMAT": "json"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "archive", "serve", "--data-dir", str(self.data_dir),
             "--database-url", self.database_url, "--host", "127.0.0.1",
             "--http-port", str(self.http_port), "--dimse-port", str(self.dimse_port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"archive exited with {self.proc.returncode}, see {log.name}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base + "/readyz", timeout=5).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"archive not ready after {wait} s, see {log.name}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its worker processes
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def rss(self) -> tuple[int, int]:
        """(main process, whole tree) resident bytes; (0, 0) while it is down."""
        if self.proc is None or self.proc.poll() is not None:
            return 0, 0
        try:
            p = psutil.Process(self.proc.pid)
            main = p.memory_info().rss
            tree = main + sum(c.memory_info().rss for c in p.children(recursive=True))
            return main, tree
        except psutil.Error:
            return 0, 0


def multipart(files: list[bytes]) -> tuple[bytes, str]:
    boundary = "soak" + secrets.token_hex(8)
    out = b""
    for data in files:
        out += (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f'multipart/related; type="application/dicom"; boundary={boundary}'


class Soak:
    def __init__(self, args: argparse.Namespace, server: ArchiveProcess, cluster: Cluster,
                 tmpfs: Path | None) -> None:
        self.args, self.server, self.cluster, self.tmpfs = args, server, cluster, tmpfs
        self.ledger = Ledger()
        self.stop = threading.Event()
        self.faulting = threading.Event()
        self.samples: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.auth = {"Authorization": f"Bearer {server.token}"}

    # -- clients ------------------------------------------------------------------------
    def _pause(self) -> None:
        self.stop.wait(self.args.think * random.uniform(0.5, 1.5))

    def stow_client(self, i: int) -> None:
        session, n = requests.Session(), 0
        while not self.stop.is_set():
            n += 1
            name = f"s{i}-{n}"  # short: AccessionNumber "ACC-<name>" is an SH (16)
            datasets = [f.image(name, "se1", j, patient_id=f"SOAK-STOW{i}", seed=n)
                        for j in range(1, random.choice((1, 1, 3)) + 1)]
            files = [f.to_bytes(ds) for ds in datasets]
            body, ctype = multipart(files)
            try:
                r = session.post(self.server.base + "/dicom-web/studies", data=body, timeout=120,
                                 headers={**self.auth, "Content-Type": ctype,
                                          "Accept": "application/dicom+json"})
            except requests.RequestException as exc:
                self.ledger.count(f"stow:connection-{type(exc).__name__}")
                session = requests.Session()
                self._pause()
                continue
            self.ledger.count(f"stow:{r.status_code}")
            stored = set()
            if r.status_code == 200:
                stored = {ds.SOPInstanceUID for ds in datasets}
            elif r.status_code == 202:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    stored = {item["00081155"]["Value"][0]
                              for item in r.json().get("00081199", {}).get("Value", [])}
            sent = []
            for ds, data in zip(datasets, files, strict=True):
                if ds.SOPInstanceUID in stored:
                    enc = encode(ds, False, True)
                    assert enc is not None
                    sent.append(Sent(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                                     "stow", sha(data), sha(enc), len(enc)))
            self._acknowledge(sent, deletable=n % 4 == 0)
            self._pause()

    def _acknowledge(self, sent: list[Sent], deletable: bool) -> None:
        if not sent:
            return
        with self.ledger.lock:
            self.ledger.counts["acknowledged"] += len(sent)
            if deletable:
                self.ledger.deletable.append((sent[0].study, sent))
            else:
                for s in sent:
                    self.ledger.acked[s.sop] = s

    def cstore_client(self, i: int) -> None:
        ae = AE(ae_title=f"SOAK{i}")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = 30, 120, 120
        n = 0
        while not self.stop.is_set():
            assoc = ae.associate("127.0.0.1", self.server.dimse_port, ae_title=self.server.ae_title)
            if not assoc.is_established:
                self.ledger.count("cstore:association-" + ("rejected" if assoc.is_rejected
                                                           else "failed"))
                self._pause()
                continue
            n += 1
            name = f"c{i}-{n}"
            sent = []
            try:
                for j in range(1, 6):
                    if self.stop.is_set():
                        break
                    ds = f.image(name, "se1", j, patient_id=f"SOAK-DIMSE{i}", seed=n)
                    status = assoc.send_c_store(ds)
                    if "Status" not in status:
                        self.ledger.count("cstore:no-response")
                        break
                    code = int(status.Status)
                    self.ledger.count(f"cstore:0x{code:04X}")
                    if code == 0:
                        enc = encode(ds, False, True)
                        assert enc is not None
                        sent.append(Sent(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                         ds.SOPInstanceUID, "cstore", None, sha(enc), len(enc)))
                    self.stop.wait(self.args.think / 5)
            finally:
                if assoc.is_established:
                    assoc.release()
            self._acknowledge(sent, deletable=n % 4 == 0)
            self._pause()

    def qido_client(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            q = random.choice([{"limit": "20", "offset": str(random.randint(0, 200))},
                               {"PatientID": f"SOAK-STOW{random.randint(1, 2)}", "limit": "50"},
                               {"ModalitiesInStudy": "CT", "limit": "10",
                                "includefield": "all"}])
            try:
                r = session.get(self.server.base + "/dicom-web/studies", params=q,
                                headers=self.auth, timeout=60)
                self.ledger.count(f"qido:{r.status_code}")
            except requests.RequestException as exc:
                self.ledger.count(f"qido:connection-{type(exc).__name__}")
                session = requests.Session()
            self._pause()

    def fetch(self, session: requests.Session, s: Sent) -> requests.Response:
        return session.get(self.server.base + "/dicom-web/wado", timeout=60, headers=self.auth,
                           params={"requestType": "WADO", "studyUID": s.study,
                                   "seriesUID": s.series, "objectUID": s.sop,
                                   "contentType": "application/dicom", "transferSyntax": "*"})

    @staticmethod
    def identical(s: Sent, data: bytes) -> bool:
        if s.file_sha is not None:
            return sha(data) == s.file_sha
        return len(data) > s.dataset_len and sha(data[-s.dataset_len:]) == s.dataset_sha

    def wado_client(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            with self.ledger.lock:
                pick = random.choice(list(self.ledger.acked.values())) if self.ledger.acked \
                    else None
            if pick is not None:
                try:
                    r = self.fetch(session, pick)
                    key = f"wado:{r.status_code}"
                    if r.status_code == 200 and not self.identical(pick, r.content):
                        key = "wado:200-MISMATCH"
                    self.ledger.count(key)
                except requests.RequestException as exc:
                    self.ledger.count(f"wado:connection-{type(exc).__name__}")
                    session = requests.Session()
            self._pause()

    def delete_one(self, session: requests.Session) -> bool:
        with self.ledger.lock:
            if not self.ledger.deletable:
                return False
            study, sent = self.ledger.deletable.popleft()
        try:
            r = session.delete(f"{self.server.base}/dicom-web/studies/{study}", headers=self.auth,
                               timeout=60)
            self.ledger.count(f"delete:{r.status_code}")
            ok = r.status_code in (200, 202, 204)
        except requests.RequestException as exc:
            self.ledger.count(f"delete:connection-{type(exc).__name__}")
            ok = False
        with self.ledger.lock:
            if ok:
                self.ledger.deleted[study] = sent
            else:
                self.ledger.deletable.append((study, sent))  # retried later
        return True

    def delete_client(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            self.delete_one(session)
            self.stop.wait(self.args.think * 2)

    # -- faults and samples -------------------------------------------------------------
    def _ready_after(self, since: float, limit: float = 300) -> float | None:
        """Seconds from `since` until /readyz answers 200 (None: not within `limit`)."""
        while time.monotonic() - since < limit:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.server.base + "/readyz", timeout=5).status_code == 200:
                    return round(time.monotonic() - since, 1)
            time.sleep(0.5)
        return None

    def fault(self, kind: str) -> dict[str, Any]:
        at = round(time.monotonic() - self.started, 1)
        t0 = time.monotonic()
        event: dict[str, Any] = {"kind": kind, "at_s": at}
        if kind == "postgres-restart":
            self.cluster.stop("fast")
            self.stop.wait(10)
            self.cluster.start()
        elif kind == "kill-9":
            self.server.kill9()
            self.server.start()
        elif kind == "disk-full":
            assert self.tmpfs is not None
            filler = self.tmpfs / "filler"
            with open(filler, "wb") as out:
                try:
                    while True:
                        out.write(b"\0" * (1 << 20))
                        out.flush()
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
            event["free_bytes_left"] = os.statvfs(self.tmpfs).f_bavail * os.statvfs(
                self.tmpfs).f_frsize
            self.stop.wait(20)
            filler.unlink()
        event["fault_s"] = round(time.monotonic() - t0, 1)
        event["ready_after_s"] = self._ready_after(time.monotonic())
        return event

    def fault_loop(self) -> None:
        kinds = [k for k in self.args.faults.split(",") if k and (k != "disk-full" or self.tmpfs)]
        if not kinds:
            return
        k = 0
        while not self.stop.wait(self.args.fault_every):
            self.faulting.set()
            try:
                self.faults.append(self.fault(kinds[k % len(kinds)]))
            except Exception as exc:  # recorded, and the soak goes on (the server is restarted)
                self.faults.append({"kind": kinds[k % len(kinds)], "error": repr(exc)})
            finally:
                self.faulting.clear()
            k += 1

    def sample_loop(self) -> None:
        while True:
            main, tree = self.server.rss()
            with self.ledger.lock:
                acked = len(self.ledger.acked)
            self.samples.append({"t_s": round(time.monotonic() - self.started, 1),
                                 "rss_main_mb": round(main / 2**20, 1),
                                 "rss_tree_mb": round(tree / 2**20, 1),
                                 "server_start": self.server.starts,
                                 "load1": round(os.getloadavg()[0], 2), "acked": acked})
            if self.stop.wait(SAMPLE_EVERY):
                return

    # -- run and verify -----------------------------------------------------------------
    def run(self) -> None:
        a = self.args
        threads = [threading.Thread(target=self.stow_client, args=(i,), daemon=True)
                   for i in range(1, a.stow_clients + 1)]
        threads += [threading.Thread(target=self.cstore_client, args=(i,), daemon=True)
                    for i in range(1, a.cstore_clients + 1)]
        threads += [threading.Thread(target=t, daemon=True)
                    for t in (self.qido_client, self.wado_client, self.delete_client)]
        faults = threading.Thread(target=self.fault_loop, daemon=True)
        sampler = threading.Thread(target=self.sample_loop, daemon=True)
        for t in [*threads, faults, sampler]:
            t.start()
        self.stop.wait(a.minutes * 60)
        self.stop.set()
        faults.join(300)  # a fault in progress finishes (server back, disk freed)
        for t in threads:
            t.join(180)
        sampler.join(30)

    def verify(self) -> dict[str, Any]:
        if self.server.proc is None or self.server.proc.poll() is not None:
            self.server.start()
        self._ready_after(time.monotonic())
        session = requests.Session()
        for _ in range(3):  # the studies kept for DELETE that were not deleted yet
            while self.delete_one(session):
                pass
        present = identical = 0
        missing: list[str] = []
        different: list[str] = []
        for s in list(self.ledger.acked.values()):
            r = self.fetch(session, s)
            if r.status_code != 200:
                missing.append(f"{s.door} {s.sop} -> {r.status_code}")
                continue
            present += 1
            if self.identical(s, r.content):
                identical += 1
            else:
                different.append(f"{s.door} {s.sop}")
        gone = still_there = 0
        for _study, sent in self.ledger.deleted.items():
            for s in sent:
                if self.fetch(session, s).status_code == 404:
                    gone += 1
                else:
                    still_there += 1
        return {"acknowledged_kept": len(self.ledger.acked), "present": present,
                "byte_identical": identical, "missing": missing[:50], "missing_count": len(missing),
                "different": different[:50], "different_count": len(different),
                "deleted_instances": gone + still_there, "deleted_gone": gone,
                "deleted_still_there": still_there,
                "deletes_left_undone": sum(len(s) for _, s in self.ledger.deletable)}


FLAT_MIN_SPAN_S = 15 * 60  # a server run shorter than this is too short to call flat


def slope_per_10min(rows: list[dict[str, Any]]) -> float:
    """Least-squares slope of main RSS, MB per 10 minutes (0 with fewer than two times)."""
    xs = [r["t_s"] / 600 for r in rows]
    ys = [r["rss_main_mb"] for r in rows]
    return statistics.linear_regression(xs, ys).slope if len(set(xs)) > 1 else 0.0


def rss_summary(samples: list[dict[str, Any]], flat_mb: float = 1.0) -> dict[str, Any]:
    """Per server incarnation: first/last/max main RSS after a 60 s warm-up, the slope of a
    least-squares line over all of it, and the verdict on its *last two thirds* (the first
    third is warm-up: pools, caches and malloc arenas fill): "flat" when that slope is at most
    `flat_mb` MB per 10 minutes, "growing" above, "too short" for a run under 15 minutes."""
    out: dict[str, Any] = {}
    by_start: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for s in samples:
        if s["rss_main_mb"] > 0:
            by_start[s["server_start"]].append(s)
    for start, rows in sorted(by_start.items()):
        t0 = rows[0]["t_s"]
        span = rows[-1]["t_s"] - t0
        warm = [r for r in rows if r["t_s"] - t0 >= 60] or rows
        tail = [r for r in rows if r["t_s"] - t0 >= span / 3] or rows
        ys = [r["rss_main_mb"] for r in warm]
        tail_slope = slope_per_10min(tail)
        verdict = ("too short" if span < FLAT_MIN_SPAN_S
                   else "flat" if tail_slope <= flat_mb else "growing")
        out[str(start)] = {"samples": len(rows), "span_s": round(span),
                           "first_mb": ys[0], "last_mb": ys[-1], "max_mb": max(ys),
                           "median_mb": statistics.median(ys),
                           "max_tree_mb": max(r["rss_tree_mb"] for r in rows),
                           "slope_mb_per_10min": round(slope_per_10min(warm), 2),
                           "tail_from_s": round(tail[0]["t_s"] - t0),
                           "tail_first_mb": tail[0]["rss_main_mb"],
                           "tail_slope_mb_per_10min": round(tail_slope, 2),
                           "verdict": verdict}
    return out


def rss_verdict(rss: dict[str, Any], flat_mb: float) -> str:
    """One line: FLAT when every server run long enough to judge is flat."""
    judged = {k: r for k, r in rss.items() if r["verdict"] != "too short"}
    if not judged:
        return ("RSS: no server run lasted 15 min — too short to judge (needs --minutes ≥ 15, "
                "and no kill-9 fault to keep one process)")
    growing = {k: r for k, r in judged.items() if r["verdict"] == "growing"}
    slopes = ", ".join(f"run {k}: {r['tail_slope_mb_per_10min']:+.2f}" for k, r in judged.items())
    word = "NOT FLAT" if growing else "FLAT"
    return (f"RSS {word}: slope of the main process's RSS over the last two thirds of each "
            f"server run ≥ 15 min ({slopes} MB per 10 min; flat means ≤ {flat_mb:g})")


def log_problems(work: Path) -> dict[str, int]:
    tracebacks = errors = 0
    for log in sorted(work.glob("server-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            tracebacks += "Traceback" in line
            errors += '"level": "ERROR"' in line or '"levelname": "ERROR"' in line
    return {"log_lines_with_traceback": tracebacks, "log_error_lines": errors}


def mount_tmpfs(path: Path, mb: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m,mode=0755", "tmpfs",
                           str(path)], capture_output=True)
    return done.returncode == 0


def markdown(result: dict[str, Any]) -> str:
    v, c = result["verification"], result["counts"]
    lines = [f"# Soak {result['started_utc']}", "",
             f"`{result['command']}` — {result['duration_min']} min of load, "
             f"load average at the end {result['loadavg_end']}", "",
             f"- acknowledged: {c.get('acknowledged', 0)}; kept for reading {v['acknowledged_kept']}: "
             f"present {v['present']}, byte-identical {v['byte_identical']}, missing "
             f"{v['missing_count']}, different {v['different_count']}",
             f"- deleted instances: {v['deleted_instances']} (gone {v['deleted_gone']}, still "
             f"there {v['deleted_still_there']})",
             "- faults: " + ", ".join(f"{e['kind']}@{e['at_s']}s→ready {e.get('ready_after_s')}s"
                                       for e in result["faults"]),
             f"- server log: {result['logs']}",
             f"- **{result['rss_verdict']}**", "", "| counter | n |", "|---|---|"]
    lines += [f"| {k} | {n} |" for k, n in sorted(c.items())]
    lines += ["", "| server start | samples | span s | first MB | median MB | last MB | max MB | "
              "max tree MB | slope MB/10 min | last ⅔ from s | its slope | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, r in result["rss"].items():
        lines.append(f"| {k} | {r['samples']} | {r['span_s']} | {r['first_mb']} | {r['median_mb']} "
                     f"| {r['last_mb']} | {r['max_mb']} | {r['max_tree_mb']} | "
                     f"{r['slope_mb_per_10min']} | {r['tail_from_s']} | "
                     f"{r['tail_slope_mb_per_10min']} | {r['verdict']} |")
    lines += ["", "| minute | RSS main MB | tree MB | load 1 min |", "|---|---|---|---|"]
    lines += [f"| {s['t_s'] / 60:.0f} | {s['rss_main_mb']} | {s['rss_tree_mb']} | {s['load1']} |"
              for s in result["samples"] if round(s["t_s"]) % 300 < SAMPLE_EVERY]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="minutes of load (default 30)")
    ap.add_argument("--fault-every", type=float, default=120.0, help="seconds between faults")
    ap.add_argument("--stow-clients", type=int, default=2)
    ap.add_argument("--cstore-clients", type=int, default=2)
    ap.add_argument("--think", type=float, default=0.5, help="seconds a client pauses")
    ap.add_argument("--tmpfs-mb", type=int, default=384, help="size of the data tmpfs")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--flat-mb", type=float, default=1.0,
                    help="RSS is flat when its slope over the last two thirds of a server run "
                         "is at most this many MB per 10 minutes (default 1)")
    ap.add_argument("--faults", default="postgres-restart,kill-9,disk-full",
                    help="faults injected in turn (leave out kill-9 to follow one server "
                         "process's RSS for the whole run)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="archive-soak-"))
    data_dir = work / "data"
    tmpfs = data_dir if mount_tmpfs(data_dir, args.tmpfs_mb) else None
    if tmpfs is None:
        print("disk-full fault skipped: cannot mount a tmpfs (needs root)", file=sys.stderr)
    cluster = Cluster()
    server = ArchiveProcess(work, data_dir, cluster.url, secrets.token_urlsafe(24))
    started_utc = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.monotonic()
    try:
        server.start()
        soak = Soak(args, server, cluster, tmpfs)
        soak.run()
        duration = round((time.monotonic() - t0) / 60, 1)
        verification = soak.verify()
    finally:
        server.stop()
        cluster.close()
        if tmpfs is not None:
            subprocess.run(["umount", str(tmpfs)], capture_output=True)
    rss = rss_summary(soak.samples, args.flat_mb)
    result = {"started_utc": started_utc, "command": "nice -n 5 python -m bench.soak " +
              " ".join(argv if argv is not None else sys.argv[1:]),
              "args": {k: str(v) for k, v in vars(args).items()}, "duration_min": duration,
              "disk_full_fault": tmpfs is not None, "server_starts": server.starts,
              "counts": dict(sorted(soak.ledger.counts.items())), "faults": soak.faults,
              "verification": verification, "rss": rss,
              "rss_verdict": rss_verdict(rss, args.flat_mb),
              "logs": log_problems(work), "loadavg_end": [round(x, 2) for x in os.getloadavg()],
              "samples": soak.samples, "work_dir": str(work)}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started_utc.replace(":", "").replace("-", "")
    (args.out / f"soak-{stamp}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"soak-{stamp}.md").write_text(markdown(result))
    print(markdown(result))
    print(result["rss_verdict"])
    ok = not verification["missing_count"] and not verification["different_count"] \
        and not verification["deleted_still_there"] and "NOT FLAT" not in result["rss_verdict"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

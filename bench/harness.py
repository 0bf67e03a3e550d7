#!/usr/bin/env python3
# ruff: noqa
"""bench harness (adapted from peerbench) - black-box benchmark for a DICOMweb (PS3.18) + DIMSE (C-STORE) archive.

Only standard PS3.18 URLs are used (relative to --dicomweb BASE):
  STOW-RS   POST BASE/studies                      multipart/related; type="application/dicom"
  QIDO-RS   GET  BASE/studies?..., BASE/series?..., BASE/studies/{s}/series, .../instances
  WADO-RS   GET  BASE/studies/{s}, .../instances/{i}, .../series/{se}/metadata, .../frames/1,
                 .../rendered, .../thumbnail
C-STORE goes through pynetdicom (N associations in N processes) and DCMTK storescu.
Server-specific clean-up between ingest runs is delegated to --reset-cmd (a shell command).

The data set is any folder of DICOM Part-10 files (see gen_data.py); its headers are
scanned first so every query has a known expected answer (wrong answers are counted).

Units: MB = 10^6 bytes; payload bytes are the Part-10 file sizes (STOW/C-STORE) or the
HTTP body bytes received (WADO).  Latencies are wall-clock per request, body fully read.
"""
import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict

import numpy as np

VERSION = "1.0"
MB = 1e6
UNSUPPORTED_STATUSES = {400, 404, 405, 406, 415, 501}
ACC_DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ACC_DICOM = 'multipart/related; type="application/dicom"'
ACC_OCTET = 'multipart/related; type="application/octet-stream"'
ACC_JSON = "application/dicom+json"
TS_MEDIA = {  # stored transfer syntax -> media type for native (pass-through) frame retrieval
    "1.2.840.10008.1.2.4.80": "image/jls", "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.5": "image/dicom-rle", "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
}
UNCOMPRESSED_TS = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def log(*a):
    print("[%s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# =============================================================================== data set
def scan_dataset(data_dir):
    import pydicom
    tags = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID",
            "PatientName", "StudyDate", "Modality", "AccessionNumber", "Rows", "Columns", "BitsAllocated",
            "SamplesPerPixel", "NumberOfFrames", "InstanceNumber", "SeriesNumber", "StudyDescription"]
    inst = []
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        for fn in sorted(files):
            if fn.endswith((".json", ".md", ".txt")):
                continue
            path = os.path.join(root, fn)
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
                ts = str(ds.file_meta.TransferSyntaxUID)
            except Exception:
                continue
            g = lambda k, d="": ds.get(k, d)
            inst.append(dict(path=path, size=os.path.getsize(path), sop_class=str(g("SOPClassUID")),
                             sop=str(g("SOPInstanceUID")), study=str(g("StudyInstanceUID")),
                             series=str(g("SeriesInstanceUID")), ts=ts, pid=str(g("PatientID")),
                             pname=str(g("PatientName")), date=str(g("StudyDate")), modality=str(g("Modality")),
                             accession=str(g("AccessionNumber")), rows=int(g("Rows", 0) or 0),
                             cols=int(g("Columns", 0) or 0), bits=int(g("BitsAllocated", 0) or 0),
                             spp=int(g("SamplesPerPixel", 1) or 1), frames=int(g("NumberOfFrames", 1) or 1),
                             inum=int(g("InstanceNumber", 0) or 0)))
    return Index(inst)


class Index:
    def __init__(self, instances):
        self.instances = instances
        self.studies = {}
        for i in instances:
            st = self.studies.setdefault(i["study"], dict(uid=i["study"], pid=i["pid"], pname=i["pname"],
                                                          date=i["date"], accession=i["accession"],
                                                          modalities=set(), series={}, bytes=0, n=0))
            st["modalities"].add(i["modality"])
            st["bytes"] += i["size"]
            st["n"] += 1
            se = st["series"].setdefault(i["series"], dict(uid=i["series"], modality=i["modality"], instances=[]))
            se["instances"].append(i)
        for st in self.studies.values():
            for se in st["series"].values():
                se["instances"].sort(key=lambda x: x["inum"])
        self.patients = sorted({i["pid"] for i in instances})
        self.total_bytes = sum(i["size"] for i in instances)

    def summary(self):
        return dict(instances=len(self.instances), bytes=self.total_bytes, MB=round(self.total_bytes / MB, 1),
                    patients=len(self.patients), studies=len(self.studies),
                    series=sum(len(s["series"]) for s in self.studies.values()),
                    modalities=dict(Counter(i["modality"] for i in self.instances)),
                    transfer_syntaxes=dict(Counter(i["ts"] for i in self.instances)),
                    sop_classes=dict(Counter(i["sop_class"] for i in self.instances)))


# =============================================================================== monitoring
CLK = os.sysconf("SC_CLK_TCK")


def _proc_table():
    tab = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        r = s.rfind(")")
        fields = s[r + 2:].split()
        # ppid, utime+stime+cutime+cstime (own CPU plus that of already reaped children)
        tab[int(d)] = (int(fields[1]), (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLK)
    return tab


def _tree_cpu(roots):
    if not roots:
        return None, None
    tab = _proc_table()
    kids = defaultdict(list)
    for pid, (ppid, _) in tab.items():
        kids[ppid].append(pid)
    seen, stack = set(), list(roots)
    while stack:
        p = stack.pop()
        if p in seen or p not in tab:
            continue
        seen.add(p)
        stack.extend(kids[p])
    rss = 0
    for p in seen:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return sum(tab[p][1] for p in seen), rss


def _sys_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return dict(total=sum(v[:8]), idle=idle, iowait=v[4])


def _disk_bytes():
    rd = wr = 0
    try:
        with open("/proc/diskstats") as f:
            for line in f:
                p = line.split()
                name = p[2]
                if re.fullmatch(r"(sd[a-z]+|vd[a-z]+|xvd[a-z]+|nvme\d+n\d+)", name):
                    rd += int(p[5]) * 512
                    wr += int(p[9]) * 512
    except OSError:
        pass
    return rd, wr


class Monitor:
    def __init__(self, server_pids):
        self.server_pids = server_pids

    def snap(self):
        cpu, rss = _tree_cpu(self.server_pids)
        ru_s = resource.getrusage(resource.RUSAGE_SELF)
        ru_c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return dict(t=time.perf_counter(), server_cpu=cpu, server_rss=rss, sys=_sys_cpu(), disk=_disk_bytes(),
                    self_cpu=ru_s.ru_utime + ru_s.ru_stime,
                    client_cpu=ru_s.ru_utime + ru_s.ru_stime + ru_c.ru_utime + ru_c.ru_stime)

    @staticmethod
    def diff(a, b):
        dt = b["t"] - a["t"]
        st = b["sys"]["total"] - a["sys"]["total"] or 1
        out = dict(elapsed_s=round(dt, 3),
                   client_cpu_s=round(b["client_cpu"] - a["client_cpu"], 2),
                   machine_busy_pct=round(100.0 * (1 - (b["sys"]["idle"] - a["sys"]["idle"]) / st), 1),
                   machine_iowait_pct=round(100.0 * (b["sys"]["iowait"] - a["sys"]["iowait"]) / st, 1),
                   disk_read_MB=round((b["disk"][0] - a["disk"][0]) / MB, 1),
                   disk_write_MB=round((b["disk"][1] - a["disk"][1]) / MB, 1))
        if a["server_cpu"] is not None and b["server_cpu"] is not None:
            out["server_cpu_s"] = round(b["server_cpu"] - a["server_cpu"], 2)
            out["server_cpu_pct_of_one_core"] = round(100.0 * out["server_cpu_s"] / dt, 1) if dt > 0 else None
            out["server_rss_MB"] = round(b["server_rss"] / MB, 1)
        out["client_cpu_pct_of_one_core"] = round(100.0 * out["client_cpu_s"] / dt, 1) if dt > 0 else None
        if dt > 0:  # CPU used by everything else on the machine (other tenants) -> flags contaminated runs
            ours = out["client_cpu_s"] + out.get("server_cpu_s", 0)
            out["others_busy_pct_est"] = round(max(0.0, out["machine_busy_pct"] - 100.0 * ours / (dt * (os.cpu_count() or 1))), 1)
        return out


def lat_stats(lat):
    if not lat:
        return dict(n=0)
    a = np.array(lat) * 1000.0
    return dict(n=len(lat), median_ms=round(float(np.median(a)), 2), p95_ms=round(float(np.percentile(a, 95)), 2),
                mean_ms=round(float(a.mean()), 2), min_ms=round(float(a.min()), 2), max_ms=round(float(a.max()), 2))


# =============================================================================== HTTP
class Http:
    def __init__(self, base, limit, timeout, accept_encoding):
        import aiohttp
        self.aiohttp = aiohttp
        self.base = base.rstrip("/")
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(1, limit), force_close=False),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Accept-Encoding": accept_encoding, "User-Agent": "peerbench/" + VERSION},
            auto_decompress=True)

    async def close(self):
        await self.session.close()

    async def req(self, method, path, headers=None, data=None):
        """Returns (status, headers, body, seconds); status -1 on transport error (body = message)."""
        url = path if path.startswith("http") else self.base + "/" + path.lstrip("/")
        t0 = time.perf_counter()
        try:
            async with self.session.request(method, url, headers=headers or {}, data=data) as r:
                body = await r.read()
                return r.status, r.headers, body, time.perf_counter() - t0
        except Exception as e:  # transport error / timeout
            return -1, {}, ("%s: %s" % (type(e).__name__, e)).encode(), time.perf_counter() - t0


def boundary_of(ctype):
    m = re.search(r'boundary="?([^";]+)"?', ctype or "", re.I)
    return m.group(1) if m else None


def split_multipart(body, ctype):
    """Split a multipart body -> list of (part_headers_bytes, payload memoryview)."""
    b = boundary_of(ctype)
    if not b:
        return None
    delim = b"--" + b.encode()
    parts = []
    mv = memoryview(body)
    pos = body.find(delim)
    while pos >= 0:
        start = pos + len(delim)
        if body[start:start + 2] == b"--":
            break
        hdr_end = body.find(b"\r\n\r\n", start)
        if hdr_end < 0:
            break
        nxt = body.find(b"\r\n" + delim, hdr_end + 4)
        if nxt < 0:
            break
        parts.append((bytes(body[start:hdr_end]), mv[hdr_end + 4:nxt]))
        pos = nxt + 2
    return parts


def part_ts(payload):
    """Transfer syntax UID from a Part-10 payload's meta header (cheap scan)."""
    head = bytes(payload[:2048])
    off = head.find(b"\x02\x00\x10\x00UI")
    if off < 0:
        return None
    n = int.from_bytes(head[off + 6:off + 8], "little")
    return head[off + 8:off + 8 + n].rstrip(b"\x00 ").decode("ascii", "replace")


def json_list(body):
    if not body:
        return []
    v = json.loads(body)
    return v if isinstance(v, list) else [v]


def tagval(item, tag):
    v = item.get(tag, {}).get("Value")
    if not v:
        return None
    x = v[0]
    if isinstance(x, dict) and "Alphabetic" in x:
        return x["Alphabetic"]
    return x


# =============================================================================== Bench
class Bench:
    def __init__(self, args, idx):
        self.a = args
        self.idx = idx
        self.mon = Monitor(args.server_pid)
        self.res = dict(meta={}, ingest=defaultdict(list), verify=[], qido={}, qido_checks={}, qido_load={},
                        wado={}, unsupported=[], notes=[])
        self.rng = random.Random(12345)
        self.loaded = None

    def note(self, msg):
        log("NOTE:", msg)
        self.res["notes"].append(msg)

    # --------------------------------------------------------------------- reset
    def reset(self):
        if not self.a.reset_cmd:
            return None
        t0 = time.perf_counter()
        p = subprocess.run(self.a.reset_cmd, shell=True, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError("reset-cmd failed rc=%d: %s" % (p.returncode, (p.stderr or p.stdout)[-500:]))
        log("reset done in %.1fs" % dt)
        if self.a.server_pid_file:
            self.a.server_pid = [int(x) for f in self.a.server_pid_file if os.path.exists(f) for x in open(f).read().split()]
            self.mon.server_pids = self.a.server_pid
        return dt

    # --------------------------------------------------------------------- STOW
    async def stow(self, batch, conc):
        insts = self.idx.instances
        batches = [insts[i:i + batch] for i in range(0, len(insts), batch)]
        http = Http(self.a.dicomweb, conc, self.a.timeout, self.a.accept_encoding)
        st = dict(ok=0, failed=0, ok_bytes=0, http_errors=Counter(), lat=[], err_samples=[], warn=0)
        nxt = iter(range(len(batches)))

        async def worker():
            for bi in nxt:
                b = batches[bi]
                bnd = "peerbench-" + uuid.uuid4().hex
                chunks = []
                for i in b:
                    with open(i["path"], "rb") as f:
                        data = f.read()
                    chunks += [b"--", bnd.encode(), b"\r\nContent-Type: application/dicom\r\n\r\n", data, b"\r\n"]
                chunks += [b"--", bnd.encode(), b"--\r\n"]
                body = b"".join(chunks)
                hdr = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=%s' % bnd,
                       "Accept": ACC_JSON}
                status, rh, rb, dt = await http.req("POST", "studies", hdr, body)
                st["lat"].append(dt)
                nok, nfail = self._stow_counts(status, rh, rb, len(b))
                if status not in (200, 202):
                    st["http_errors"][str(status)] += 1
                    if len(st["err_samples"]) < 3:
                        st["err_samples"].append("HTTP %s: %s" % (status, rb[:300].decode("utf-8", "replace")))
                if status == 202:
                    st["warn"] += 1
                st["ok"] += nok
                st["failed"] += nfail
                if nok == len(b):
                    st["ok_bytes"] += sum(i["size"] for i in b)
                else:  # partial success: credit what was reported ok on average
                    st["ok_bytes"] += int(sum(i["size"] for i in b) * nok / max(1, len(b)))

        m0 = self.mon.snap()
        await asyncio.gather(*[worker() for _ in range(conc)])
        m1 = self.mon.snap()
        await http.close()
        sysm = Monitor.diff(m0, m1)
        wall = sysm["elapsed_s"]
        return dict(kind="stow", batch=batch, concurrency=conc, requests=len(batches),
                    instances_ok=st["ok"], instances_failed=st["failed"], instances_total=len(insts),
                    wall_s=wall, instances_per_s=round(st["ok"] / wall, 1), MB_per_s=round(st["ok_bytes"] / MB / wall, 1),
                    http_errors=dict(st["http_errors"]), http_202=st["warn"], error_samples=st["err_samples"],
                    request_latency=lat_stats(st["lat"]), system=sysm)

    @staticmethod
    def _stow_counts(status, headers, body, n):
        if status not in (200, 202, 409):
            return 0, n
        ctype = (headers.get("Content-Type") or "").lower()
        ok = fail = None
        try:
            if "json" in ctype or body[:1] in (b"{", b"["):
                js = json.loads(body) if body else {}
                if isinstance(js, list):
                    js = js[0] if js else {}
                if "00081199" in js:
                    ok = len(js["00081199"].get("Value") or [])
                if "00081198" in js:
                    fail = len(js["00081198"].get("Value") or [])
            elif "xml" in ctype:
                txt = body.decode("utf-8", "replace")
                m_ok = re.search(r'tag="00081199".*?(?=<DicomAttribute tag="0008119[8A]"|$)', txt, re.S)
                m_f = re.search(r'tag="00081198".*?(?=<DicomAttribute tag="0008119[9A]"|$)', txt, re.S)
                ok = len(re.findall(r"<Item", m_ok.group(0))) if m_ok else None
                fail = len(re.findall(r"<Item", m_f.group(0))) if m_f else None
        except Exception:
            pass
        if ok is None and fail is None:
            return (n, 0) if status == 200 else (0, n)
        fail = fail or 0
        ok = ok if ok is not None else max(0, n - fail)
        return ok, fail

    # --------------------------------------------------------------------- C-STORE (pynetdicom)
    def cstore_pynetdicom(self, conc):
        import multiprocessing as mp
        host, port, aet = self.dimse
        insts = self.idx.instances
        chunks = [insts[i::conc] for i in range(conc)] if self.a.cstore_interleave else \
            [insts[len(insts) * k // conc: len(insts) * (k + 1) // conc] for k in range(conc)]
        ctx = mp.get_context("spawn")
        ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        progress = ctx.Value("l", 0)
        dimse_timeout = min(self.a.timeout, self.a.dimse_timeout)
        procs = [ctx.Process(target=_cstore_worker, daemon=True,
                             args=(host, port, aet, self.a.calling_aet,
                                   [(i["path"], i["sop_class"], i["ts"], i["size"]) for i in ch],
                                   self.a.max_pdu, dimse_timeout, ready, results, go, not self.a.client_nagle, progress))
                 for ch in chunks if ch]
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=120)
        m0 = self.mon.snap()
        t_go = time.perf_counter()
        go.set()
        # collect results with a stall watchdog: no instance acknowledged for dimse_timeout + 30 s -> give up
        import queue as _q
        outs, last_n, last_t, stalled = [], -1, time.perf_counter(), False
        while len(outs) < len(procs):
            try:
                outs.append(results.get(timeout=2))
                continue
            except _q.Empty:
                pass
            n = progress.value
            if n != last_n:
                last_n, last_t = n, time.perf_counter()
            elif time.perf_counter() - last_t > dimse_timeout + 30:
                stalled = True
                break
        for p in procs:
            p.join(5 if not stalled else 0.1)
            if p.is_alive():
                p.terminate()  # only our own stuck worker processes
                p.join(5)
        t_end = max([o["t_end"] for o in outs] + [t_go]) if not stalled else time.perf_counter()
        m1 = self.mon.snap()
        sysm = Monitor.diff(m0, m1)
        wall = t_end - t_go
        # client CPU = this process + the workers' CPU while sending (their start-up/imports excluded)
        sysm["client_cpu_s"] = round(m1["self_cpu"] - m0["self_cpu"] + sum(o.get("cpu_s", 0) for o in outs), 2)
        sysm["client_cpu_pct_of_one_core"] = round(100 * sysm["client_cpu_s"] / sysm["elapsed_s"], 1)
        ok = sum(o["ok"] for o in outs)
        okb = sum(o["ok_bytes"] for o in outs)
        if stalled:
            ok = max(ok, progress.value)  # workers that never reported: count acknowledged instances
            self.note("C-STORE (pynetdicom) stalled: no progress for %ds; stuck workers terminated" % (dimse_timeout + 30))
        statuses = Counter()
        for o in outs:
            statuses.update(o["statuses"])
        return dict(kind="cstore_pynetdicom", concurrency=conc, associations=len(procs), instances_ok=ok, stalled=stalled,
                    association_drops=sum(o.get("drops", 0) for o in outs),
                    instances_failed=sum(o["failed"] for o in outs), instances_total=len(insts),
                    wall_s=round(wall, 3), instances_per_s=round(ok / wall, 1) if wall > 0 else None,
                    MB_per_s=round(okb / MB / wall, 1) if wall > 0 else None,
                    dimse_statuses=dict(statuses), error_samples=sum([o["errors"] for o in outs], [])[:5],
                    request_latency=lat_stats(sum([o["lat"] for o in outs], [])), system=sysm)

    # --------------------------------------------------------------------- C-STORE (storescu)
    STORESCU_TS_FLAG = {"1.2.840.10008.1.2.4.80": "-xt", "1.2.840.10008.1.2.4.81": "-xu", "1.2.840.10008.1.2.5": "-xr",
                        "1.2.840.10008.1.2.4.90": "-xv", "1.2.840.10008.1.2.4.91": "-xw", "1.2.840.10008.1.2.4.70": "-xs",
                        "1.2.840.10008.1.2.4.50": "-xy", "1.2.840.10008.1.2.4.51": "-xx", "1.2.840.10008.1.2.1.99": "-xd"}

    def cstore_storescu(self, conc):
        """N parallel storescu processes; each sends its share in as few associations as storescu allows
        (one per compressed transfer-syntax family: storescu can propose only one compressed TS per run)."""
        host, port, aet = self.dimse
        insts = self.idx.instances
        chunks = [insts[len(insts) * k // conc: len(insts) * (k + 1) // conc] for k in range(conc)]
        base = [self.a.storescu, "-aet", self.a.calling_aet, "-aec", aet, "-R", "-nh", "-to", str(int(self.a.timeout)),
                "-ta", str(int(self.a.timeout)), "-td", str(int(self.a.timeout))]
        jobs = []
        for ch in chunks:
            groups = defaultdict(list)
            for i in ch:
                groups[self.STORESCU_TS_FLAG.get(i["ts"], "")].append(i)
            if "" in groups and len(groups) > 1:   # uncompressed files ride along with the biggest compressed group
                big = max((g for g in groups if g), key=lambda g: len(groups[g]))
                groups[big] += groups.pop("")
            jobs.append([(base + ([flag] if flag else []) + [host, str(port)] + [i["path"] for i in g], g)
                         for flag, g in groups.items()])

        env = dict(os.environ)
        if not self.a.client_nagle:
            env["TCP_NODELAY"] = "1"   # DCMTK: disable Nagle on the association (Debian's default keeps it)
        else:
            env.pop("TCP_NODELAY", None)

        def run_seq(cmds, out):
            for cmd, g in cmds:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                out.append((p.returncode, p.stdout, len(g)))
        import threading
        outs = [[] for _ in jobs]
        m0 = self.mon.snap()
        ths = [threading.Thread(target=run_seq, args=(j, o)) for j, o in zip(jobs, outs)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        m1 = self.mon.snap()
        failed, errs, rcs, unknown = 0, [], [], False
        for o in outs:
            for rc, out, n in o:
                rcs.append(rc)
                bad = [l for l in out.splitlines() if re.search(r"(fail|error|^E:)", l, re.I)]
                nf = sum(1 for l in bad if "store failed" in l.lower())
                failed += nf
                if rc != 0 and nf == 0:
                    unknown = True
                    bad = bad or ["rc=%d" % rc]
                errs += bad[:3]
        sysm = Monitor.diff(m0, m1)
        wall = sysm["elapsed_s"]
        n = len(insts)
        ok = n - failed
        okb = sum(i["size"] for i in insts) * ok / n
        return dict(kind="cstore_storescu", concurrency=conc, associations=sum(len(j) for j in jobs),
                    instances_ok=ok, instances_failed=failed, failure_count_uncertain=unknown, instances_total=n,
                    exit_codes=rcs, wall_s=wall, instances_per_s=round(ok / wall, 1), MB_per_s=round(okb / MB / wall, 1),
                    error_samples=errs[:5], system=sysm,
                    note="per-instance success parsed from storescu output; cross-checked by QIDO verify")

    # --------------------------------------------------------------------- verify via QIDO
    async def verify(self, label, wait_s=None):
        if self.a.no_verify:
            return None
        wait_s = self.a.verify_wait if wait_s is None else wait_s
        http = Http(self.a.dicomweb, 2, self.a.timeout, self.a.accept_encoding)
        exp_st, exp_in = len(self.idx.studies), len(self.idx.instances)
        t0 = time.perf_counter()
        out = None
        while True:
            found_st, found_in, err, known = 0, 0, None, True
            uids = set()
            offset = 0
            while True:
                s, h, b, _ = await http.req("GET", "studies?includefield=00201208&limit=1000&offset=%d" % offset,
                                            {"Accept": ACC_JSON})
                if s not in (200, 204):
                    err = "HTTP %s" % s
                    break
                items = json_list(b) if s == 200 else []
                for it in items:
                    u = tagval(it, "0020000D")
                    if u in self.idx.studies and u not in uids:
                        uids.add(u)
                        v = tagval(it, "00201208")
                        if v is None:
                            known = False
                        else:
                            found_in += int(v)
                if len(items) < 1000:
                    break
                offset += len(items)
            found_st = len(uids)
            out = dict(after=label, studies_found=found_st, studies_expected=exp_st,
                       instances_found=found_in if known else None, instances_expected=exp_in, error=err)
            out["complete"] = (found_st == exp_st and (not known or found_in == exp_in)) and not err
            if out["complete"] or time.perf_counter() - t0 > wait_s:
                break
            await asyncio.sleep(1.0)
        out["seconds_until_complete"] = round(time.perf_counter() - t0, 2) if out["complete"] else None
        await http.close()
        self.res["verify"].append(out)
        if not out["complete"]:
            self.note("verify after %s: index incomplete %s" % (label, out))
        return out

    # --------------------------------------------------------------------- generic latency runner
    async def latency(self, http, name, calls, reps, warmup, section, extra=None):
        """calls: list of (path, headers, check) with check(status, headers, body) -> (ok, info) or None."""
        rec = dict(lat=[], statuses=Counter(), wrong=0, wrong_samples=[], bytes=0, info=Counter())
        first = None
        for w in range(warmup):
            p, h, c = calls[w % len(calls)]
            s, rh, b, dt = await http.req("GET", p, h)
            if first is None:
                first = (s, b, p)
            if s in UNSUPPORTED_STATUSES or s == -1:
                break
        if first and (first[0] in UNSUPPORTED_STATUSES or first[0] == -1) and warmup > 0:
            r = dict(supported=False, status=first[0], url=first[2], body=first[1][:200].decode("utf-8", "replace"))
            self.res["unsupported"].append(dict(metric="%s.%s" % (section, name), status=first[0], url=first[2]))
            self.res[section][name] = r
            log("%-28s UNSUPPORTED (HTTP %s)" % (name, first[0]))
            return r
        for k in range(reps):
            p, h, c = calls[k % len(calls)]
            s, rh, b, dt = await http.req("GET", p, h)
            rec["statuses"][str(s)] += 1
            if 200 <= s < 300:
                rec["lat"].append(dt)
                rec["bytes"] += len(b)
                if c:
                    try:
                        ok, info = c(s, rh, b)
                    except Exception as e:
                        ok, info = False, "check raised %s: %s" % (type(e).__name__, e)
                    if info and ok:
                        rec["info"][str(info)] += 1
                    if not ok:
                        rec["wrong"] += 1
                        if len(rec["wrong_samples"]) < 3:
                            rec["wrong_samples"].append(dict(url=p, problem=info))
        r = dict(supported=True, **lat_stats(rec["lat"]), statuses=dict(rec["statuses"]),
                 http_errors=sum(v for k, v in rec["statuses"].items() if not k.startswith("2")),
                 wrong_results=rec["wrong"], wrong_samples=rec["wrong_samples"])
        if rec["lat"]:
            r["mean_response_bytes"] = int(rec["bytes"] / len(rec["lat"]))
            r["MB_per_s"] = round(rec["bytes"] / MB / sum(rec["lat"]), 1)
        if rec["info"]:
            r["check_info"] = dict(rec["info"].most_common(3))
        if extra:
            r.update(extra)
        self.res[section][name] = r
        log("%-28s median %8.2f ms  p95 %8.2f ms  n=%d errors=%d wrong=%d" % (
            name, r.get("median_ms", float("nan")), r.get("p95_ms", float("nan")), r.get("n", 0),
            r["http_errors"], r["wrong_results"]))
        return r

    # --------------------------------------------------------------------- QIDO
    def qido_calls(self):
        idx = self.idx
        studies = list(idx.studies.values())
        J = {"Accept": ACC_JSON}
        rng = random.Random(7)

        def expect(n, pred=None):
            def chk(s, h, b):
                items = json_list(b) if s == 200 else []
                if len(items) != n:
                    return False, "got %d results, expected %d" % (len(items), n)
                if pred:
                    for it in items:
                        msg = pred(it)
                        if msg:
                            return False, msg
                return True, None
            return chk

        Q = {}
        # by PatientID
        Q["studies_by_PatientID"] = [
            ("studies?PatientID=%s" % pid, J,
             expect(sum(1 for s in studies if s["pid"] == pid),
                    lambda it, pid=pid: None if tagval(it, "00100020") == pid else "wrong PatientID %s" % tagval(it, "00100020")))
            for pid in idx.patients]
        # by StudyDate range (~25% of studies)
        dates = sorted(s["date"] for s in studies)
        w = max(1, len(dates) // 4)
        calls = []
        for k in range(0, max(1, len(dates) - w + 1), max(1, (len(dates) - w) // 10 or 1)):
            d1, d2 = dates[k], dates[min(len(dates) - 1, k + w - 1)]
            n = sum(1 for s in studies if d1 <= s["date"] <= d2)
            calls.append(("studies?StudyDate=%s-%s" % (d1, d2), J,
                          expect(n, lambda it, d1=d1, d2=d2: None if d1 <= (tagval(it, "00080020") or "") <= d2
                                 else "StudyDate %s outside %s-%s" % (tagval(it, "00080020"), d1, d2))))
        Q["studies_by_StudyDate_range"] = calls
        # by ModalitiesInStudy
        mods = sorted({m for s in studies for m in s["modalities"]})
        Q["studies_by_ModalitiesInStudy"] = [
            ("studies?ModalitiesInStudy=%s" % m, J, expect(sum(1 for s in studies if m in s["modalities"])))
            for m in mods]
        # wildcard PatientName (first 3 letters of family name + *)
        prefixes = sorted({s["pname"][:3] for s in studies if len(s["pname"]) >= 3 and s["pname"][:3].isascii()})
        Q["studies_by_PatientName_wildcard"] = [
            ("studies?PatientName=%s*" % p, J, expect(sum(1 for s in studies if s["pname"].startswith(p))))
            for p in prefixes]
        # includefield=all (single patient) - must add attributes beyond the defaults
        def inc_all(n):
            base = expect(n)

            def chk(s, h, b):
                ok, info = base(s, h, b)
                if not ok:
                    return ok, info
                items = json_list(b)
                if items and all("00081030" not in it for it in items):
                    return False, "includefield=all but StudyDescription (0008,1030) absent"
                return True, "attrs/result=%d" % (sum(len(it) for it in items) // max(1, len(items)))
            return chk
        Q["studies_by_PatientID_includefield_all"] = [
            ("studies?PatientID=%s&includefield=all" % pid, J, inc_all(sum(1 for s in studies if s["pid"] == pid)))
            for pid in idx.patients]
        Q["studies_all_includefield_all"] = [("studies?includefield=all", J, inc_all(len(studies)))]
        Q["studies_all"] = [("studies", J, expect(len(studies)))]
        # series of a study / instances of a series
        Q["series_of_study"] = [("studies/%s/series" % s["uid"], J, expect(len(s["series"]))) for s in studies]
        big_series = sorted((se for s in studies for se in s["series"].values()), key=lambda se: -len(se["instances"]))
        big_series = big_series[:max(1, min(20, len(big_series)))]
        Q["instances_of_series"] = [
            ("studies/%s/series/%s/instances" % (se["instances"][0]["study"], se["uid"]), J, expect(len(se["instances"])))
            for se in big_series]
        Q["series_by_Modality"] = [
            ("series?Modality=%s" % m, J,
             expect(sum(1 for s in studies for se in s["series"].values() if se["modality"] == m)))
            for m in mods]
        # limit/offset paging
        L = max(1, min(10, len(studies) // 3))
        Q["studies_paging_limit_offset"] = [
            ("studies?limit=%d&offset=%d" % (L, off), J, expect(max(0, min(L, len(studies) - off))))
            for off in range(0, len(studies), L)]
        Q["studies_by_AccessionNumber"] = [
            ("studies?AccessionNumber=%s" % s["accession"], J,
             expect(sum(1 for t in studies if t["accession"] == s["accession"]))) for s in studies if s["accession"]]
        for v in Q.values():
            rng.shuffle(v)
        return Q

    async def qido(self):
        http = Http(self.a.dicomweb, 1, self.a.timeout, self.a.accept_encoding)
        Q = self.qido_calls()
        m0 = self.mon.snap()
        for name, calls in Q.items():
            await self.latency(http, name, calls, self.a.qido_reps, 2, "qido")
        self.res["qido_system"] = Monitor.diff(m0, self.mon.snap())
        await self.qido_paging_check(http)
        await http.close()

    async def qido_paging_check(self, http):
        """Walk all studies with limit/offset; union must equal the full set with no duplicates."""
        L = max(1, min(10, len(self.idx.studies) // 3))
        seen, dup, pages, off = [], 0, 0, 0
        while pages < 1000:
            s, h, b, _ = await http.req("GET", "studies?limit=%d&offset=%d" % (L, off), {"Accept": ACC_JSON})
            if s not in (200, 204):
                self.res["qido_checks"]["paging"] = dict(ok=False, error="HTTP %s" % s)
                return
            items = json_list(b) if s == 200 else []
            pages += 1
            for it in items:
                u = tagval(it, "0020000D")
                dup += u in seen
                seen.append(u)
            if len(items) < L:
                break
            off += L
        exp = set(self.idx.studies)
        ok = set(seen) == exp and dup == 0
        self.res["qido_checks"]["paging"] = dict(ok=ok, pages=pages, limit=L, returned=len(seen), duplicates=dup,
                                                 missing=len(exp - set(seen)))
        if not ok:
            self.note("QIDO limit/offset paging inconsistent: %s" % self.res["qido_checks"]["paging"])

    async def qido_load(self):
        """N concurrent clients issuing a mix of light QIDO queries for --qido-load-seconds."""
        conc = self.a.concurrency
        http = Http(self.a.dicomweb, conc, self.a.timeout, self.a.accept_encoding)
        Q = self.qido_calls()
        mix = []
        for name in ("studies_by_PatientID", "studies_by_StudyDate_range", "studies_by_ModalitiesInStudy",
                     "studies_by_PatientName_wildcard", "series_of_study", "instances_of_series"):
            if self.res["qido"].get(name, {}).get("supported", True):
                mix += [c[0] for c in Q[name]]
        random.Random(3).shuffle(mix)
        lat, statuses = [], Counter()
        t_end = time.perf_counter() + self.a.qido_load_seconds

        async def worker(k):
            i = k
            while time.perf_counter() < t_end:
                s, h, b, dt = await http.req("GET", mix[i % len(mix)], {"Accept": ACC_JSON})
                i += conc
                statuses[str(s)] += 1
                if s in (200, 204):
                    lat.append(dt)
        m0 = self.mon.snap()
        await asyncio.gather(*[worker(k) for k in range(conc)])
        sysm = Monitor.diff(m0, self.mon.snap())
        await http.close()
        ok = len(lat)
        self.res["qido_load"] = dict(concurrency=conc, seconds=sysm["elapsed_s"], queries_ok=ok,
                                     queries_per_s=round(ok / sysm["elapsed_s"], 1), statuses=dict(statuses),
                                     latency=lat_stats(lat), system=sysm)
        log("QIDO mixed load: %.1f q/s at concurrency %d" % (self.res["qido_load"]["queries_per_s"], conc))

    # --------------------------------------------------------------------- WADO
    def _pick(self):
        idx = self.idx
        studies = sorted(idx.studies.values(), key=lambda s: -s["bytes"])
        by_mod = defaultdict(list)
        for s in studies:
            by_mod[sorted(s["modalities"])[0]].append(s)
        picks = studies[:3]
        for m, lst in sorted(by_mod.items()):
            if lst[0] not in picks:
                picks.append(lst[0])
        return picks

    async def _retrieve_study(self, http, st, accept):
        s, h, b, dt = await http.req("GET", "studies/%s" % st["uid"], {"Accept": accept})
        info = dict(status=s, seconds=dt, bytes=len(b))
        if s == 200:
            parts = split_multipart(b, h.get("Content-Type"))
            info["parts"] = len(parts) if parts is not None else None
            if parts is not None:
                info["ts"] = Counter(part_ts(p) for _, p in parts)
        else:
            info["body"] = b[:200].decode("utf-8", "replace")
        return info

    async def wado_study(self):
        http = Http(self.a.dicomweb, 1, self.a.timeout, self.a.accept_encoding)
        picks = self._pick()
        accept = ACC_DICOM_ANY
        first = await self._retrieve_study(http, picks[0], accept)  # warm-up + capability probe
        if first["status"] in UNSUPPORTED_STATUSES:
            self.note("WADO-RS study retrieve with transfer-syntax=* -> HTTP %s; retrying without it" % first["status"])
            accept = ACC_DICOM
            first = await self._retrieve_study(http, picks[0], accept)
            if first["status"] != 200:
                self.res["wado"]["study_retrieve_sequential"] = dict(supported=False, status=first["status"],
                                                                     body=first.get("body"))
                self.res["unsupported"].append(dict(metric="wado.study_retrieve", status=first["status"]))
                await http.close()
                return
        self.wado_accept = accept
        tot_b, tot_t, lat, wrong, errs, per_mod = 0, 0.0, [], [], Counter(), defaultdict(lambda: [0, 0.0])
        for rep in range(self.a.wado_reps):
            for st in picks:
                r = await self._retrieve_study(http, st, accept)
                if r["status"] != 200:
                    errs[str(r["status"])] += 1
                    continue
                tot_b += r["bytes"]
                tot_t += r["seconds"]
                lat.append(r["seconds"])
                m = "+".join(sorted(st["modalities"]))
                per_mod[m][0] += r["bytes"]
                per_mod[m][1] += r["seconds"]
                if r.get("parts") != st["n"]:
                    wrong.append(dict(study=st["uid"], parts=r.get("parts"), expected=st["n"]))
        self.res["wado"]["study_retrieve_sequential"] = dict(
            supported=True, accept=accept, studies=len(picks), retrieves=len(lat), MB_per_s=round(tot_b / MB / tot_t, 1) if tot_t else None,
            per_modality_MB_per_s={m: round(v[0] / MB / v[1], 1) for m, v in per_mod.items() if v[1]},
            latency=lat_stats(lat), mean_study_MB=round(tot_b / MB / max(1, len(lat)), 1),
            http_errors=dict(errs), wrong_results=len(wrong), wrong_samples=wrong[:3])
        log("WADO study retrieve (sequential): %.1f MB/s over %d retrieves" % (
            self.res["wado"]["study_retrieve_sequential"]["MB_per_s"] or 0, len(lat)))
        # default Accept (no transfer-syntax=*): standard says Explicit VR Little Endian -> must transcode
        comp = [s for s in self.idx.studies.values()
                if any(i["ts"] not in UNCOMPRESSED_TS for se in s["series"].values() for i in se["instances"])]
        if comp:
            st = max(comp, key=lambda s: s["bytes"])
            r = await self._retrieve_study(http, st, ACC_DICOM)
            lat2 = []
            tss = Counter()
            for _ in range(max(1, self.a.wado_reps)):
                r = await self._retrieve_study(http, st, ACC_DICOM)
                if r["status"] == 200:
                    lat2.append(r["seconds"])
                    tss = r.get("ts") or tss
            non_le = sum(v for k, v in tss.items() if k != "1.2.840.10008.1.2.1")
            self.res["wado"]["study_retrieve_default_ts_compressed_study"] = dict(
                supported=r["status"] == 200, status=r["status"], accept=ACC_DICOM, study_instances=st["n"],
                stored_ts=dict(Counter(i["ts"] for se in st["series"].values() for i in se["instances"])),
                returned_ts=dict(tss), parts_not_explicit_le=non_le, latency=lat_stats(lat2),
                MB_per_s=round(r["bytes"] / MB / r["seconds"], 1) if r["status"] == 200 else None,
                note="PS3.18: default transfer syntax for application/dicom is Explicit VR Little Endian")
            if non_le:
                self.note("WADO-RS retrieve without transfer-syntax param returned %d parts not in Explicit VR LE" % non_le)
        await http.close()

    async def wado_all(self):
        """Retrieve every study of the data set, N concurrent requests."""
        conc = self.a.concurrency
        accept = getattr(self, "wado_accept", ACC_DICOM_ANY)
        http = Http(self.a.dicomweb, conc, self.a.timeout, self.a.accept_encoding)
        studies = list(self.idx.studies.values())
        it = iter(studies)
        tot = dict(bytes=0, parts=0, wrong=0, errors=Counter(), lat=[])

        async def worker():
            for st in it:
                r = await self._retrieve_study(http, st, accept)
                if r["status"] != 200:
                    tot["errors"][str(r["status"])] += 1
                    continue
                tot["bytes"] += r["bytes"]
                tot["parts"] += r.get("parts") or 0
                tot["lat"].append(r["seconds"])
                if r.get("parts") != st["n"]:
                    tot["wrong"] += 1
        m0 = self.mon.snap()
        await asyncio.gather(*[worker() for _ in range(conc)])
        sysm = Monitor.diff(m0, self.mon.snap())
        await http.close()
        w = sysm["elapsed_s"]
        self.res["wado"]["all_studies_concurrent"] = dict(
            concurrency=conc, accept=accept, studies=len(studies), instances_received=tot["parts"],
            MB_per_s=round(tot["bytes"] / MB / w, 1), instances_per_s=round(tot["parts"] / w, 1), wall_s=w,
            http_errors=dict(tot["errors"]), wrong_results=tot["wrong"], study_latency=lat_stats(tot["lat"]), system=sysm)
        log("WADO all studies x%d: %.1f MB/s" % (conc, tot["bytes"] / MB / w))

    async def wado_instance(self, http, unc, unc_big, url, acc, R):
        def chk_instance(i):
            def c(s, h, b):
                parts = split_multipart(b, h.get("Content-Type"))
                if not parts or len(parts) != 1:
                    return False, "expected 1 part, got %s" % (None if parts is None else len(parts))
                return True, None
            return c
        await self.latency(http, "instance_retrieve", [(url(i), {"Accept": acc}, chk_instance(i)) for i in unc[:R]],
                           R, 2, "wado")
        if unc_big:
            await self.latency(http, "instance_retrieve_large_xr", [(url(i), {"Accept": acc}, chk_instance(i)) for i in unc_big],
                               max(4, R // 4), 1, "wado")

    async def wado_small(self):
        """Single instance, metadata, frames, rendered, thumbnail."""
        http = Http(self.a.dicomweb, 1, self.a.timeout, self.a.accept_encoding)
        idx, R = self.idx, self.a.wado_reps_small
        rng = random.Random(11)
        unc = [i for i in idx.instances if i["ts"] in UNCOMPRESSED_TS and i["frames"] == 1 and i["rows"] <= 1024]
        unc_big = [i for i in idx.instances if i["ts"] in UNCOMPRESSED_TS and i["rows"] > 1024]
        comp = [i for i in idx.instances if i["ts"] not in UNCOMPRESSED_TS]
        rng.shuffle(unc)

        def url(i):
            return "studies/%s/series/%s/instances/%s" % (i["study"], i["series"], i["sop"])

        acc = getattr(self, "wado_accept", ACC_DICOM_ANY)
        if "wado_instance" in self.a.phases:
            await self.wado_instance(http, unc, unc_big, url, acc, R)
        if "wado_small" not in self.a.phases:
            await http.close()
            return

        # series metadata (prefer the biggest series, cycle through many)
        series = sorted((se for s in idx.studies.values() for se in s["series"].values()), key=lambda se: -len(se["instances"]))
        series = series[:max(1, min(R, len(series)))]

        def chk_meta(n):
            def c(s, h, b):
                items = json_list(b)
                if len(items) != n:
                    return False, "metadata items %d != %d instances" % (len(items), n)
                missing = [t for t in ("00280010", "00280030", "00200032", "00080018") if t not in items[0]]
                attrs = sum(len(x) for x in items) // max(1, len(items))
                if missing:
                    return False, "metadata lacks %s (attrs/instance=%d)" % (",".join(missing), attrs)
                return True, "attrs/instance=%d" % attrs
            return c
        await self.latency(http, "series_metadata", [
            ("studies/%s/series/%s/metadata" % (se["instances"][0]["study"], se["uid"]), {"Accept": ACC_JSON},
             chk_meta(len(se["instances"]))) for se in series], R, 2, "wado",
            extra=dict(mean_instances_per_series=round(float(np.mean([len(se["instances"]) for se in series])), 1)))
        studies = sorted(idx.studies.values(), key=lambda s: -s["n"])[:max(1, min(max(4, R // 2), len(idx.studies)))]
        await self.latency(http, "study_metadata", [
            ("studies/%s/metadata" % s["uid"], {"Accept": ACC_JSON}, chk_meta(s["n"])) for s in studies],
            max(4, R // 2), 1, "wado",
            extra=dict(mean_instances_per_study=round(float(np.mean([s["n"] for s in studies])), 1)))

        # frames
        def chk_frame(i, native=False):
            def c(s, h, b):
                parts = split_multipart(b, h.get("Content-Type"))
                if not parts:
                    return False, "not multipart"
                n = len(parts[0][1])
                want = i["rows"] * i["cols"] * i["spp"] * (i["bits"] // 8)
                if not native and n != want:
                    return False, "frame %d bytes, expected %d uncompressed" % (n, want)
                ctype = re.search(rb"content-type:\s*([^\r\n]+)", parts[0][0], re.I)
                return True, (ctype.group(1).decode() if ctype else "no part content-type")
            return c
        await self.latency(http, "frame_uncompressed", [
            (url(i) + "/frames/1", {"Accept": ACC_OCTET}, chk_frame(i)) for i in unc[:R]], R, 2, "wado")
        if comp:
            rng.shuffle(comp)
            await self.latency(http, "frame_decompress_from_compressed", [
                (url(i) + "/frames/1", {"Accept": ACC_OCTET}, chk_frame(i)) for i in comp[:R]], R, 2, "wado",
                extra=dict(stored_ts=dict(Counter(i["ts"] for i in comp[:R]))))
            await self.latency(http, "frame_native_compressed", [
                (url(i) + "/frames/1",
                 {"Accept": 'multipart/related; type="%s"; transfer-syntax=%s' % (TS_MEDIA.get(i["ts"], "application/octet-stream"), i["ts"])},
                 chk_frame(i, native=True)) for i in comp[:R]], R, 2, "wado")

        def chk_img(magic, label):
            def c(s, h, b):
                return (b.startswith(magic), None if b.startswith(magic) else "not a %s (%r...)" % (label, b[:8]))
            return c
        await self.latency(http, "rendered_ct_jpeg", [
            (url(i) + "/rendered", {"Accept": "image/jpeg"}, chk_img(b"\xff\xd8", "JPEG")) for i in unc[:R]], R, 2, "wado")
        if unc_big:
            await self.latency(http, "rendered_xr_jpeg", [
                (url(i) + "/rendered", {"Accept": "image/jpeg"}, chk_img(b"\xff\xd8", "JPEG")) for i in unc_big],
                max(4, R // 4), 1, "wado")
        await self.latency(http, "rendered_png", [
            (url(i) + "/rendered", {"Accept": "image/png"}, chk_img(b"\x89PNG", "PNG")) for i in unc[:R]],
            max(4, R // 4), 1, "wado")
        await self.latency(http, "thumbnail_instance", [
            (url(i) + "/thumbnail", {"Accept": "image/jpeg"}, chk_img(b"\xff\xd8", "JPEG")) for i in unc[:R]],
            max(4, R // 4), 1, "wado")
        some_series = series[:max(1, min(8, len(series)))]
        await self.latency(http, "thumbnail_series", [
            ("studies/%s/series/%s/thumbnail" % (se["instances"][0]["study"], se["uid"]), {"Accept": "image/jpeg"},
             chk_img(b"\xff\xd8", "JPEG")) for se in some_series], max(4, R // 4), 1, "wado")
        await http.close()

    # --------------------------------------------------------------------- orchestration
    async def run(self):
        a = self.a
        phases = a.phases
        self.dimse = None
        if a.dimse:
            h, p, aet = a.dimse.split(":")
            self.dimse = (h, int(p), aet)
            if not a.no_echo and ({"cstore", "storescu"} & phases):
                ok, msg = _echo(h, int(p), aet, a.calling_aet)
                self.res["meta"]["c_echo"] = msg
                if not ok:
                    self.note("C-ECHO failed (%s): DIMSE phases skipped" % msg)
                    phases = phases - {"cstore", "storescu"}
        elif {"cstore", "storescu"} & phases:
            phases = phases - {"cstore", "storescu"}

        ingest_plan = []
        if "stow" in phases:
            for cfg in a.stow_config:
                ingest_plan.append(("stow", cfg))
        if "cstore" in phases:
            ingest_plan.append(("cstore", a.concurrency))
        if "storescu" in phases:
            ingest_plan.append(("storescu", a.concurrency))
        if a.ingest_order == "interleaved":   # A B C A B C ...
            runs = [x for r in range(a.repeat) for x in ingest_plan]
        else:                                  # A A B B C C
            runs = [x for x in ingest_plan for r in range(a.repeat)]
        if len(runs) > 1 and not a.reset_cmd and not a.allow_duplicate_ingest:
            self.note("no --reset-cmd: only the first ingest run is measured (others would re-send duplicates)")
            runs = runs[:1]
        for n, (kind, cfg) in enumerate(runs):
            try:
                rt = self.reset()
            except RuntimeError as e:
                self.note(str(e))
                break
            label = "%s_%s" % (kind, "%dx%d" % cfg if kind == "stow" else "x%d" % cfg)
            log("ingest run %d/%d: %s" % (n + 1, len(runs), label))
            if kind == "stow":
                r = await self.stow(*cfg)
            elif kind == "cstore":
                r = self.cstore_pynetdicom(cfg)
            else:
                r = self.cstore_storescu(cfg)
            r["reset_s"] = rt
            r["verify"] = await self.verify(label)
            self.res["ingest"][label].append(r)
            log("  -> %s instances/s, %s MB/s (ok %s/%s, errors %s)" % (
                r["instances_per_s"], r["MB_per_s"], r["instances_ok"], r["instances_total"],
                r.get("http_errors") or r.get("dimse_statuses") or r.get("error_samples")))
            self.loaded = r["verify"]["complete"] if r.get("verify") else None
        if runs and self.loaded is False and not a.no_verify:
            self.note("last ingest left the index incomplete: re-sending everything by STOW-RS (not measured)")
            r = await self.stow(10, 2)
            self.res["topup"] = dict(instances_ok=r["instances_ok"], instances_failed=r["instances_failed"],
                                     verify=await self.verify("top-up"))
        if not runs and phases & {"qido", "qido_load", "wado_study", "wado_all", "wado_instance", "wado_small"}:
            v = await self.verify("pre-existing data (no ingest phase)", wait_s=0)
            if v and not v["complete"]:
                self.note("data set not (fully) present on server; retrieval figures may be affected")
        if "qido" in phases:
            log("QIDO-RS latency ...")
            await self.qido()
        if "qido_load" in phases:
            await self.qido_load()
        if "wado_study" in phases:
            log("WADO-RS study retrieve ...")
            await self.wado_study()
        if "wado_all" in phases:
            await self.wado_all()
        if phases & {"wado_small", "wado_instance"}:
            log("WADO-RS instance/metadata/frames/rendered ...")
            await self.wado_small()


def _cstore_worker(host, port, aet, calling, files, max_pdu, timeout, ready, results, go, nodelay=True, progress=None):
    import logging
    import socket
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    from pynetdicom import AE
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.maximum_pdu_size = max_pdu
    ctxs = sorted({(c, t) for _, c, t, _ in files})
    for c, t in ctxs[:128]:
        ae.add_requested_context(c, [t])

    def connect():
        a = ae.associate(host, port, ae_title=aet, max_pdu=max_pdu)
        if a.is_established:
            # pynetdicom 3.0 race: the association reactor thread polls the DIMSE queue (non-blocking) and can
            # take the C-STORE-RSP meant for send_c_store() when its pause hand-shake loses a thread race
            # (seen under CPU contention): the reactor then aborts and send_c_store waits for dimse_timeout.
            # A pure SCU never has to serve incoming requests, so the reactor's non-blocking polls get nothing.
            _get = a.dimse.get_msg

            def _scu_get_msg(block=False, _get=_get):
                return _get(block=True) if block else (None, None)
            a.dimse.get_msg = _scu_get_msg
        if nodelay and a.is_established:
            # pynetdicom leaves Nagle on: with 16 KiB PDUs on loopback (MSS 64 KiB) every C-STORE would then
            # wait ~40 ms for the SCP's delayed ACK - a client artefact, not a server property.
            try:
                a.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except Exception:
                pass
        return a
    out = dict(ok=0, failed=0, ok_bytes=0, statuses=Counter(), errors=[], lat=[], t_end=0.0, drops=0)
    assoc = connect()
    ready.put(assoc.is_established)
    go.wait()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    k, retried = 0, set()
    while k < len(files):
        path, c, t, size = files[k]
        if not assoc.is_established:       # dropped: count it, re-associate, carry on (a real sender retries)
            out["drops"] += 1
            if len(out["errors"]) < 5:
                out["errors"].append("association lost before file %d; re-associating" % k)
            assoc = connect()
            if not assoc.is_established:
                out["failed"] += len(files) - k
                out["errors"].append("re-association failed")
                break
        t0 = time.perf_counter()
        code = None
        try:
            st = assoc.send_c_store(path)
            code = getattr(st, "Status", None)
        except Exception as e:
            if len(out["errors"]) < 5:
                out["errors"].append("%s: %s" % (type(e).__name__, e))
        out["lat"].append(time.perf_counter() - t0)
        if code is None and k not in retried:   # no response (timeout/abort): retry this file once
            retried.add(k)
            out["statuses"]["no-status(retried)"] += 1
            try:
                assoc.abort()
            except Exception:
                pass
            continue
        key = "0x%04X" % code if code is not None else "no-status"
        out["statuses"][key] += 1
        if code is not None and (code == 0 or (code & 0xF000) == 0xB000 or code == 0x0107 or code == 0x0116):
            out["ok"] += 1
            out["ok_bytes"] += size
            if progress is not None:
                with progress.get_lock():
                    progress.value += 1
        else:
            out["failed"] += 1
        k += 1
    out["t_end"] = time.perf_counter()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    try:
        assoc.release()
    except Exception:
        pass
    out["statuses"] = dict(out["statuses"])
    results.put(out)


def _echo(host, port, aet, calling):
    import logging
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    from pynetdicom import AE
    ae = AE(ae_title=calling)
    ae.add_requested_context("1.2.840.10008.1.1")
    ae.acse_timeout = ae.network_timeout = 10
    a = ae.associate(host, port, ae_title=aet)
    if not a.is_established:
        return False, "association failed"
    st = a.send_c_echo()
    a.release()
    return bool(st) and st.Status == 0, "C-ECHO status 0x%04X" % st.Status if st else "no status"


# =============================================================================== report
def flat_rows(res):
    rows = []
    for label, runs in res["ingest"].items():
        for k, r in enumerate(runs):
            sysm = r.get("system", {})
            rows.append(("ingest", "%s run%d" % (label, k + 1), "%s inst/s  %s MB/s" % (r["instances_per_s"], r["MB_per_s"]),
                         "ok %s/%s fail %s; srv cpu %s%%/core, client %s%%, machine busy %s%% (others ~%s%%), iowait %s%%%s" % (
                             r["instances_ok"], r["instances_total"], r["instances_failed"],
                             sysm.get("server_cpu_pct_of_one_core", "?"), sysm.get("client_cpu_pct_of_one_core"),
                             sysm.get("machine_busy_pct"), sysm.get("others_busy_pct_est"), sysm.get("machine_iowait_pct"),
                             "" if not r.get("verify") else ("; verify ok" if r["verify"]["complete"] else "; VERIFY FAILED"))))
    for sec in ("qido", "wado"):
        for name, r in res[sec].items():
            if not r.get("supported", True):
                rows.append((sec, name, "UNSUPPORTED", "HTTP %s %s" % (r.get("status"), (r.get("body") or "")[:60])))
            elif "median_ms" in r:
                rows.append((sec, name, "p50 %.1f ms  p95 %.1f ms" % (r["median_ms"], r["p95_ms"]),
                             "n=%d err=%d wrong=%d%s%s" % (r["n"], r["http_errors"], r["wrong_results"],
                                                         (" %.1f MB/s" % r["MB_per_s"]) if r.get("MB_per_s") and r.get("mean_response_bytes", 0) > 100000 else "",
                                                         (" " + str(r["wrong_samples"][0]["problem"])) if r["wrong_samples"] else
                                                         (" " + ",".join(r.get("check_info", {}).keys()) if r.get("check_info") else ""))))
            elif "MB_per_s" in r:
                rows.append((sec, name, "%s MB/s" % r["MB_per_s"],
                             "errors %s wrong %s %s" % (r.get("http_errors"), r.get("wrong_results"),
                                                        ("p50 %.0f ms" % r["latency"]["median_ms"]) if r.get("latency", {}).get("n") else
                                                        ("%s inst/s" % r.get("instances_per_s") if r.get("instances_per_s") else ""))))
            elif r.get("status") is not None:
                rows.append((sec, name, "HTTP %s" % r.get("status"), json.dumps(r)[:100]))
    if res.get("qido_load"):
        q = res["qido_load"]
        rows.append(("qido", "mixed load x%d" % q["concurrency"], "%s q/s" % q["queries_per_s"],
                     "p50 %s ms p95 %s ms statuses %s" % (q["latency"].get("median_ms"), q["latency"].get("p95_ms"), q["statuses"])))
    for k, v in res.get("qido_checks", {}).items():
        rows.append(("qido", "check " + k, "OK" if v.get("ok") else "FAILED", json.dumps(v)[:100]))
    return rows


def print_table(res, out=sys.stdout):
    rows = flat_rows(res)
    w0 = max([len(r[1]) for r in rows] + [10])
    w1 = max([len(r[2]) for r in rows] + [10])
    print("\n== peerbench %s  target %s  (%s)" % (VERSION, res["meta"]["args"]["dicomweb"], res["meta"].get("label")), file=out)
    sec = None
    for s, n, v, x in rows:
        if s != sec:
            print("-- %s" % s.upper(), file=out)
            sec = s
        print("  %-*s  %-*s  %s" % (w0, n, w1, v, x), file=out)
    if res["notes"]:
        print("-- NOTES", file=out)
        for n in res["notes"]:
            print("  * " + n, file=out)


# =============================================================================== main
ALL_PHASES = ["stow", "cstore", "storescu", "qido", "qido_load", "wado_study", "wado_all", "wado_instance", "wado_small"]
ALIASES = {"all": ALL_PHASES, "ingest": ["stow", "cstore", "storescu"], "wado": ["wado_study", "wado_all", "wado_instance", "wado_small"],
           "read": ["qido", "qido_load", "wado_study", "wado_all", "wado_instance", "wado_small"]}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dicomweb", required=True, help="DICOMweb base URL, e.g. http://127.0.0.1:18042/dicom-web")
    ap.add_argument("--dimse", help="HOST:PORT:AET of the C-STORE SCP (optional)")
    ap.add_argument("--data", required=True, help="folder of DICOM Part-10 files")
    ap.add_argument("--concurrency", type=int, default=4, help="concurrent requests / associations (default 4)")
    ap.add_argument("--batch", type=int, default=10, help="instances per STOW-RS request (default 10)")
    ap.add_argument("--stow-config", default=None,
                    help="comma list of KxN (batch x concurrency) STOW runs, e.g. '10x4,1x1' (default: BATCHxCONCURRENCY)")
    ap.add_argument("--out", help="results JSON path")
    ap.add_argument("--label", default=None, help="name of the server/config under test (stored in JSON)")
    ap.add_argument("--phases", default="all", help="comma list of %s or aliases %s" % (ALL_PHASES, list(ALIASES)))
    ap.add_argument("--repeat", type=int, default=1, help="repeat every ingest run this many times (needs --reset-cmd)")
    ap.add_argument("--ingest-order", choices=["grouped", "interleaved"], default="interleaved")
    ap.add_argument("--reset-cmd", help="shell command that empties the server (run before every ingest run)")
    ap.add_argument("--allow-duplicate-ingest", action="store_true")
    ap.add_argument("--server-pid", type=int, action="append", default=[],
                    help="PID(s) of server processes (local only) to sample CPU/RSS of (process trees)")
    ap.add_argument("--server-pid-file", action="append", default=[],
                    help="file(s) holding server PIDs, re-read after each reset (for servers restarted by --reset-cmd)")
    ap.add_argument("--calling-aet", default="PEERBENCH")
    ap.add_argument("--max-pdu", type=int, default=16382, help="max PDU we announce to receive (pynetdicom)")
    ap.add_argument("--cstore-interleave", action="store_true", help="deal instances round-robin to associations")
    ap.add_argument("--client-nagle", action="store_true",
                    help="leave Nagle's algorithm on in the C-STORE clients (default: TCP_NODELAY, as a tuned sender)")
    ap.add_argument("--storescu", default="/usr/bin/storescu" if os.path.exists("/usr/bin/storescu") else "storescu",
                    help="path of DCMTK storescu (pynetdicom installs a Python app of the same name)")
    ap.add_argument("--qido-reps", type=int, default=30)
    ap.add_argument("--qido-load-seconds", type=float, default=10.0)
    ap.add_argument("--wado-reps", type=int, default=2, help="repetitions of each whole-study retrieve")
    ap.add_argument("--wado-reps-small", type=int, default=30, help="requests per small WADO metric")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--dimse-timeout", type=float, default=60.0, help="pynetdicom ACSE/DIMSE/network timeout (s)")
    ap.add_argument("--verify-wait", type=float, default=30.0, help="seconds to wait for the index to show all data")
    ap.add_argument("--no-verify", action="store_true", help="skip QIDO verification after ingest (null servers)")
    ap.add_argument("--no-echo", action="store_true")
    ap.add_argument("--accept-encoding", default="identity", help="Accept-Encoding request header (default identity)")
    a = ap.parse_args(argv)
    ph = set()
    for p in a.phases.split(","):
        p = p.strip()
        if p in ALIASES:
            ph.update(ALIASES[p])
        elif p in ALL_PHASES:
            ph.add(p)
        elif p:
            ap.error("unknown phase %s" % p)
    a.phases = ph
    cfg = a.stow_config or "%dx%d" % (a.batch, a.concurrency)
    a.stow_config = [tuple(int(x) for x in c.lower().split("x")) for c in cfg.split(",")]
    return a


def main(argv=None):
    a = parse_args(argv)
    if a.server_pid_file:
        a.server_pid = a.server_pid + [int(x) for f in a.server_pid_file if os.path.exists(f) for x in open(f).read().split()]
    t0 = time.time()
    log("scanning %s ..." % a.data)
    idx = scan_dataset(a.data)
    if not idx.instances:
        sys.exit("no DICOM files found in %s" % a.data)
    log("data set: %d instances, %.1f MB, %d studies" % (len(idx.instances), idx.total_bytes / MB, len(idx.studies)))
    # warm the page cache so that client-side disk reads do not perturb the ingest figures
    for i in idx.instances:
        with open(i["path"], "rb") as f:
            while f.read(1 << 22):
                pass
    b = Bench(a, idx)
    b.res["meta"] = dict(peerbench=VERSION, label=a.label, started=datetime.datetime.now().isoformat(timespec="seconds"),
                         host=dict(node=platform.node(), cpus=os.cpu_count(), python=platform.python_version(),
                                   mem_GB=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
                                   loadavg_at_start=os.getloadavg()),
                         dataset=idx.summary(),
                         args={k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(a).items()})
    try:
        asyncio.run(b.run())
    except KeyboardInterrupt:
        b.note("interrupted")
    b.res["meta"]["duration_s"] = round(time.time() - t0, 1)
    b.res["meta"]["loadavg_at_end"] = os.getloadavg()
    b.res["ingest"] = dict(b.res["ingest"])
    print_table(b.res)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(b.res, f, indent=1, default=str)
        log("wrote %s" % a.out)


if __name__ == "__main__":
    main()

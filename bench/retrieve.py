#!/usr/bin/env python3
"""Retrieve benchmark against any DICOMweb server (ours or Orthanc): prints JSON.

    python -m bench.retrieve --url http://127.0.0.1:8080/dicom-web [--stow DIR] [--reps 20]
    python -m bench.retrieve --url http://127.0.0.1:18042/dicom-web --label orthanc

Measures (one keep-alive connection, bodies fully read, latency = request sent → body read):
  study_retrieve   largest study, `transfer-syntax=*`, MB/s (MB = 10^6 bytes of HTTP body)
  ceiling          the same client reading a file of the same size from an aiohttp FileResponse
                   (sendfile) on loopback: what this machine can serve from disk over loopback
  series_metadata  the series with most instances; study_metadata for its study
  frame_native     frame 1 of an uncompressed instance (transfer-syntax=*)
  frame_compressed_as_is / frame_decoded   frame 1 of a compressed instance, as stored / decoded
  rendered         instance rendered as image/jpeg; thumbnail of the series (viewport 256)
Data: whatever the server holds (discovered with QIDO-RS); `--stow DIR` first uploads every
file under DIR (e.g. bench/peerbench/gen_data.py output) with STOW-RS, 10 instances a request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

MB = 1e6
ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
OCTET = 'multipart/related; type="application/octet-stream"'
UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


class Client:
    """One keep-alive HTTP/1.1 connection; reads bodies in 1 MiB chunks and discards them."""

    def __init__(self, url: str) -> None:
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.root = u.hostname or "127.0.0.1", u.port or 80, u.path
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)

    def get(self, path: str, accept: str = "*/*", keep: bool = True) -> tuple[int, dict[str, str],
                                                                              bytes, int]:
        headers = {"Accept": accept, "Accept-Encoding": "identity"}
        for attempt in range(2):
            try:
                self.conn.request("GET", path, headers=headers)
                resp = self.conn.getresponse()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
                if attempt:
                    raise
        body, size = [], 0
        while chunk := resp.read(1 << 20):
            size += len(chunk)
            if keep:
                body.append(chunk)
        return resp.status, dict(resp.getheaders()), b"".join(body), size

    def post(self, path: str, body: bytes, ctype: str) -> int:
        self.conn.request("POST", path, body=body, headers={"Content-Type": ctype,
                                                           "Accept": "application/dicom+json"})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def json(self, path: str) -> Any:
        status, _, body, _ = self.get(path, "application/dicom+json")
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}")
        return json.loads(body) if body else []


def _v(item: dict[str, Any], tag: str) -> Any:
    values = (item.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def stow(client: Client, folder: Path) -> int:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".dcm", ""))
    files = [p for p in files if p.name != "manifest.json"]
    for i in range(0, len(files), 10):
        body = b"".join(b"--BNDRY\r\nContent-Type: application/dicom\r\n\r\n" + p.read_bytes()
                        + b"\r\n" for p in files[i:i + 10]) + b"--BNDRY--\r\n"
        status = client.post(client.root + "/studies", body,
                             'multipart/related; type="application/dicom"; boundary=BNDRY')
        if status not in (200, 202):
            raise RuntimeError(f"STOW failed: HTTP {status}")
    return len(files)


def discover(client: Client) -> dict[str, Any]:
    """Largest study, largest series, an uncompressed and (if any) a compressed instance."""
    r = client.root
    studies = client.json(f"{r}/studies?includefield=00201208&limit=1000")
    if not studies:
        raise SystemExit("server holds no studies (use --stow DIR)")
    best: dict[str, Any] = {}
    series_all = []
    for st in studies:
        uid = _v(st, "0020000D")
        for se in client.json(f"{r}/studies/{uid}/series?includefield=00201209"):
            n = int(_v(se, "00201209") or 0)
            series_all.append((n, uid, _v(se, "0020000E")))
    series_all.sort(reverse=True)
    sizes: dict[str, int] = {}
    for n, study, _ in series_all:
        sizes[study] = sizes.get(study, 0) + n
    best["study"] = max(sizes, key=lambda s: sizes[s])
    best["series_instances"], best["study_uid_of_series"], best["series"] = series_all[0]
    for _, study, series in series_all:
        insts = client.json(f"{r}/studies/{study}/series/{series}/instances?limit=1")
        if not insts:
            continue
        sop = _v(insts[0], "00080018")
        url = f"{r}/studies/{study}/series/{series}/instances/{sop}"
        _, headers, _, _ = client.get(url + "/frames/1", OCTET_ANY)
        ctype = headers.get("Content-Type", "")
        ts = ctype.split("transfer-syntax=")[-1].split(";")[0].strip('" ') \
            if "transfer-syntax=" in ctype else ""
        key = "native" if (not ts or ts in UNCOMPRESSED) else "compressed"
        best.setdefault(key, url)
        best.setdefault(key + "_series", f"{r}/studies/{study}/series/{series}")
        if "native" in best and "compressed" in best:
            break
    return best


def timed(client: Client, path: str, accept: str, reps: int, keep: bool = False) -> dict[str, Any]:
    status, _, _, size = client.get(path, accept, keep)  # warm-up
    lat = []
    for _ in range(reps):
        t = time.perf_counter()
        status, _, _, size = client.get(path, accept, keep)
        lat.append((time.perf_counter() - t) * 1000)
    out: dict[str, Any] = {"status": status, "bytes": size, "reps": reps,
                           "p50_ms": round(statistics.median(lat), 2),
                           "min_ms": round(min(lat), 2), "max_ms": round(max(lat), 2)}
    if status != 200:
        out["unsupported"] = True
    return out


class RssSampler:
    """Server RSS (process tree) every 10 ms while a measurement runs: start/peak/end in MB."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.start = self.peak = self._rss()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _rss(self) -> int:
        procs = [self.proc, *self.proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running())

    def _run(self) -> None:
        while not self.done.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join()
        return {"start": round(self.start / MB, 1), "peak": round(self.peak / MB, 1),
                "growth": round((self.peak - self.start) / MB, 1)}


def ceiling(size: int, reps: int) -> float:
    """MB/s of the same client reading `size` bytes from aiohttp's sendfile over loopback."""
    import asyncio

    from aiohttp import web

    fd, name = tempfile.mkstemp(prefix="retrieve-ceiling-")
    with os.fdopen(fd, "wb") as fp:
        block = os.urandom(1 << 20)
        for _ in range(size // len(block) + 1):
            fp.write(block)
    ready, port = threading.Event(), [0]
    loop = asyncio.new_event_loop()

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(name)

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/f", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port[0] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        c = Client(f"http://127.0.0.1:{port[0]}/")
        r = timed(c, "/f", "*/*", reps)
        return round(r["bytes"] / MB / (r["p50_ms"] / 1000), 1)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        os.unlink(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", required=True, help="DICOMweb root, e.g. http://127.0.0.1:8080/dicom-web")
    ap.add_argument("--stow", type=Path, help="upload this folder with STOW-RS first")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--study-reps", type=int, default=3)
    ap.add_argument("--label", default="")
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument("--study", help="retrieve this study instead of the largest one")
    ap.add_argument("--pid", type=int, help="sample this server process's RSS during the retrieve")
    ap.add_argument("--only-study", action="store_true", help="measure only the study retrieve")
    args = ap.parse_args()
    client = Client(args.url)
    out: dict[str, Any] = {"label": args.label, "url": args.url}
    if args.stow:
        t = time.perf_counter()
        out["stowed"] = stow(client, args.stow)
        out["stow_s"] = round(time.perf_counter() - t, 1)
    r = client.root
    d = {"study": args.study} if args.only_study else discover(client)
    study = f"{r}/studies/{args.study or d['study']}"
    sampler = RssSampler(args.pid) if args.pid else None
    res = timed(client, study, ANY_DICOM, args.study_reps)
    res["MBps"] = round(res["bytes"] / MB / (res["p50_ms"] / 1000), 1)
    if sampler:
        res["server_rss_MB"] = sampler.stop()
    out["study_retrieve"] = res
    if not args.no_ceiling:
        out["ceiling_MBps"] = ceiling(res["bytes"], args.study_reps)
        out["study_retrieve_fraction_of_ceiling"] = round(res["MBps"] / out["ceiling_MBps"], 3)
    if args.only_study:
        json.dump(out, sys.stdout, indent=2)
        print()
        return
    series = f"{r}/studies/{d['study_uid_of_series']}/series/{d['series']}"
    out["series_metadata"] = timed(client, series + "/metadata", "application/dicom+json",
                                   args.reps) | {"instances": d["series_instances"]}
    out["study_metadata"] = timed(client, study + "/metadata", "application/dicom+json", args.reps)
    if "native" in d:
        out["frame_native"] = timed(client, d["native"] + "/frames/1", OCTET_ANY, args.reps)
        out["rendered"] = timed(client, d["native"] + "/rendered", "image/jpeg", args.reps)
        out["thumbnail_series"] = timed(client, d["native_series"] + "/thumbnail?viewport=256,256",
                                        "image/jpeg", args.reps)
    if "compressed" in d:
        out["frame_compressed_as_is"] = timed(client, d["compressed"] + "/frames/1", OCTET_ANY,
                                              args.reps)
        out["frame_decoded"] = timed(client, d["compressed"] + "/frames/1", OCTET, args.reps)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# ruff: noqa  (adapted from peerbench; kept close to the original for comparability)
"""Reference ceilings of this machine for the same data set, measured the way bench.py measures servers.

  disk     sequential copy of every file (write all, fsync at end), per-file write+fsync ("durable
           per instance"), O_DIRECT read (bypasses page cache), page-cache read
  tcp      raw loopback TCP throughput (1 MiB sendall -> recv_into), two processes
  http     bench.py's own STOW-RS / WADO-RS client against a null DICOMweb server (aiohttp, one process):
             sink-discard : POST bodies read and thrown away; GET studies / instances served from the files
             sink-store   : every multipart part written to its own file + fsync (a "no-index" archive)
  dimse    bench.py's C-STORE clients (pynetdicom, storescu) against DCMTK storescp --fork:
             --ignore (receive and discard), and storing to disk (-od, no fsync)
Everything listens on 127.0.0.1 ports 18190-18194 and is stopped (by PID) at the end.
"""
import argparse
import json
import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as bench  # noqa: E402

MB = 1e6
PORT_HTTP, PORT_DIMSE, PORT_HTTP_STORE, PORT_DIMSE_STORE, PORT_TCP = 18190, 18191, 18192, 18193, 18194


def log(*a):
    print("[%s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- disk
def disk_tests(files, tmp):
    total = sum(os.path.getsize(f) for f in files)
    out = {}
    dst = os.path.join(tmp, "copy")
    # page-cache read (source was just read by bench.scan / warm-up)
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass
    dt = time.perf_counter() - t0
    out["read_page_cache"] = dict(MB_per_s=round(total / MB / dt, 1), instances_per_s=round(len(files) / dt, 1))
    # sequential write of all files, one fsync pass at the end
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    t0 = time.perf_counter()
    paths = []
    for k, f in enumerate(files):
        with open(f, "rb") as fh:
            data = fh.read()
        p = os.path.join(dst, "%06d.dcm" % k)
        with open(p, "wb") as o:
            o.write(data)
        paths.append(p)
    t_written = time.perf_counter()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    dfd = os.open(dst, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    dt = time.perf_counter() - t0
    out["write_then_fsync_all"] = dict(MB_per_s=round(total / MB / dt, 1), instances_per_s=round(len(files) / dt, 1),
                                       buffered_part_s=round(t_written - t0, 2), total_s=round(dt, 2))
    # O_DIRECT read of the copies (bypasses the page cache -> device speed)
    buf = mmap.mmap(-1, 16 << 20)
    t0 = time.perf_counter()
    nbytes = 0
    try:
        for p in paths:
            fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
            off = 0
            while True:
                n = os.preadv(fd, [buf], off)
                nbytes += n
                off += n
                if n < len(buf):
                    break
            os.close(fd)
        dt = time.perf_counter() - t0
        out["read_o_direct"] = dict(MB_per_s=round(nbytes / MB / dt, 1), instances_per_s=round(len(files) / dt, 1))
    except OSError as e:
        out["read_o_direct"] = dict(error=str(e))
    shutil.rmtree(dst, ignore_errors=True)
    # durable per-instance write: write + fsync every file (what an archive that acks only durable data pays)
    os.makedirs(dst)
    t0 = time.perf_counter()
    for k, f in enumerate(files):
        with open(f, "rb") as fh:
            data = fh.read()
        p = os.path.join(dst, "%06d.dcm" % k)
        with open(p, "wb") as o:
            o.write(data)
            o.flush()
            os.fdatasync(o.fileno())
    dt = time.perf_counter() - t0
    out["write_fdatasync_each_file"] = dict(MB_per_s=round(total / MB / dt, 1), instances_per_s=round(len(files) / dt, 1))
    shutil.rmtree(dst, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- raw TCP
def _tcp_sink(port, ready):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1)
    ready.set()
    c, _ = s.accept()
    buf = bytearray(1 << 20)
    while c.recv_into(buf):
        pass
    c.close()
    s.close()


def tcp_test(total=2 << 30):
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_tcp_sink, args=(PORT_TCP, ready))
    p.start()
    ready.wait(10)
    s = socket.create_connection(("127.0.0.1", PORT_TCP))
    chunk = b"\0" * (1 << 20)
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        s.sendall(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    s.close()
    p.join(60)
    dt = time.perf_counter() - t0
    return dict(MB_per_s=round(sent / MB / dt, 1), bytes=sent)


# ----------------------------------------------------------------------------- null DICOMweb server
def serve(mode, port, data, store_dir):
    from aiohttp import web
    idx = bench.scan_dataset(data)
    by_study = {u: [i for se in s["series"].values() for i in se["instances"]] for u, s in idx.studies.items()}
    by_sop = {i["sop"]: i for i in idx.instances}
    counter = [0]

    async def stow(request):
        if mode == "discard":
            async for _ in request.content.iter_chunked(1 << 20):
                pass
            return web.json_response({}, content_type="application/dicom+json")
        body = await request.read()
        parts = bench.split_multipart(body, request.headers.get("Content-Type"))
        for _, payload in parts or []:
            counter[0] += 1
            p = os.path.join(store_dir, "%08d.dcm" % counter[0])
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, payload)
            os.fdatasync(fd)
            os.close(fd)
        return web.json_response({}, content_type="application/dicom+json")

    async def send_files(request, insts):
        bnd = uuid.uuid4().hex
        resp = web.StreamResponse(headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=%s' % bnd})
        await resp.prepare(request)
        for i in insts:
            with open(i["path"], "rb") as f:
                data = f.read()
            await resp.write(b"--" + bnd.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n")
        await resp.write(b"--" + bnd.encode() + b"--\r\n")
        await resp.write_eof()
        return resp

    # whole-study bodies are pre-built once so that they can be served with sendfile (zero copy)
    prebuilt = {}
    if mode == "discard" and store_dir:
        os.makedirs(store_dir, exist_ok=True)
        for u, insts in by_study.items():
            bnd = uuid.uuid4().hex
            p = os.path.join(store_dir, "%s.mpr" % u)
            with open(p, "wb") as o:
                for i in insts:
                    with open(i["path"], "rb") as f:
                        o.write(b"--" + bnd.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + f.read() + b"\r\n")
                o.write(b"--" + bnd.encode() + b"--\r\n")
            prebuilt[u] = (p, 'multipart/related; type="application/dicom"; boundary=%s' % bnd)

    async def study(request):
        u = request.match_info["s"]
        if u in prebuilt:
            p, ctype = prebuilt[u]
            return web.FileResponse(p, headers={"Content-Type": ctype})
        insts = by_study.get(u)
        if not insts:
            raise web.HTTPNotFound()
        return await send_files(request, insts)

    async def instance(request):
        i = by_sop.get(request.match_info["i"])
        if not i:
            raise web.HTTPNotFound()
        return await send_files(request, [i])

    app = web.Application(client_max_size=1 << 31)
    app.router.add_post("/dicom-web/studies", stow)
    app.router.add_get("/dicom-web/studies/{s}", study)
    app.router.add_get("/dicom-web/studies/{s}/series/{se}/instances/{i}", instance)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# ----------------------------------------------------------------------------- orchestration
def wait_port(port, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def stop(p):
    if p and p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()


def run_bench(args, extra, label, tmp):
    out = os.path.join(tmp, "bench-%s.json" % label)
    cmd = [sys.executable, os.path.join(HERE, "harness.py"), "--data", args.data, "--concurrency", str(args.concurrency),
           "--stow-config", args.stow_config, "--repeat", str(args.repeat), "--label", label, "--out", out] + extra
    log("running: " + " ".join(cmd))
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="physical.json")
    ap.add_argument("--tmp", default="/tmp/archive-bench-phys")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--stow-config", default="10x4")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list of disk,tcp,http,dimse to skip")
    ap.add_argument("--serve", choices=["discard", "store"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--store-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        return serve(a.serve, a.port, a.data, a.store_dir)
    skip = set(a.skip.split(","))
    os.makedirs(a.tmp, exist_ok=True)
    idx = bench.scan_dataset(a.data)
    files = [i["path"] for i in idx.instances]
    res = dict(meta=dict(dataset=idx.summary(), concurrency=a.concurrency, stow_config=a.stow_config,
                         repeat=a.repeat, started=time.strftime("%Y-%m-%dT%H:%M:%S"), cpus=os.cpu_count(),
                         loadavg_at_start=os.getloadavg()))
    for f in files:  # warm page cache
        with open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass
    procs = []
    try:
        if "disk" not in skip:
            res["disk"] = []
            for r in range(a.repeat):
                log("disk run %d" % (r + 1))
                res["disk"].append(disk_tests(files, a.tmp))
                log(json.dumps(res["disk"][-1]))
        if "tcp" not in skip:
            res["tcp_loopback"] = []
            for r in range(a.repeat):
                res["tcp_loopback"].append(tcp_test())
                log("raw TCP loopback: %s" % res["tcp_loopback"][-1])
        if "http" not in skip:
            www = os.path.join(a.tmp, "www")
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--data", a.data, "--serve", "discard",
                                  "--port", str(PORT_HTTP), "--store-dir", www])
            procs.append(p)
            assert wait_port(PORT_HTTP, 300), "null HTTP server did not start"
            res["http_sink_discard"] = run_bench(a, ["--dicomweb", "http://127.0.0.1:%d/dicom-web" % PORT_HTTP,
                                                     "--phases", "stow,wado_study,wado_all,wado_instance",
                                                     "--no-verify", "--allow-duplicate-ingest",
                                                     "--server-pid", str(p.pid)], "sink-discard", a.tmp)
            stop(p)
            shutil.rmtree(www, ignore_errors=True)
            sd = os.path.join(a.tmp, "sink-store")
            os.makedirs(sd, exist_ok=True)
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--data", a.data, "--serve", "store",
                                  "--port", str(PORT_HTTP_STORE), "--store-dir", sd])
            procs.append(p)
            assert wait_port(PORT_HTTP_STORE), "store HTTP server did not start"
            res["http_sink_store_fdatasync"] = run_bench(a, ["--dicomweb", "http://127.0.0.1:%d/dicom-web" % PORT_HTTP_STORE,
                                                             "--phases", "stow", "--no-verify",
                                                             "--reset-cmd", "rm -rf %s && mkdir -p %s" % (sd, sd),
                                                             "--server-pid", str(p.pid)], "sink-store", a.tmp)
            stop(p)
            shutil.rmtree(sd, ignore_errors=True)
        if "dimse" not in skip:
            env = dict(os.environ, TCP_NODELAY="1")
            p = subprocess.Popen(["storescp", "--fork", "+xa", "--ignore", "-aet", "NULLSCP", str(PORT_DIMSE)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            assert wait_port(PORT_DIMSE), "storescp did not start"
            res["dimse_storescp_ignore"] = run_bench(a, ["--dicomweb", "http://127.0.0.1:1/unused",
                                                         "--dimse", "127.0.0.1:%d:NULLSCP" % PORT_DIMSE,
                                                         "--phases", "cstore,storescu", "--no-verify",
                                                         "--allow-duplicate-ingest", "--server-pid", str(p.pid)],
                                                     "storescp-ignore", a.tmp)
            stop(p)
            od = os.path.join(a.tmp, "scp-store")
            os.makedirs(od, exist_ok=True)
            p = subprocess.Popen(["storescp", "--fork", "+xa", "-od", od, "-aet", "NULLSCP", str(PORT_DIMSE_STORE)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            assert wait_port(PORT_DIMSE_STORE), "storescp (store) did not start"
            res["dimse_storescp_store"] = run_bench(a, ["--dicomweb", "http://127.0.0.1:1/unused",
                                                        "--dimse", "127.0.0.1:%d:NULLSCP" % PORT_DIMSE_STORE,
                                                        "--phases", "cstore,storescu", "--no-verify",
                                                        "--reset-cmd", "rm -rf %s && mkdir -p %s" % (od, od),
                                                        "--server-pid", str(p.pid)], "storescp-store", a.tmp)
            stop(p)
            shutil.rmtree(od, ignore_errors=True)
    finally:
        for p in procs:
            stop(p)
    res["meta"]["loadavg_at_end"] = os.getloadavg()
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1, default=str)
    print_summary(res)
    log("wrote %s" % a.out)


def print_summary(res):
    print("\n== physical / reference ceilings")
    for r, d in enumerate(res.get("disk", [])):
        for k, v in d.items():
            print("  disk %-26s run%d  %s" % (k, r + 1, v))
    for r, v in enumerate(res.get("tcp_loopback", [])):
        print("  tcp loopback raw            run%d  %.0f MB/s" % (r + 1, v["MB_per_s"]))
    for key in ("http_sink_discard", "http_sink_store_fdatasync", "dimse_storescp_ignore", "dimse_storescp_store"):
        b = res.get(key)
        if not b:
            continue
        for label, runs in b["ingest"].items():
            for k, r in enumerate(runs):
                print("  %-26s %-16s run%d  %7.1f inst/s %7.1f MB/s  (client cpu %s%%/core, sink cpu %s%%/core)" % (
                    key, label, k + 1, r["instances_per_s"], r["MB_per_s"], r["system"].get("client_cpu_pct_of_one_core"),
                    r["system"].get("server_cpu_pct_of_one_core")))
        for name, w in b.get("wado", {}).items():
            if "MB_per_s" in w and "median_ms" not in w:
                print("  %-26s %-16s       %7.1f MB/s" % (key, name, w["MB_per_s"]))
            elif "median_ms" in w:
                print("  %-26s %-16s       p50 %.2f ms p95 %.2f ms" % (key, name, w["median_ms"], w["p95_ms"]))


if __name__ == "__main__":
    main()

"""How much of ingest's parse cost a native header reader would save (issue 14, "what it would take").

    python -m bench.parse_floor [--data /tmp/ingest-bench-data] [--limit 400]

CPU ms per file (process time, one process, files already in the page cache) of:

  read_instance     what a parse worker does per instance today (archive.instance: pydicom
                    `dcmread` up to Pixel Data, every value decoded, validation, the index
                    columns, DICOM JSON and its text)
  pydicom read      only pydicom's `dcmread(stop_before_pixels=True)` + decoding every value
  pydicom JSON      only `to_json_dict` + `json.dumps` of already decoded data sets
  dicomsdl          dicomsdl (C++) opening the file and visiting every element
  gdcm              GDCM (C++, python-gdcm) reading up to Pixel Data

The two native readers come with `pip install -e '.[bench]'`; a row is left out when its package
is missing. Neither gives DICOM JSON (dicomsdl has no JSON writer; GDCM's `gdcm::JSON` needs a
C++ stream), so their rows are the floor of *reading* a header natively: the Python work of
turning elements into the index columns and JSON would come on top, unless that too were native.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import dcmread

from archive import instance


def _files(data: Path, limit: int) -> list[Path]:
    paths = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix != ".json")
    return paths[:limit]


def _cpu_ms(work: Callable[[Any], object], items: list[Any], rounds: int = 3) -> float:
    """Best of `rounds` passes, CPU ms per item (the machine is shared: the best is the least
    disturbed)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for item in items:
            work(item)
        best = min(best, (time.process_time() - start) / len(items) * 1000)
    return best


def _decoded(path: Path) -> Any:
    ds = dcmread(path, stop_before_pixels=True)
    for _ in ds.iterall():
        pass
    return ds


def _json(ds: Any) -> str:
    return json.dumps(ds.to_json_dict(instance.BULK_THRESHOLD, instance._bulk_marker),
                      separators=(",", ":"), ensure_ascii=False)


def _native_rows(files: list[Path]) -> dict[str, float]:
    rows: dict[str, float] = {}
    if importlib.util.find_spec("dicomsdl"):
        import dicomsdl

        def sdl(path: Path) -> None:
            for _ in dicomsdl.open_file(str(path)):
                pass

        rows["dicomsdl"] = _cpu_ms(sdl, files)
    if importlib.util.find_spec("gdcm"):
        import gdcm

        def gd(path: Path) -> None:
            reader = gdcm.Reader()
            reader.SetFileName(str(path))
            reader.ReadUpToTag(gdcm.Tag(0x7FE0, 0x0010), gdcm.TagSetType())

        rows["gdcm"] = _cpu_ms(gd, files)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/ingest-bench-data"))
    ap.add_argument("--limit", type=int, default=400)
    a = ap.parse_args(argv)
    files = _files(a.data, a.limit)
    if not files:
        ap.error(f"no files under {a.data} (python -m bench.ingest_vs_orthanc generates them)")
    sizes = {p: os.path.getsize(p) for p in files}
    for p in files[:20]:  # warm caches and imports
        instance.read_instance(p, sizes[p])
    decoded = [_decoded(p) for p in files]
    rows = {
        "read_instance": _cpu_ms(lambda p: instance.read_instance(p, sizes[p]), files),
        "pydicom read": _cpu_ms(_decoded, files),
        "pydicom JSON": _cpu_ms(_json, decoded),
        **_native_rows(files),
    }
    print(f"{len(files)} files from {a.data}; load average {os.getloadavg()[0]:.1f}")
    print("| reader | CPU ms per file | vs read_instance |\n|---|---|---|")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.3f} | {ms / rows['read_instance']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

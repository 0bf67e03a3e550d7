"""Frame extraction by offset: native, encapsulated with/without offset table, bit-packed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless, RLELossless

from archive.blobs import BlobRef
from archive.errors import InvalidRequest, NotFound
from archive.frames import parse_frame_list, read_frame
from archive.instance import read_instance
from archive.retrieve import Located
from archive.transcode import decoded_frame, frame_array
from tests import factories as f


def located(path: Path) -> Located:
    facts = read_instance(path, path.stat().st_size)
    c = facts.columns
    return Located(facts.study_uid, facts.series_uid, facts.sop_uid, facts.sop_class_uid,
                   facts.transfer_syntax, BlobRef(path.name, path.stat().st_size, path, None),
                   path.stat().st_size,
                   facts.pixels.as_json() if facts.pixels else None, c["number_of_frames"],
                   c["rows"], c["columns"], facts.header)


def test_parse_frame_list() -> None:
    assert parse_frame_list("1,3, 2") == [1, 3, 2]
    for bad in ("", "0", "1,,2", "a", "-1", "1.5"):
        with pytest.raises(InvalidRequest):
            parse_frame_list(bad)


def test_native_frames_by_offset(tmp_path: Path) -> None:
    ds = f.image("fr", rows=20, columns=30, frames=7)
    loc = located(f.write(ds, tmp_path / "a.dcm"))
    size = 20 * 30 * 2
    for n in (1, 4, 7):
        assert read_frame(loc, n) == ds.PixelData[size * (n - 1): size * n]
    with pytest.raises(NotFound):
        read_frame(loc, 8)


def _rchar() -> int:
    for line in Path(f"/proc/{os.getpid()}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_one_frame_of_a_large_instance_reads_only_that_frame(tmp_path: Path) -> None:
    ds = f.image("big", rows=256, columns=256, frames=500)  # 65 MB of pixels
    loc = located(f.write(ds, tmp_path / "big.dcm"))
    before = _rchar()
    data = read_frame(loc, 321)
    assert _rchar() - before < 2 * len(data) + 64 * 1024
    assert data == ds.PixelData[256 * 256 * 2 * 320: 256 * 256 * 2 * 321]


@pytest.mark.parametrize("ts", [RLELossless, JPEGLSLossless])
def test_encapsulated_one_fragment_per_frame(tmp_path: Path, ts: str) -> None:
    ds = f.image("enc", rows=16, columns=16, frames=5, transfer_syntax=ts)
    loc = located(f.write(ds, tmp_path / "e.dcm"))
    expected = list(generate_frames(ds.PixelData, number_of_frames=5))
    assert [read_frame(loc, n) for n in range(1, 6)] == expected
    plain = f.image("enc", rows=16, columns=16, frames=5)
    assert decoded_frame(loc, 3) == plain.pixel_array[2].tobytes()


def _refragment(ds: object, frames: list[bytes], bot: bool) -> None:
    """Split every frame into 3 fragments (with or without a Basic Offset Table)."""
    pieces: list[bytes] = []
    offsets = []
    pos = 0
    for fr in frames:
        offsets.append(pos)
        third = -(-len(fr) // 3)
        third += third % 2  # even fragments; only the last may need a pad byte (after EOI)
        for i in range(3):
            frag = fr[i * third:(i + 1) * third]
            if len(frag) % 2:
                frag += b"\x00"
            pieces.append(frag)
            pos += 8 + len(frag)
    import struct

    def items(data: list[bytes]) -> bytes:
        return b"".join(struct.pack("<HHL", 0xFFFE, 0xE000, len(d)) + d for d in data)

    table = struct.pack(f"<{len(offsets)}L", *offsets) if bot else b""
    ds.PixelData = items([table]) + items(pieces)  # type: ignore[attr-defined]


def test_encapsulated_several_fragments_with_offset_table(tmp_path: Path) -> None:
    ds = f.image("bot", rows=16, columns=16, frames=4, transfer_syntax=RLELossless)
    frames = list(generate_frames(ds.PixelData, number_of_frames=4))
    _refragment(ds, frames, bot=True)
    loc = located(f.write(ds, tmp_path / "b.dcm"))
    assert loc.pixels is not None and len(loc.pixels["fragments"]) == 12
    plain = f.image("bot", rows=16, columns=16, frames=4)
    for n in (1, 2, 4):
        arr = frame_array(loc, n)
        assert np.array_equal(arr, plain.pixel_array[n - 1])


def test_encapsulated_jpeg_without_offset_table_found_by_eoi(tmp_path: Path) -> None:
    import io

    from PIL import Image

    ds = f.image("eoi", rows=16, columns=16, frames=3)
    jpegs = []
    for i in range(3):
        buf = io.BytesIO()
        Image.fromarray(np.full((16, 16), 40 * (i + 1), np.uint8)).save(buf, "JPEG")
        jpegs.append(buf.getvalue())
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    _refragment(ds, jpegs, bot=False)
    loc = located(f.write(ds, tmp_path / "j.dcm"))
    for n in (1, 2, 3):
        assert read_frame(loc, n).rstrip(b"\x00") == jpegs[n - 1]
        assert abs(int(frame_array(loc, n).mean()) - 40 * n) <= 2

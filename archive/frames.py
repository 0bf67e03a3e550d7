"""Frame extraction by file offset, from the Pixel Data layout recorded at ingest.

Only the bytes of the requested frame are read: native frames sit at a computable offset
(Rows × Columns × SamplesPerPixel × BitsAllocated / 8 per frame); encapsulated frames are
found through the Basic Offset Table, one-fragment-per-frame, or a scan of fragment ends for
the JPEG End Of Image marker. Nothing here decodes pixels (see archive.transcode for that).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from archive.errors import InvalidRequest, NotAcceptable, NotFound
from archive.retrieve import Located
from archive.transfer_syntax import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    UNCOMPRESSED,
)

MAX_FRAMES_PER_REQUEST = 10_000


def parse_frame_list(text: str) -> list[int]:
    """`1,2,3` → [1, 2, 3]; malformed → InvalidRequest (400) per PS3.18 §8.3.4."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise InvalidRequest(f"invalid frame number {item!r}: frame numbers start at 1")
        numbers.append(int(item))
    if not numbers or len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise InvalidRequest("frame list must name 1 to 10000 frames")
    return numbers


@dataclass(frozen=True, slots=True)
class PixelModule:
    """The attributes needed to cut native frames apart (from the indexed header)."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    frames: int

    @property
    def frame_bits(self) -> int:
        return self.rows * self.columns * self.samples * self.bits_allocated


def _value(header: dict[str, Any], tag: str, default: Any = None) -> Any:
    el = header.get(tag) or {}
    values = el.get("Value") or []
    return values[0] if values else default


def pixel_module(loc: Located) -> PixelModule:
    h = loc.header or {}
    return PixelModule(
        rows=int(loc.rows or _value(h, "00280010", 0)),
        columns=int(loc.columns or _value(h, "00280011", 0)),
        samples=int(_value(h, "00280002", 1)),
        bits_allocated=int(_value(h, "00280100", 16)),
        frames=loc.frames,
    )


def check_frames(loc: Located, numbers: list[int]) -> None:
    if loc.pixels is None:
        raise NotFound(f"instance {loc.sop_uid} has no Pixel Data")
    bad = [n for n in numbers if n > loc.frames]
    if bad:
        raise NotFound(f"frame {bad[0]} does not exist: instance has {loc.frames} frame(s)")
    _check_pixel_module(loc, max(numbers, default=1))


BITS_ALLOCATED = frozenset({1, 8, 16, 32, 64})


def _check_pixel_module(loc: Located, last: int) -> None:
    """Refuse a hostile or broken pixel description before any byte is sent: a response that
    fails after its status line cannot be turned into an error any more."""
    try:
        pm = pixel_module(loc)
    except (TypeError, ValueError) as exc:
        raise NotAcceptable(f"instance {loc.sop_uid} has a malformed pixel description") from exc
    if pm.bits_allocated not in BITS_ALLOCATED or pm.rows < 1 or pm.columns < 1 \
            or pm.samples not in (1, 3, 4):
        raise NotAcceptable(
            f"instance {loc.sop_uid} has an unusable pixel description (Rows {pm.rows}, "
            f"Columns {pm.columns}, Samples {pm.samples}, BitsAllocated {pm.bits_allocated})")
    pixels = loc.pixels
    if loc.transfer_syntax in UNCOMPRESSED and pixels is not None \
            and (pm.frame_bits * last + 7) // 8 > pixels["length"]:
        raise NotFound(f"frame {last} lies beyond the stored Pixel Data "
                       f"({pixels['length']} bytes for {pm.rows}x{pm.columns} pixels)")


def read_frame(loc: Located, number: int) -> bytes:
    """The stored bytes of frame `number` (1-based): native pixels or the compressed codestream."""
    check_frames(loc, [number])
    pixels = loc.pixels
    assert pixels is not None
    if loc.transfer_syntax == DEFLATED_EXPLICIT_VR_LE:
        return _deflated_frame(loc, number)
    if loc.transfer_syntax in UNCOMPRESSED:
        return _native_frame(loc, pixel_module(loc), number)
    return _read_spans(loc, fragment_spans(loc, number))


def _read_spans(loc: Located, spans: list[tuple[int, int]]) -> bytes:
    """The fragments' bytes; fragments separated only by item headers (8 bytes) are fetched as
    one read, so a multi-fragment frame is one ranged GET on an object store."""
    adjacent = all(0 <= b[0] - (a[0] + a[1]) <= 8 for a, b in itertools.pairwise(spans))
    if len(spans) > 1 and adjacent:
        start, end = spans[0][0], spans[-1][0] + spans[-1][1]
        data = loc.blob.read_range(start, end - start)
        return b"".join(data[off - start:off - start + ln] for off, ln in spans)
    return b"".join(loc.blob.read_range(offset, length) for offset, length in spans)


def _native_frame(loc: Located, pm: PixelModule, number: int) -> bytes:
    pixels = loc.pixels
    assert pixels is not None
    bits = pm.frame_bits
    start_bit = bits * (number - 1)
    if bits % 8 == 0:
        size = bits // 8
        offset = pixels["offset"] + start_bit // 8
        if start_bit // 8 + size > pixels["length"]:
            raise NotFound(f"frame {number} lies beyond the stored Pixel Data")
        data = loc.blob.read_range(offset, size)
        if loc.transfer_syntax == EXPLICIT_VR_BE and pm.bits_allocated > 8:
            data = _swap(data, pm.bits_allocated // 8)
        return data
    return _bit_packed_frame(loc, start_bit, bits)


def _bit_packed_frame(loc: Located, start_bit: int, bits: int) -> bytes:
    """BitsAllocated 1 with frames not on byte boundaries: re-pack the frame's bits."""
    import numpy as np

    pixels = loc.pixels
    assert pixels is not None
    first, last = start_bit // 8, (start_bit + bits + 7) // 8
    raw = loc.blob.read_range(pixels["offset"] + first, last - first)
    unpacked = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
    skip = start_bit - first * 8
    return bytes(np.packbits(unpacked[skip:skip + bits], bitorder="little").tobytes())


def _swap(data: bytes, width: int) -> bytes:
    import numpy as np

    return bytes(np.frombuffer(data, f">u{width}").astype(f"<u{width}").tobytes())


def _deflated_frame(loc: Located, number: int) -> bytes:
    """Deflated data sets cannot be addressed by offset: inflate (documented exception)."""
    ds = loc.blob.dataset()
    pm = pixel_module(loc)
    size = pm.frame_bits // 8
    return bytes(ds.PixelData[size * (number - 1): size * number])


def fragment_spans(loc: Located, number: int) -> list[tuple[int, int]]:
    """File (offset, length) of each fragment of frame `number` of an encapsulated instance."""
    pixels = loc.pixels
    assert pixels is not None
    fragments = [tuple(f) for f in pixels.get("fragments") or []]
    frames = loc.frames
    if not fragments:
        raise NotFound(f"instance {loc.sop_uid} has no pixel fragments")
    if frames == 1:
        return fragments  # type: ignore[return-value]
    if len(fragments) == frames:
        return [fragments[number - 1]]  # type: ignore[list-item]
    bot = pixels.get("bot") or []
    if len(bot) == frames:
        return _by_offset_table(fragments, bot, number)  # type: ignore[arg-type]
    return _by_eoi_scan(loc, fragments, number)  # type: ignore[arg-type]


def _by_offset_table(
    fragments: list[tuple[int, int]], bot: list[int], number: int
) -> list[tuple[int, int]]:
    """BOT entries are offsets from the first fragment's item tag to each frame's first item."""
    base = fragments[0][0] - 8
    start = base + bot[number - 1]
    end = base + bot[number] if number < len(bot) else None
    return [
        (off, ln) for off, ln in fragments
        if off - 8 >= start and (end is None or off - 8 < end)
    ]


def _by_eoi_scan(
    loc: Located, fragments: list[tuple[int, int]], number: int
) -> list[tuple[int, int]]:
    """No usable offset table: a frame ends with the fragment whose data ends in FFD9 (EOI)."""
    if not loc.transfer_syntax.startswith("1.2.840.10008.1.2.4.") or \
            loc.transfer_syntax.startswith("1.2.840.10008.1.2.4.10"):
        raise NotAcceptable(
            f"cannot locate frame {number}: fragments of {loc.transfer_syntax} have no offset table"
        )
    frame, current = 1, []
    for off, ln in fragments:  # one small read per fragment (a ranged GET on an object store)
        current.append((off, ln))
        tail = loc.blob.read_range(off + ln - 3, 3) if ln >= 3 else b""
        if tail.endswith(b"\xff\xd9") or tail[:2] == b"\xff\xd9":
            if frame == number:
                return current
            frame, current = frame + 1, []
    raise NotFound(f"frame {number} not found among the instance's fragments")

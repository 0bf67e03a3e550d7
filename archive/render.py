"""Rendered and thumbnail images (PS3.18 §8.3.5, §10.4.1.1.3): window, viewport, quality.

Pixels go through the Modality LUT (Rescale Slope/Intercept), then the VOI window (the request's
`window=center,width[,function]`, else the first Window Center/Width in the header, else the
frame's own min/max), MONOCHROME1 is inverted, the image is fitted into the viewport keeping
its aspect ratio, and Pillow encodes JPEG or PNG. Only the requested frame is read and decoded.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from archive.errors import InvalidRequest, NotAcceptable
from archive.frames import check_frames, pixel_module
from archive.retrieve import Located
from archive.transcode import frame_array

RENDER_MEDIA = ("image/jpeg", "image/png", "image/gif")
THUMBNAIL_SIZE = 128
MAX_VIEWPORT = 8192


@dataclass(frozen=True, slots=True)
class RenderParams:
    media: str = "image/jpeg"
    viewport: tuple[int, int] | None = None
    window: tuple[float, float, str] | None = None
    quality: int = 90


def _numbers(name: str, text: str, count: tuple[int, ...]) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in count:
        raise InvalidRequest(f"{name} must have {' or '.join(map(str, count))} values: {text!r}")
    return parts


def parse_params(query: Mapping[str, str], media: str, thumbnail: bool = False) -> RenderParams:
    """Query parameters → RenderParams; invalid values are a 400 with the reason."""
    viewport = None
    if "viewport" in query:
        parts = _numbers("viewport", query["viewport"], (2, 6))
        try:
            w, h = int(parts[0] or 0), int(parts[1] or 0)
        except ValueError as exc:
            raise InvalidRequest(f"viewport sizes must be integers: {query['viewport']!r}") from exc
        if not (0 < w <= MAX_VIEWPORT and 0 < h <= MAX_VIEWPORT):
            raise InvalidRequest(f"viewport must be within 1..{MAX_VIEWPORT} pixels")
        viewport = (w, h)
    elif thumbnail:
        viewport = (THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    window = None
    if "window" in query:
        parts = _numbers("window", query["window"], (2, 3))
        function = (parts[2] if len(parts) == 3 else "linear").lower()
        if function not in ("linear", "linear-exact", "sigmoid"):
            raise InvalidRequest("window function must be linear, linear-exact or sigmoid")
        try:
            center, width = float(parts[0]), float(parts[1])
        except ValueError as exc:
            raise InvalidRequest(
                f"window center/width must be numbers: {query['window']!r}") from exc
        if width <= 0 or not math.isfinite(center + width):
            raise InvalidRequest("window width must be positive")
        window = (center, width, function)
    quality = 90
    if "quality" in query:
        try:
            quality = int(query["quality"])
        except ValueError as exc:
            raise InvalidRequest(f"quality must be an integer 1-100: {query['quality']!r}") from exc
        if not 1 <= quality <= 100:
            raise InvalidRequest("quality must be 1-100")
    return RenderParams(media, viewport, window, quality)


def _first(header: dict[str, Any], tag: str) -> Any:
    values = (header.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _voi(arr: np.ndarray[Any, Any], header: dict[str, Any],
         window: tuple[float, float, str] | None) -> np.ndarray[Any, Any]:
    """Modality LUT then VOI LUT (PS3.3 C.11.2.1.2) to 0..255.

    Integer images go through a lookup table over their value range (one gather instead of
    float arithmetic on every pixel)."""
    if arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2 and arr.size > 4096:
        lo, hi = int(arr.min()), int(arr.max())
        lut = _voi_values(np.arange(lo, hi + 1, dtype=np.int32), header, window)
        return lut[arr.astype(np.int32) - lo]
    return _voi_values(arr, header, window)


def _voi_values(arr: np.ndarray[Any, Any], header: dict[str, Any],
                window: tuple[float, float, str] | None) -> np.ndarray[Any, Any]:
    slope = float(_first(header, "00281053") or 1)
    intercept = float(_first(header, "00281052") or 0)
    values = arr.astype(np.float32) * slope + intercept
    if window is None:
        center, width = _first(header, "00281050"), _first(header, "00281051")
        if center is not None and width is not None and float(width) > 0:
            window = (float(center), float(width), "linear")
        else:
            lo, hi = float(values.min()), float(values.max())
            window = ((lo + hi) / 2, max(hi - lo, 1.0), "linear-exact")
    c, w, function = window
    if function == "sigmoid":
        out = 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    elif function == "linear-exact":
        out = ((values - (c - w / 2)) / w) * 255.0
    else:
        out = ((values - (c - 0.5)) / max(w - 1, 1) + 0.5) * 255.0
    return np.clip(out, 0, 255).astype(np.uint8)


def to_8bit(arr: np.ndarray[Any, Any], loc: Located,
            window: tuple[float, float, str] | None) -> np.ndarray[Any, Any]:
    header = loc.header or {}
    photometric = str(_first(header, "00280004") or "MONOCHROME2")
    if arr.ndim == 3:  # colour: pydicom already converted YBR to RGB
        if arr.dtype != np.uint8:
            arr = (arr.astype(np.float32) * 255.0 / max(float(arr.max()), 1.0)).astype(np.uint8)
        return arr
    out = _voi(arr, header, window)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out


def render(loc: Located, number: int, params: RenderParams) -> bytes:
    """Frame `number` of `loc` as an encoded image."""
    if loc.pixels is None:
        raise NotAcceptable(f"instance {loc.sop_uid} has no image to render")
    check_frames(loc, [number])  # hostile Rows/Columns/BitsAllocated: a 4xx, not a crash
    if pixel_module(loc).samples not in (1, 3):
        raise NotAcceptable("only 1- or 3-sample images can be rendered")
    img = Image.fromarray(to_8bit(frame_array(loc, number), loc, params.window))
    if params.viewport:
        img = _fit(img, params.viewport)
    buf = io.BytesIO()
    if params.media == "image/png":
        img.save(buf, "PNG", compress_level=1)
    elif params.media == "image/gif":
        img.save(buf, "GIF")
    else:
        img.save(buf, "JPEG", quality=params.quality)
    return buf.getvalue()


def _fit(img: Image.Image, viewport: tuple[int, int]) -> Image.Image:
    w, h = viewport
    scale = min(w / img.width, h / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    if size == img.size:
        return img
    return img.resize(size, Image.Resampling.BILINEAR if scale < 1 else Image.Resampling.BICUBIC)

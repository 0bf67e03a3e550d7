"""The two JSON texts the index stores per instance: `header` (jsonb) and WADO-RS `metadata`.

`instance.metadata` is the header plus Available Transfer Syntax UID (0008,3002) plus Pixel
Data as a `bulk:` BulkDataURI marker (migration 0003). A trigger built it in PostgreSQL from
the header jsonb (jsonb concatenation, then jsonb → text): a third of the backend's CPU for
the batched instance insert (0.176 → 0.119 ms per instance without it, batches of 10), the
biggest single item of PostgreSQL's work per ingested instance (issue 14, bench/pg_cost.py,
bench/results/2026-11-29b-pgcost/). The parse worker now builds it from the header's own JSON
text with no second encoding: the header is encoded as two objects, its elements before and
after (0008,3002) in the header's order (tag order), and both texts are spliced from those
pieces. The trigger (migration 0017) still builds `metadata` for a row written without it.

The content is the trigger's (the same elements and values); the bytes are compact JSON in
tag order where the trigger's were jsonb's text output (", " and ": " separators, keys sorted
by length then bytes: the same order for the 8-digit tags) — except each `bulk:` marker, which
is written as jsonb writes it, `"BulkDataURI": "bulk:…"`: retrieve finds the markers by that
exact text (archive/index/reads.py `_document`), in rows of either origin. In canonical JSON,
compact or not, that text can only be a key and its value: a quote inside a string value is
always escaped, so it cannot stand right after `:` there.
"""

from __future__ import annotations

import json
from typing import Any

AVAILABLE_TRANSFER_SYNTAX = "00083002"
_COMPACT_MARKER = '"BulkDataURI":"bulk:'
MARKER = '"BulkDataURI": "bulk:'  # as jsonb's text output has it; reads.py looks for it


def _dumps(value: Any, strict: bool) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=not strict)


def _join(*objects: str) -> str:
    """One JSON object from compact JSON object texts (empty ones, `{}`, left out)."""
    return "{" + ",".join(o[1:-1] for o in objects if len(o) > 2) + "}"


def pieces(header: dict[str, Any], strict: bool) -> tuple[str, ...]:
    """The header as compact JSON objects: its elements before and after (0008,3002), or
    (rare) the whole header when it holds (0008,3002) itself. `strict`: NaN and ±Infinity
    raise ValueError (they are not JSON)."""
    if AVAILABLE_TRANSFER_SYNTAX in header:
        return (_dumps(header, strict),)
    below = {k: v for k, v in header.items() if k < AVAILABLE_TRANSFER_SYNTAX}
    above = {k: v for k, v in header.items() if k > AVAILABLE_TRANSFER_SYNTAX}
    return _dumps(below, strict), _dumps(above, strict)


def encode(
    header: dict[str, Any], parts: tuple[str, ...], transfer_syntax: str,
    pixels: tuple[str, str] | None,
) -> tuple[str, str | None]:
    """(header JSON, metadata JSON) from the header's `pieces`. `pixels`: Pixel Data's (tag,
    VR), or None. Metadata is None (the trigger builds it) when the header itself holds
    (0008,3002) or the Pixel Data tag: the trigger's jsonb concatenation replaces those
    elements, a splice would repeat them."""
    if len(parts) == 1:
        return parts[0], None
    below, above = parts
    text = _join(below, above)
    if pixels is not None and pixels[0] in header:
        return text, None
    # the two added elements by hand: json.dumps with options costs ≈2 µs a call
    syntax = f'{{"{AVAILABLE_TRANSFER_SYNTAX}":{{"vr":"UI","Value":[{json.dumps(transfer_syntax)}]}}}}'
    bulk = "{}" if pixels is None else (
        f'{{{json.dumps(pixels[0])}:{{"vr":{json.dumps(pixels[1])},'
        f'"BulkDataURI":{json.dumps("bulk:" + pixels[0])}}}}}')
    return text, _join(below, syntax, above, bulk).replace(_COMPACT_MARKER, MARKER)

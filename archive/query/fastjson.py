"""JSON (de)serialisation for query results: orjson when installed, else the standard library.

Result-heavy queries (a 100-study page) spent about half their time decoding the stored attrs
and encoding the answer with `json`; orjson does both several times faster. Values orjson
refuses (integers beyond 64 bits) fall back to `json`, so the output never depends on it.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - optional speed-up
    orjson = None  # type: ignore[assignment]


def loads(text: str | bytes | None) -> Any:
    """Parse stored DICOM JSON text (None stays None)."""
    if text is None:
        return None
    if orjson is not None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (no ASCII escaping), as `json.dumps(separators=(",", ":"))`."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # orjson.JSONEncodeError subclasses TypeError
            pass
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

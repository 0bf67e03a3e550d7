"""(key, value) pairs → QuerySpec: the one parser behind QIDO-RS, C-FIND and cohort definitions.

Keys are DICOM keywords or tags (`PatientID`, `00100020`), dotted sequence paths
(`ProcedureCodeSequence.CodeValue`), namespaced extension keys (`commons.site`), or the reserved
parameters of PS3.18 §8.3.4 (`includefield`, `limit`, `offset`, `fuzzymatching`). Anything else
is an InvalidQuery with the reason, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from archive.core import Extensions
from archive.errors import InvalidQuery
from archive.query.matching import combine_date_time, parse_match
from archive.query.spec import Condition, Level, QuerySpec, Sequence

RESERVED = frozenset({"includefield", "limit", "offset", "fuzzymatching"})
HEX = frozenset("0123456789ABCDEF")


@dataclass(frozen=True, slots=True)
class Attribute:
    tag: str  # 8 upper-case hex digits
    vr: str
    name: str  # keyword when known, else the tag


def resolve(key: str) -> Attribute:
    """Keyword or tag → Attribute; private and unknown tags match as text (VR LO)."""
    text = key.strip()
    if len(text) == 8 and set(text.upper()) <= HEX:
        tag = int(text, 16)
        if tag >> 16 in (0x0000, 0x0002) or tag & 0xFFFF == 0:
            raise InvalidQuery(f"{key}: command, file meta and group length tags are not keys")
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "LO"
        return Attribute(text.upper(), vr.split(" ")[0], keyword_for_tag(tag) or text.upper())
    tag_int = tag_for_keyword(text)
    if tag_int is None:
        raise InvalidQuery(f"unknown attribute {key!r}: use a DICOM keyword or an 8-digit tag")
    return Attribute(f"{tag_int:08X}", dictionary_VR(tag_int).split(" ")[0], text)


def resolve_path(key: str) -> list[Attribute]:
    path = [resolve(part) for part in key.split(".")]
    for a in path[:-1]:
        if a.vr != "SQ":
            raise InvalidQuery(f"{key}: {a.name} is not a sequence, so it cannot have a sub-key")
    return path


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no", ""):
        return False
    raise InvalidQuery(f"{name} must be true or false, not {value!r}")


def _count(name: str, value: str) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise InvalidQuery(f"{name} must be a non-negative integer, not {value!r}") from None
    if n < 0:
        raise InvalidQuery(f"{name} must be a non-negative integer, not {value!r}")
    return n


def _prefixed(key: str, table: dict[str, Any]) -> Any | None:
    for prefix, handler in table.items():
        if key.startswith(prefix):
            return handler
    return None


class _Builder:
    """Accumulates conditions as a tree so keys under one sequence match within one item."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}
        self.ranged: set[str] = set()  # top-level tags given as a range (for combine_date_time)

    def add(self, path: list[Attribute], value: str, fuzzy: bool, key: str) -> None:
        node = self.tree
        for a in path[:-1]:
            entry = node.setdefault(a.tag, (a, {}))
            node = entry[1]
        leaf = path[-1]
        match = parse_match(value, leaf.vr, fuzzy=fuzzy, name=key)
        if len(path) == 1 and "-" in value:
            self.ranged.add(leaf.tag)
        node.setdefault(leaf.tag + "#", []).append(Condition(leaf.tag, leaf.vr, match))

    def conditions(self, node: dict[str, Any] | None = None) -> tuple[Condition, ...]:
        node = self.tree if node is None else node
        out: list[Condition] = []
        for k, v in node.items():
            if k.endswith("#"):
                out.extend(v)
            else:
                attr, children = v
                out.append(Condition(attr.tag, "SQ", Sequence(self.conditions(children))))
        return tuple(out)


def parse_query(
    pairs: Iterable[tuple[str, str]],
    level: Level,
    extensions: Extensions | None = None,
    *,
    max_limit: int | None = None,
    root: str | None = None,
    scope: dict[str, str] | None = None,
    scoped_to: Level | None = None,
) -> QuerySpec:
    """Parse query pairs for `level`. `scope` adds fixed matches (e.g. the URL's study UID)."""
    extensions = extensions or Extensions()
    items = list(pairs) + list((scope or {}).items())
    fuzzy = False
    for k, v in items:
        if k == "fuzzymatching":
            fuzzy = _bool(k, v)
    limit: int | None = None
    offset = 0
    includes: set[str] = set()
    ext_includes: set[str] = set()
    include_all = False
    clauses: list[Any] = []
    builder = _Builder()
    for key, value in items:
        if key == "includefield":
            for field in (f.strip() for f in value.split(",")):
                if not field:
                    continue
                if field == "all":
                    include_all = True
                elif _prefixed(field, extensions.result_attributes):
                    ext_includes.add(field)
                else:
                    includes.add(resolve_path(field)[0].tag)
        elif key == "limit":
            limit = _count(key, value)
        elif key == "offset":
            offset = _count(key, value)
        elif key == "fuzzymatching":
            continue
        elif (compiler := _prefixed(key, extensions.filters)) is not None:
            clauses.append(compiler(key, value))
        else:
            builder.add(resolve_path(key), value, fuzzy, key)
    capped = False
    if max_limit is not None and (limit is None or limit > max_limit):
        limit, capped = max_limit, True
    return QuerySpec(
        level=level,
        conditions=combine_date_time(builder.conditions(), frozenset(builder.ranged)),
        extension_clauses=tuple(clauses),
        includes=frozenset(includes),
        include_all=include_all,
        extension_includes=frozenset(ext_includes),
        limit=limit,
        offset=offset,
        fuzzy=fuzzy,
        capped=capped,
        root=root,
        scoped_to=scoped_to,
    )

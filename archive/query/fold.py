"""Accent and case folding for fuzzy person-name matching, shared by Python and SQL.

The same table is compiled into the SQL function `archive_fold_name(text)` by migration 0002, so a
folded query token and a folded stored name are produced by the same rule: Latin letters with
diacritics map to their base letter (both cases, so it works in a C-collation database too), then
lower-case; name component separators (^ = , . space - ') become single spaces.
"""

from __future__ import annotations

import re

FOLD_FROM = (
    "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆ"
    "ćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐő"
    "ŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛ"
    "ǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯ"
    "ȰȱȲȳßøØđĐħĦıłŁŧŦæÆœŒðÐþÞ"
)
FOLD_TO = (
    "aaaaaaceeeeiiiinooooouuuuyaaaaaaceeeeiiiinooooouuuuyyaaaaaac"
    "cccccccddeeeeeeeeeegggggggghhiiiiiiiiijjkkllllllnnnnnnoooooo"
    "rrrrrrssssssssttttuuuuuuuuuuuuwwyyyzzzzzzoouuaaiioouuuuuuuuu"
    "uaaaaggkkoooojggnnaaaaaaeeeeiiiioooorrrruuuusstthhaaeeoooooo"
    "ooyysooddhhillttaaooddtt"
)
_TABLE = str.maketrans(FOLD_FROM, FOLD_TO)
SEPARATORS = re.compile(r"[\^=,.\s'-]+")


def fold(text: str) -> str:
    return text.translate(_TABLE).lower()


def fold_name(text: str) -> str:
    """The stored-name form: ' doe john ' (leading/trailing space so ' tok' starts a word)."""
    return " " + SEPARATORS.sub(" ", fold(text)).strip() + " "


def fold_tokens(text: str) -> tuple[str, ...]:
    return tuple(t for t in SEPARATORS.split(fold(text)) if t)


def _variants() -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for accented, base in zip(FOLD_FROM, FOLD_TO, strict=True):
        out.setdefault(base, [base, base.upper()]).append(accented)
    return {b: "".join(v) for b, v in out.items()}


_VARIANTS = _variants()


def accent_regex(token: str) -> str:
    """A regex matching `token` whatever the accents on its letters (for JSON PN values)."""
    parts = []
    for ch in token:
        if ch in _VARIANTS:
            parts.append("[" + _VARIANTS[ch] + "]")
        else:
            parts.append(re.escape(ch))
    return "".join(parts)

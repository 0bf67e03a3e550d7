"""Fuzz of the Authorization header over real HTTP (issue 12.8): never a 5xx, never anonymous.

A real archive (OIDC from the real npm oidc-provider, API keys, the legacy curator token) is
sent raw HTTP/1.1 requests on a socket, so the header goes out byte for byte as generated —
duplicates, tabs, latin-1 bytes, 100 KB values — which `requests` would normalise or refuse.
The route asked is `GET /dicom-web/studies`, which an anonymous caller may read: any 2xx for bad
credentials would be the silent fall back to anonymous the issue forbids.

What each answer must be (RFC 6750 §3, see docs/security.md "Bad credentials"):
* 401 `WWW-Authenticate: Bearer … error="invalid_token"` — a Bearer b64token that is not a
  valid JWT, API key or curator token (garbage, truncated or forged JWTs, alg none, …);
* 401 with a bare `WWW-Authenticate: Bearer realm=…` — another scheme (Basic, Digest, …);
* 400 `error="invalid_request"` — a malformed Bearer header (empty, a tab for the space, spaces
  or non-ASCII in the token) or several Authorization headers (§3.1 "repeats a parameter");
* 400 without a challenge only from the HTTP parser itself (a header over
  `--http-max-header-bytes`, control bytes), before any credential is looked at.
Hypothesis (already the project's fuzzing library, tests/reliability) generates ~300 values;
hand cases cover what the issue lists. The counts per answer are printed for the notes.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import jwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.identity.apikeys import create_key
from archive.identity.audit_log import query_events
from archive.identity.roles import Role
from tests.conftest import TEST_CURATOR_TOKEN, RunningArchive
from tests.identity.provider import AUDIENCE, OidcProvider

PATH = "/dicom-web/studies?limit=1"
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
B64TOKEN = B64URL + ".~+/="


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(header: Any, payload: Any = None, signature: bytes = b"sig") -> str:
    def enc(v: Any) -> str:
        return _b64(v if isinstance(v, bytes) else json.dumps(v).encode())
    return f"{enc(header)}.{enc(payload if payload is not None else {'sub': 'x'})}.{_b64(signature)}"


def send(archive: RunningArchive, values: list[bytes]) -> tuple[int, dict[str, str]]:
    """GET PATH with one `Authorization:` line per value (none for []), as raw bytes."""
    lines = b"".join(b"Authorization: " + v + b"\r\n" for v in values)
    request = (f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
               + lines + b"\r\n")
    with socket.create_connection(("127.0.0.1", archive.settings.http_port), timeout=30) as s:
        s.sendall(request)
        response = http.client.HTTPResponse(s)
        response.begin()  # raises if the server closed without an answer
        response.read(1 << 20)
        return response.status, {k.lower(): v for k, v in response.getheaders()}


def classify(status: int, headers: dict[str, str]) -> str:
    www = headers.get("www-authenticate", "")
    if status == 401 and www.startswith("Bearer") and 'error="invalid_token"' in www:
        return "401 invalid_token"
    if status == 401 and www.startswith("Bearer") and "error=" not in www:
        return "401 bare challenge"
    if status == 400 and www.startswith("Bearer") and 'error="invalid_request"' in www:
        return "400 invalid_request"
    if status == 400 and not www:
        return "400 by the HTTP parser"
    return f"WRONG {status} {www!r}"


def _parser_may_refuse(values: list[bytes], limit: int) -> bool:
    """True when aiohttp's parser rejects the header before the archive sees it."""
    return any(len(v) + len(b"Authorization: ") > limit
               or any((b < 0x20 and b != 0x09) or b == 0x7F for b in v) for v in values)


class Fuzz:
    def __init__(self, archive: RunningArchive) -> None:
        self.archive = archive
        self.counts: Counter[str] = Counter()
        self.wrong: list[str] = []
        self.requests = 0

    def bad(self, *values: bytes) -> str:
        """Send bad credentials; the answer must refuse them (never 2xx, never 5xx)."""
        status, headers = send(self.archive, list(values))
        self.requests += 1
        kind = classify(status, headers)
        if kind == "400 by the HTTP parser" and not _parser_may_refuse(
                list(values), self.archive.settings.http_max_header_bytes):
            kind = "WRONG 400 without a challenge for a header the parser accepts"
        self.counts[kind] += 1
        if kind.startswith("WRONG"):
            self.wrong.append(f"{kind} for {[v[:80] for v in values]!r}")
        return kind

    def good(self, *values: bytes) -> None:
        status, _ = send(self.archive, list(values))
        self.requests += 1
        self.counts[f"{status} (valid credentials)"] += 1
        if status != 200:
            self.wrong.append(f"{status} for valid credentials {[v[:40] for v in values]!r}")


# --- Hypothesis strategies -------------------------------------------------------------------
no_crlf = st.binary(max_size=400).filter(lambda b: b"\r" not in b and b"\n" not in b)
schemes = st.sampled_from(["Bearer", "bearer", "BEARER", "BeArEr", "Basic", "Digest",
                           "Negotiate", "Token", "JWT", "Bearer:", "Bearer,", ""])
separators = st.sampled_from([" ", "  ", "\t", "", " \t", "   ", "\u00a0", ", "])
b64tokens = st.text(alphabet=B64TOKEN, min_size=0, max_size=300)
weird_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
headers_json = st.fixed_dictionaries({}, optional={
    "alg": weird_json | st.sampled_from(["RS256", "ES256", "HS256", "none", "EdDSA", "PS512"]),
    "kid": weird_json, "typ": weird_json, "jku": st.just("http://127.0.0.1:1/jwks"),
    "crit": weird_json})
forged_jwts = st.builds(_jwt, headers_json | weird_json, weird_json | st.binary(max_size=200),
                        st.binary(max_size=300))


def fuzz_values(real_tokens: list[str]) -> st.SearchStrategy[bytes]:
    """Whole header values: raw bytes, scheme × separator × token, mutated real tokens."""
    real = st.sampled_from(real_tokens)
    truncated = st.builds(lambda t, n: t[:n], real, st.integers(0, 2000))
    flipped = st.builds(lambda t, i, c: t[:i % len(t)] + c + t[i % len(t) + 1:], real,
                        st.integers(0, 5000), st.sampled_from(B64URL + ".é\t "))
    tokens = b64tokens | forged_jwts | truncated | flipped | st.text(max_size=200)
    composed = st.builds(lambda s, sep, t, enc: (s + sep + t).encode(enc, "replace"),
                         schemes, separators, tokens, st.sampled_from(["utf-8", "latin-1"]))
    valid = re.compile(b"(?i)bearer +(" + b"|".join(re.escape(t.encode()) for t in real_tokens)
                       + b") *")
    # what is left valid by the RFC: any case of the scheme, 1*SP, a real token (HTTP strips
    # the value's leading and trailing spaces and tabs)
    return (no_crlf | composed).filter(lambda v: not valid.fullmatch(v.strip(b" \t")))


def hand_cases(real: dict[str, str]) -> list[list[bytes]]:
    """What the issue lists, header by header; each item is one request's Authorization lines."""
    jwt_ = real["oidc"]
    head, payload, sig = jwt_.split(".")
    claims = jwt.decode(jwt_, options={"verify_signature": False})
    def b(s: str | bytes) -> bytes:
        return s.encode("latin-1", "replace") if isinstance(s, str) else s
    cases: list[Any] = [
        "garbage", "Bearer garbage", "Bearer " + "A" * 100_000, "A" * 100_000,
        "Bearer " + "A" * 8000,  # fits the header limit: an unknown token
        "Basic dXNlcjpwYXNzd29yZA==", 'Digest username="u", realm="r", nonce="n", response="x"',
        "Negotiate YIIC", "bearer garbage", f"Bearer{jwt_}", f"Bearer\t{jwt_}", f"Bearer \t{jwt_}",
        f"Bearer {jwt_} extra", f"Bearer {jwt_}, Basic eDp5", f"Bearer {jwt_[:-1]}\u00e9",
        "Bearer", "Bearer ", "", " ", "\t",
        b"Bearer \xe9\xe8\xff\xfe", b"Bearer \xc3\xa9t\xc3\xa9", "Bearer \u00e9t\u00e9",
        b"Bearer " + jwt_.encode()[:50] + b"\x80\x81",
        f"Bearer {head}.{payload}", f"Bearer {head}.{payload}.", f"Bearer {head}..{sig}",
        f"Bearer .{payload}.{sig}", f"Bearer {head}", "Bearer ..", "Bearer .....",
        "Bearer " + _jwt({"alg": "none"}, claims | {"roles": ["admin"]}, b""),
        "Bearer " + _jwt({"alg": "HS256", "kid": "k"}, claims | {"roles": ["admin"]}),
        "Bearer " + _jwt({"alg": ["RS256"]}, claims),  # unhashable alg
        "Bearer " + _jwt({"alg": {"x": 1}}, claims), "Bearer " + _jwt({"alg": "RS256", "kid": 7}),
        "Bearer " + _jwt({"alg": "RS256", "kid": "k" * 5000}),  # huge header
        "Bearer " + _jwt({"alg": "RS256"}, {"sub": "x", "pad": "p" * 5000}),  # huge payload
        "Bearer " + _jwt(b"[" * 4000, claims),  # nested beyond Python's recursion limit
        "Bearer " + _jwt(b"\xff\xfe not json", claims), "Bearer " + _jwt([], claims),
        "Bearer " + _jwt({"alg": "RS256"}, claims, b"\x00" * 4000),  # huge signature
        f"Bearer {head}.{payload}.{'A' * 6000}",
        "Bearer arc_", "Bearer arc_" + "x" * 43, f"Bearer {real['key'][:-1]}",
        f"Bearer {real['key']}x", f"Bearer {TEST_CURATOR_TOKEN}x", f"Bearer {TEST_CURATOR_TOKEN[:-1]}",
    ]
    cases += [f"Bearer {jwt_[:n]}" for n in range(0, len(jwt_), max(1, len(jwt_) // 25))]
    out: list[list[bytes]] = [[b(c)] for c in cases]
    # several Authorization headers: whichever a proxy checked, we must not pick one
    out += [[b(f"Bearer {jwt_}"), b(f"Bearer {jwt_}")], [b(f"Bearer {jwt_}"), b"Bearer garbage"],
            [b"Bearer garbage", b(f"Bearer {real['key']}")], [b"", b(f"Bearer {jwt_}")],
            [b(f"Bearer {real['key']}"), b"Basic eDp5"]]
    return out


def test_authorization_header_fuzz(server_factory: Any, oidc_provider: OidcProvider) -> None:
    archive = server_factory(oidc_issuer=oidc_provider.issuer, oidc_audience=AUDIENCE)

    async def make_key() -> str:
        async with archive.core.engine.begin() as conn:
            return (await create_key(conn, "fuzz-reader", Role.READER, None))[1]

    real = {"oidc": oidc_provider.token("curator"), "key": archive.run(make_key()),
            "legacy": TEST_CURATOR_TOKEN}
    fuzz = Fuzz(archive)
    started = time.monotonic()
    # the valid credentials and no header at all work: the route is not refusing everyone
    fuzz.good()
    for token in real.values():
        fuzz.good(f"Bearer {token}".encode())
    fuzz.good(f"bearer {real['oidc']}".encode())  # RFC 7235 §2.1: the scheme is case-insensitive
    fuzz.good(f"Bearer   {real['key']}".encode())  # RFC 6750 §2.1: 1*SP

    for values in hand_cases(real):
        fuzz.bad(*values)
    hand = fuzz.requests

    @settings(max_examples=300, deadline=timedelta(seconds=20), database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(value=fuzz_values(list(real.values())))
    def one(value: bytes) -> None:
        fuzz.bad(value)

    one()
    # the server is still answering, and forged kids did not make it hammer the provider
    fuzz.good()
    fuzz.good(f"Bearer {real['oidc']}".encode())
    oidc = archive.core.identity.authenticator._oidc  # type: ignore[union-attr]
    assert oidc is not None and oidc.keys.fetches <= 3, oidc.keys.fetches
    print(f"\nauthorization fuzz: {fuzz.requests} requests ({hand} hand-written, "
          f"{fuzz.requests - hand} generated) in {time.monotonic() - started:.1f} s: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(fuzz.counts.items())))
    assert not fuzz.wrong, "\n".join(fuzz.wrong[:30])
    assert not any(k.startswith("5") for k in fuzz.counts)

    # every refusal the archive itself made left a User Authentication (failure) event
    async def failures() -> int:
        await archive.core.identity.audit.flush()  # type: ignore[union-attr]
        async with archive.core.engine.connect() as conn:
            return len(await query_events(conn, action="User Authentication", limit=100_000))
    refused_by_archive = sum(v for k, v in fuzz.counts.items()
                             if k.startswith(("401", "400 invalid_request")))
    assert archive.run(failures()) == refused_by_archive

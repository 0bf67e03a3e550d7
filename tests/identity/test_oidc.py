"""OIDC bearer tokens against a real OpenID provider (npm oidc-provider, JWT access tokens)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from archive.identity.errors import InvalidToken
from archive.identity.oidc import OidcConfig, OidcValidator, claim_at, role_from
from archive.identity.roles import Kind, Role
from tests.conftest import free_port
from tests.identity.provider import AUDIENCE, OidcProvider, ec_jwk, stable_port


def _config(p: OidcProvider, **kw: object) -> OidcConfig:
    return OidcConfig(p.issuer, AUDIENCE, **kw)  # type: ignore[arg-type]


async def _validate(cfg: OidcConfig, *tokens: str) -> list[object]:
    v = OidcValidator(cfg)
    out: list[object] = []
    try:
        for t in tokens:
            try:
                out.append(await v.validate(t, "10.0.0.9"))
            except InvalidToken as exc:
                out.append(exc)
    finally:
        await v.close()
    return out


def _reason(result: object) -> str:
    assert isinstance(result, InvalidToken), result
    return result.reason


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_tokens_become_identities(oidc_provider: OidcProvider) -> None:
    tokens = [oidc_provider.token(c) for c in ("reader", "site-a", "curator")]
    reader, site_a, curator = await _validate(_config(oidc_provider), *tokens)
    assert reader.subject == "reader" and reader.role is Role.READER  # type: ignore[attr-defined]
    assert reader.kind is Kind.OIDC and reader.source == "10.0.0.9"  # type: ignore[attr-defined]
    assert (site_a.role, site_a.site) == (Role.CONTRIBUTOR, "SITE_A")  # type: ignore[attr-defined]
    assert curator.role is Role.CURATOR and curator.site is None  # type: ignore[attr-defined]


async def test_dotted_claim_paths(oidc_provider: OidcProvider) -> None:
    cfg = _config(oidc_provider, roles_claim="realm_access.roles", site_claim="org.site")
    (ident,) = await _validate(cfg, oidc_provider.token("keycloak-style"))
    assert ident.role is Role.ADMIN and ident.site == "SITE_K"  # type: ignore[attr-defined]


async def test_wrong_audience_and_expired(oidc_provider: OidcProvider) -> None:
    wrong_aud = oidc_provider.token("reader", resource="urn:somebody-else")
    short = oidc_provider.token("short")
    time.sleep(2.1)
    results = await _validate(_config(oidc_provider, leeway_seconds=0), wrong_aud, short)
    assert [_reason(r) for r in results] == ["wrong audience", "token expired"]
    # the leeway forgives a clock a little behind
    (ok,) = await _validate(_config(oidc_provider, leeway_seconds=30), short)
    assert ok.subject == "short"  # type: ignore[attr-defined]


async def test_wrong_issuer_same_keys(oidc_provider: OidcProvider) -> None:
    """A second real provider with the same signing key but another issuer URL."""
    other = OidcProvider(stable_port(), oidc_provider.keys).start()
    try:
        token = other.token("curator")
    finally:
        other.stop()
    (r,) = await _validate(_config(oidc_provider), token)
    assert _reason(r) == "wrong issuer"


async def test_forged_tokens_are_rejected(oidc_provider: OidcProvider) -> None:
    good = oidc_provider.token("reader")
    header, payload, _sig = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    kid = jwt.get_unverified_header(good)["kid"]
    claims["roles"] = ["admin"]
    alg_none = f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(claims)}."
    # HS256 keyed with the provider's public key (algorithm confusion)
    public_pem = RSAAlgorithm.from_jwk(json.dumps(oidc_provider.keys[0])).public_key()
    from cryptography.hazmat.primitives import serialization
    pem = public_pem.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    hs = jwt.api_jws.PyJWS().encode(json.dumps(claims).encode(), pem.hex(), algorithm="HS256",
                                    headers={"kid": kid})
    # a real RS256 signature by another key under the provider's kid
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad_sig = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": kid})
    tampered = f"{header}.{_b64(claims)}.{_sig}"
    results = await _validate(_config(oidc_provider), alg_none, hs, bad_sig, tampered, "garbage",
                              "a.b.c", "x" * 100_000, f"{header}.{payload}")
    reasons = [_reason(r) for r in results]
    assert reasons == ["algorithm 'none' not allowed", "algorithm 'HS256' not allowed",
                       "bad signature", "bad signature", "malformed token", "malformed token",
                       "malformed token", "malformed token"]


async def test_unknown_kid_refetches_rate_limited(oidc_provider: OidcProvider) -> None:
    # The window is far longer than the test and time only moves when the test says so: a slow
    # machine cannot open it early, so "no refetch inside, exactly one after" is exact.
    now = [1000.0]
    cfg = _config(oidc_provider, min_refetch_seconds=300.0)
    v = OidcValidator(cfg, clock=lambda: now[0])
    try:
        assert (await v.validate(oidc_provider.token("reader"))).subject == "reader"
        assert v.keys.fetches == 1
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        claims = {"sub": "x", "iss": cfg.issuer, "aud": AUDIENCE, "exp": time.time() + 60}
        forged = [jwt.encode(claims, stranger, "RS256", headers={"kid": f"forged-{i}"})
                  for i in range(20)]
        results = await asyncio.gather(*(v.validate(t) for t in forged), return_exceptions=True)
        assert {_reason(r) for r in results} == {"unknown signing key"}
        assert v.keys.fetches == 1  # within min_refetch_seconds of the first fetch: no refetch
        new_key = ec_jwk()
        oidc_provider.alg = "ES256"
        oidc_provider.rotate(new_key)  # restart: the new key signs, the old one is still listed
        rotated = oidc_provider.token("site-a")
        assert jwt.get_unverified_header(rotated)["kid"] == new_key["kid"]
        now[0] += 299.0  # still inside the window: even a genuine new key waits
        (early,) = await asyncio.gather(v.validate(rotated), return_exceptions=True)
        assert _reason(early) == "unknown signing key" and v.keys.fetches == 1
        now[0] += 1.0  # the window has passed: exactly one refetch, for many concurrent callers
        idents = await asyncio.gather(*(v.validate(rotated) for _ in range(10)))
        assert {(i.subject, i.site) for i in idents} == {("site-a", "SITE_A")}
        assert v.keys.fetches == 2
    finally:
        await v.close()


async def test_provider_down_is_invalid_token_not_crash() -> None:
    cfg = OidcConfig(f"http://127.0.0.1:{free_port()}", AUDIENCE)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"sub": "x"}, key, "RS256", headers={"kid": "k"})
    (r,) = await _validate(cfg, token)
    assert _reason(r).startswith("cannot load the issuer's signing keys")


def test_claim_helpers() -> None:
    claims = {"realm_access": {"roles": ["admin"]}, "a.b": 1, "roles": "reader contributor"}
    assert claim_at(claims, "realm_access.roles") == ["admin"]
    assert claim_at(claims, "a.b") == 1
    assert claim_at(claims, "realm_access.missing") is None
    assert role_from(claim_at(claims, "roles")) is Role.CONTRIBUTOR
    assert role_from(None) is Role.READER
    assert role_from(["offline_access", 7]) is Role.READER


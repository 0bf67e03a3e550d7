"""Authorization header → Identity with every kind of credential at once: the real OpenID
provider, API keys in a real database, the legacy curator token; failures are audited, and a
fuzz of hostile headers only ever yields InvalidToken (a 401), never another exception."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest

from archive.config import Settings
from archive.errors import ConfigError
from archive.identity import apikeys, service
from archive.identity.audit_log import query_events
from archive.identity.errors import InvalidToken
from archive.identity.roles import Kind, Role
from archive.index.engine import create_engine
from tests.identity.provider import AUDIENCE, OidcProvider


def _settings(p: OidcProvider, **kw: object) -> Settings:
    return replace(Settings(), oidc_issuer=p.issuer, oidc_audience=AUDIENCE,
                   curator_token="legacy-curator-secret", **kw)  # type: ignore[arg-type]


async def _key(engine: object, name: str, role: Role, site: str | None = None) -> str:
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        _, secret = await apikeys.create_key(conn, name, role, site)
    return secret


async def test_every_credential_kind(oidc_provider: OidcProvider, database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    svc = service.start(_settings(oidc_provider, anonymous_role="none"), engine)
    try:
        auth = svc.authenticator
        key = await _key(engine, "gw-b", Role.CONTRIBUTOR, "SITE_B")
        token = await asyncio.to_thread(oidc_provider.token, "site-a")
        anon = await auth.identify(None, "10.0.0.1")
        assert (anon.kind, anon.role) == (Kind.ANONYMOUS, None)
        legacy = await auth.identify("Bearer legacy-curator-secret", "10.0.0.2")
        assert (legacy.kind, legacy.role, legacy.subject) == (Kind.STATIC, Role.CURATOR,
                                                              "curator-token")
        k = await auth.identify(f"Bearer {key}", "10.0.0.3")
        assert (k.kind, k.subject, k.site) == (Kind.API_KEY, "gw-b", "SITE_B")
        o = await auth.identify(f"bearer {token}", "10.0.0.4")  # scheme is case-insensitive
        assert (o.kind, o.subject, o.role, o.site) == (Kind.OIDC, "site-a", Role.CONTRIBUTOR,
                                                       "SITE_A")
        for bad, reason in [("Basic dXNlcjpwdw==", "Bearer"), ("Bearer", "malformed"),
                            ("Bearer legacy-curator-secreT", "unknown token"),
                            (f"Bearer {key[:-1]}", "API key"), (f"Bearer {token[:-2]}", "signature")]:
            with pytest.raises(InvalidToken, match=reason):
                await auth.identify(bad, "203.0.113.66")
        await svc.audit.flush()
        async with engine.connect() as conn:
            events = await query_events(conn, action="User Authentication")
        assert len(events) == 5
        assert {e.source for _, e in events} == {"203.0.113.66"}
        assert all(e.outcome == 4 and e.detail["reason"] for _, e in events)
    finally:
        await svc.close()
        await engine.dispose()


async def test_issuer_without_audience_is_a_config_error(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        with pytest.raises(ConfigError, match="oidc-audience"):
            service.start(replace(Settings(), oidc_issuer="http://127.0.0.1:1"), engine)
    finally:
        await engine.dispose()


async def test_header_fuzz_only_invalid_token(oidc_provider: OidcProvider,
                                              database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    svc = service.start(_settings(oidc_provider), engine)
    rng = random.Random(12)
    token = await asyncio.to_thread(oidc_provider.token, "reader")
    alphabet = "abcXYZ019-_.=+/ \t\x00é\u202e"
    cases = ["Bearer " + "A" * 100_000, "Bearer " + "." * 5000, "Bearer a.b", "Bearer ..",
             "Bearer arc_", "Bearer " + token.replace(".", "", 1), "Negotiate abc", " ", "Bearer  ",
             "Bearer \x00\x00", "Bearer " + token[: len(token) // 2]]
    cases += ["Bearer " + token[:i] for i in range(0, len(token), max(1, len(token) // 40))]
    cases += ["Bearer " + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
              for _ in range(200)]
    outcomes: dict[str, int] = {}
    try:
        async with asyncio.timeout(120):
            for header in cases:
                try:
                    ident = await svc.authenticator.identify(header, "127.0.0.1")
                    outcomes[ident.kind] = outcomes.get(ident.kind, 0) + 1
                except InvalidToken:
                    outcomes["invalid"] = outcomes.get("invalid", 0) + 1
    finally:
        await svc.close()
        await engine.dispose()
    assert outcomes == {"invalid": len(cases)}  # sent credentials never fall back to anonymous
    assert svc.authenticator._oidc is not None
    assert svc.authenticator._oidc.keys.fetches <= 2  # forged kids did not hammer the provider

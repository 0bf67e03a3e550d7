"""Fixtures for identity tests: a real OpenID provider (npm oidc-provider) on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.identity.provider import OidcProvider, ensure_installed, rsa_jwk, stable_port


@pytest.fixture
def oidc_provider() -> Iterator[OidcProvider]:
    ensure_installed()
    p = OidcProvider(stable_port(), [rsa_jwk()]).start()
    yield p
    p.stop()

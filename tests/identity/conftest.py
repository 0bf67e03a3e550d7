"""Fixtures for identity tests: a real OpenID provider (npm oidc-provider) on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.identity.provider import OidcProvider, ensure_installed, rsa_jwk


@pytest.fixture
def oidc_provider() -> Iterator[OidcProvider]:
    ensure_installed()
    p = OidcProvider(free_port(), [rsa_jwk()]).start()
    yield p
    p.stop()

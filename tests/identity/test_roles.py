"""The role ladder and the permission table (issue 12 §2)."""

from __future__ import annotations

import pytest

from archive.identity.errors import Forbidden, Unauthenticated
from archive.identity.roles import (
    LEAST_ROLE,
    Identity,
    Kind,
    Permission,
    Role,
    allows,
    anonymous,
    may_store_for,
    require,
    upload_site,
)

READER_PERMS = {Permission.PUBLIC, Permission.READ, Permission.CREATE_COHORT, Permission.READ_OWN_COHORTS}
CONTRIBUTOR_PERMS = READER_PERMS | {Permission.STORE_OWN_SITE}
CURATOR_PERMS = CONTRIBUTOR_PERMS | {
    Permission.STORE_ANY_SITE, Permission.SEQUESTERED, Permission.ASSIGN_COLLECTION,
    Permission.CLINICAL_WRITE, Permission.MAPPING_WRITE, Permission.READ_ANY_COHORT,
    Permission.PUBLISH_COHORT, Permission.DELETE}
ADMIN_PERMS = set(Permission)


def who(role: Role | None, site: str | None = None) -> Identity:
    return Identity("u", role, Kind.API_KEY, site, "127.0.0.1")


@pytest.mark.parametrize(("role", "expected"), [
    (Role.READER, READER_PERMS), (Role.CONTRIBUTOR, CONTRIBUTOR_PERMS),
    (Role.CURATOR, CURATOR_PERMS), (Role.ADMIN, ADMIN_PERMS), (None, {Permission.PUBLIC}),
])
def test_each_role_includes_the_one_before(role: Role | None, expected: set[Permission]) -> None:
    assert {p for p in Permission if allows(who(role), p)} == expected


def test_every_permission_has_a_least_role_and_a_distinct_name() -> None:
    assert set(LEAST_ROLE) == set(Permission)
    assert len({p.label for p in Permission}) == len(Permission) == 15


def test_anonymous_role() -> None:
    assert anonymous().role is Role.READER and anonymous().kind is Kind.ANONYMOUS
    nobody = anonymous("none", "10.1.1.1")
    assert nobody.role is None and nobody.source == "10.1.1.1"
    with pytest.raises(Unauthenticated):
        require(nobody, Permission.READ)
    with pytest.raises(Unauthenticated):
        require(anonymous(), Permission.DELETE)  # anonymous → 401, not 403
    with pytest.raises(ValueError, match="must be one of"):
        anonymous("admin")


def test_require_forbidden_has_a_reason() -> None:
    with pytest.raises(Forbidden) as exc:
        require(who(Role.CONTRIBUTOR, "A"), Permission.DELETE)
    assert "delete" in exc.value.reason and "curator" in exc.value.reason
    require(who(Role.CURATOR), Permission.DELETE)


def test_upload_site_rules() -> None:
    a = who(Role.CONTRIBUTOR, "SITE_A")
    assert upload_site(a, None) == "SITE_A"
    assert upload_site(a, "SITE_A") == "SITE_A"
    with pytest.raises(Forbidden, match="SITE_A"):
        upload_site(a, "SITE_B")
    with pytest.raises(Forbidden, match="no site"):
        upload_site(who(Role.CONTRIBUTOR), None)
    with pytest.raises(Forbidden):
        upload_site(who(Role.READER), None)
    with pytest.raises(Unauthenticated):
        upload_site(anonymous(), None)
    assert upload_site(who(Role.CURATOR), "SITE_B") == "SITE_B"
    assert may_store_for(a, "SITE_A") and not may_store_for(a, "SITE_B")
    assert may_store_for(who(Role.ADMIN), "SITE_B")
    assert not may_store_for(who(Role.READER, "SITE_A"), "SITE_A")


def test_role_parse() -> None:
    assert Role.parse(" Curator ") is Role.CURATOR
    with pytest.raises(ValueError, match="unknown role"):
        Role.parse("root")


def test_identity_settings_from_flags_env_and_toml(tmp_path: object) -> None:
    from pathlib import Path

    from archive import config
    from archive.cli import parser, settings_from
    from archive.errors import ConfigError

    toml = Path(str(tmp_path)) / "a.toml"
    toml.write_text('oidc_issuer = "https://idp.example/realms/x"\noidc_roles_claim = '
                    '"realm_access.roles"\n')
    args = parser().parse_args(["serve", "--config", str(toml), "--oidc-audience", "archive",
                                "--anonymous-role", "none", "--audit-syslog", "127.0.0.1:6514"])
    s = settings_from(args)
    assert (s.oidc_issuer, s.oidc_audience, s.oidc_roles_claim, s.oidc_site_claim) == (
        "https://idp.example/realms/x", "archive", "realm_access.roles", "site")
    assert (s.anonymous_role, s.audit_syslog) == ("none", "127.0.0.1:6514")
    env = config.load({}, environ={"ARCHIVE_ANONYMOUS_ROLE": "reader",
                                   "ARCHIVE_OIDC_SITE_CLAIM": "org.site"})
    assert (env.anonymous_role, env.oidc_site_claim, env.oidc_issuer) == ("reader", "org.site", None)
    for name, value in [("ARCHIVE_ANONYMOUS_ROLE", "admin"), ("ARCHIVE_AUDIT_SYSLOG", "nohost")]:
        with pytest.raises(ConfigError):
            config.load({}, environ={name: value})

"""Roles, permissions and identities: the one table every door consults.

Roles are ordered and each includes the one before (reader < contributor < curator < admin), so
a permission is granted by naming the least role that has it. Data a caller may not see is a
visibility question (404), answered elsewhere; this module only answers "may this identity do X".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum

from archive.identity.errors import Forbidden, Unauthenticated


class Role(IntEnum):
    READER = 1
    CONTRIBUTOR = 2
    CURATOR = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r}: expected one of {ROLE_NAMES}") from None


ROLE_NAMES = tuple(r.label for r in Role)
ANONYMOUS_ROLES = ("reader", "none")


class Kind(StrEnum):
    """How the identity was established (audit and logs say it)."""

    OIDC = "oidc"
    API_KEY = "api_key"
    STATIC = "static"  # the legacy --curator-token
    DIMSE = "dimse"
    LOCAL = "local"  # an operator's CLI command on the database (`archive import`): an OS user
    ANONYMOUS = "anonymous"


class Permission(Enum):
    """Every action of issue 12 (value = its name in messages); `least_role` has it.

    PUBLIC needs no role at all (the landing page, the viewer's assets, the API description):
    such a route answers even under `--anonymous-role none`."""

    PUBLIC = "public"
    READ = "read"  # query/retrieve what is visible, commons reads
    CREATE_COHORT = "create_cohort"
    READ_OWN_COHORTS = "read_own_cohorts"
    STORE_OWN_SITE = "store_own_site"  # STOW-RS / C-STORE into the identity's own site
    STORE_ANY_SITE = "store_any_site"  # store/replace for any site
    SEQUESTERED = "sequestered"  # see and write the sequestered collection
    ASSIGN_COLLECTION = "assign_collection"  # `collection` parameter, PUT .../collection
    CLINICAL_WRITE = "clinical_write"
    MAPPING_WRITE = "mapping_write"
    READ_ANY_COHORT = "read_any_cohort"  # any cohort's root and manifest, published or not
    PUBLISH_COHORT = "publish_cohort"
    DELETE = "delete"
    KEYS_ADMIN = "keys_admin"
    AUDIT_READ = "audit_read"

    @property
    def least_role(self) -> Role | None:
        """The least role that has the permission; None for PUBLIC (anyone, even no role)."""
        return LEAST_ROLE[self]

    @property
    def label(self) -> str:
        return self.value


LEAST_ROLE: dict[Permission, Role | None] = {
    Permission.PUBLIC: None,
    Permission.READ: Role.READER,
    Permission.CREATE_COHORT: Role.READER,
    Permission.READ_OWN_COHORTS: Role.READER,
    Permission.STORE_OWN_SITE: Role.CONTRIBUTOR,
    Permission.STORE_ANY_SITE: Role.CURATOR,
    Permission.SEQUESTERED: Role.CURATOR,
    Permission.ASSIGN_COLLECTION: Role.CURATOR,
    Permission.CLINICAL_WRITE: Role.CURATOR,
    Permission.MAPPING_WRITE: Role.CURATOR,
    Permission.READ_ANY_COHORT: Role.CURATOR,
    Permission.PUBLISH_COHORT: Role.CURATOR,
    Permission.DELETE: Role.CURATOR,
    Permission.KEYS_ADMIN: Role.ADMIN,
    Permission.AUDIT_READ: Role.ADMIN,
}


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller: `subject` is the token subject, key name, AE title or "anonymous".

    `role` None means no rights at all (anonymous under `--anonymous-role none`).
    `source` is the network address the request came from (audit, logs).
    """

    subject: str
    role: Role | None
    kind: Kind
    site: str | None = None
    source: str | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.kind is Kind.ANONYMOUS

    @property
    def role_label(self) -> str:
        return self.role.label if self.role is not None else "none"


def anonymous(anonymous_role: str = "reader", source: str | None = None) -> Identity:
    """The identity of a caller without credentials: `reader` (default) or no rights (`none`)."""
    if anonymous_role not in ANONYMOUS_ROLES:
        raise ValueError(f"anonymous role must be one of {ANONYMOUS_ROLES}, not {anonymous_role!r}")
    role = Role.READER if anonymous_role == "reader" else None
    return Identity("anonymous", role, Kind.ANONYMOUS, None, source)


def allows(identity: Identity, permission: Permission) -> bool:
    least = permission.least_role
    return least is None or (identity.role is not None and identity.role >= least)


def require(identity: Identity, permission: Permission) -> None:
    """Raise Unauthenticated (401) for an anonymous caller, Forbidden (403) for anyone else."""
    if allows(identity, permission):
        return
    if identity.is_anonymous:
        raise Unauthenticated(f"{permission.label} needs credentials")
    least = permission.least_role
    raise Forbidden(f"{identity.role_label} {identity.subject!r} may not {permission.label} "
                    f"(needs {least.label if least else 'no role'})")


def may_store_for(identity: Identity, site: str | None) -> bool:
    """Contributors store into their own site only; curators and admins into any."""
    if allows(identity, Permission.STORE_ANY_SITE):
        return True
    return (allows(identity, Permission.STORE_OWN_SITE) and identity.site is not None
            and site == identity.site)


def upload_site(identity: Identity, requested: str | None) -> str | None:
    """The site an upload is attributed to: the identity's own; naming another site is 403.

    Curators may attribute to any site (or none, which leaves attribution to the core).
    """
    if allows(identity, Permission.STORE_ANY_SITE):
        return requested
    require(identity, Permission.STORE_OWN_SITE)
    if identity.site is None:
        raise Forbidden(f"{identity.subject!r} has no site to store into")
    if requested is not None and requested != identity.site:
        raise Forbidden(f"{identity.subject!r} may store into site {identity.site!r} only, "
                        f"not {requested!r}")
    return identity.site

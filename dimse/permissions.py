"""The one table of DIMSE services and the permission each needs, checked in one place.

Every handler gets its Caller from `caller_for(event, core)`, which looks the service up here by
the pynetdicom event, checks the association's identity against it (archive Forbidden → a
"Refused: Not Authorized" status) and translates the identity into the core's Caller.
"""

from __future__ import annotations

from typing import Any

from pynetdicom import evt

from archive.core import Caller, Core
from archive.errors import Forbidden
from archive.identity.roles import Identity, Permission, allows
from dimse.peers import identity_of

SERVICE_PERMISSION: dict[str, Permission] = {
    evt.EVT_C_ECHO.name: Permission.READ,
    evt.EVT_C_STORE.name: Permission.STORE_OWN_SITE,
    evt.EVT_C_FIND.name: Permission.READ,
    evt.EVT_C_GET.name: Permission.READ,
    evt.EVT_C_MOVE.name: Permission.READ,
}


def permission_for(event: Any) -> Permission:
    """The permission the event's service needs; a service missing from the table is a bug."""
    return SERVICE_PERMISSION[event.event.name]


def caller_for(event: Any, core: Core) -> Caller:
    """The association's identity, checked against the service's permission, as a Caller."""
    identity = identity_of(event.assoc, core)
    permission = permission_for(event)
    if not allows(identity, permission):
        raise Forbidden(f"{identity.role_label} {identity.subject!r} may not {permission.label}")
    return caller_of(identity)


def caller_of(identity: Identity) -> Caller:
    """Identity → the core's Caller: the site stores are attributed to, and the role's rights."""
    return Caller(
        ae_title=identity.subject,
        site=identity.site,
        may_see_sequestered=allows(identity, Permission.SEQUESTERED),
        roles=frozenset({identity.role_label}),
    )


def handle_echo(event: Any, core: Core) -> int:
    """EVT_C_ECHO: success for any identified peer with the READ permission."""
    try:
        caller_for(event, core)
    except Forbidden:
        return 0x0124
    return 0x0000

"""Who is calling: each association's identity, decided once when it is requested.

EVT_REQUESTED runs before negotiation: `archive.identity.dimse_peer.identify` turns the calling
AE title, the peer's address and (over DICOM TLS) its verified client certificate into an
Identity, or rejects the association (A-ASSOCIATE-RJ, permanent, "calling AE title not
recognised"). The identity rides on the association object for the handlers; every association
log line carries calling AE, address and identity.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from archive.core import Core
from archive.identity.dimse_peer import identify
from archive.identity.errors import Forbidden
from archive.identity.roles import Identity, Kind
from dimse import audit

log = logging.getLogger("dimse.peers")

_ATTR = "archive_identity"


def calling_aet(assoc: Any) -> str:
    primitive = getattr(assoc.requestor, "primitive", None)
    aet = primitive.calling_ae_title if primitive is not None else assoc.requestor.ae_title
    return (aet.decode() if isinstance(aet, bytes) else str(aet)).strip()


def has_client_certificate(assoc: Any) -> bool:
    """True when the association runs over TLS and the peer presented a verified certificate
    (the TLS listener only asks for one, and verifies it, with --dimse-tls-ca)."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    return isinstance(sock, ssl.SSLSocket) and bool(sock.getpeercert())


def on_requested(event: Any, core: Core, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """EVT_REQUESTED handler: identify the caller or reject the association (audited as a
    failed User Authentication)."""
    assoc = event.assoc
    aet, address = calling_aet(assoc), str(assoc.requestor.address)
    tls = has_client_certificate(assoc)
    try:
        identity = identify(core.settings, aet, address, tls_client_cert=tls)
    except Forbidden as exc:
        log.warning("association rejected: %s", exc.reason,
                    extra={"calling_ae": aet, "address": address, "tls_client_cert": tls})
        # permanent, service user, "calling AE title not recognised"; then as pynetdicom's own
        # rejection does: kill() lets the DUL send the A-ASSOCIATE-RJ before the socket closes
        assoc.acse.send_reject(0x01, 0x01, 0x03)
        assoc.kill()
        audit.rejected(core, loop, assoc, aet, address, exc.reason)
        return
    setattr(assoc, _ATTR, identity)
    log.info("association requested", extra={
        "calling_ae": aet, "address": address, "identity": identity.subject,
        "role": identity.role_label, "site": identity.site, "tls_client_cert": tls})


def identity_of(assoc: Any, core: Core) -> Identity:
    """The identity decided at request time (identified again if the event was missed)."""
    identity = getattr(assoc, _ATTR, None)
    if isinstance(identity, Identity):
        return identity
    try:
        identity = identify(core.settings, calling_aet(assoc), str(assoc.requestor.address),
                            tls_client_cert=has_client_certificate(assoc))
    except Forbidden:
        return Identity(calling_aet(assoc), None, Kind.DIMSE, None, str(assoc.requestor.address))
    setattr(assoc, _ATTR, identity)
    return identity

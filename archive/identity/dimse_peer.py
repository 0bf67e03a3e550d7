"""DIMSE callers: the calling AE title → Identity (issue 12 §1, "DIMSE peers").

An AE title is only a claim; the address it calls from is what backs it:
* with `--restrict-peers`, only configured peers may associate, and only from their host;
* a configured peer calling from its host (`--peer AET=HOST:PORT@SITE`) is a contributor for
  SITE (or for a site named after its AE title when no @SITE is given);
* an AE title in ARCHIVE_CURATOR_AETS is a curator only as a configured peer calling from its
  host, or over DICOM TLS with a verified client certificate;
* without `--restrict-peers` anyone else is a contributor for a site named after its AE title
  (a hospital-internal archive's behaviour) and never more.
"""

from __future__ import annotations

import ipaddress
import socket

from archive.config import Peer, Settings
from archive.identity.errors import Forbidden
from archive.identity.roles import Identity, Kind, Role


def identify(settings: Settings, calling_aet: str, address: str, *,
             tls_client_cert: bool = False) -> Identity:
    """The identity of an association; Forbidden means reject it (A-ASSOCIATE-RJ)."""
    aet = calling_aet.strip()
    peer = settings.peer(aet)
    from_its_host = peer is not None and host_matches(peer, address)
    if settings.restrict_peers:
        if peer is None:
            raise Forbidden(f"calling AE title {aet!r} is not a configured peer")
        if not from_its_host:
            raise Forbidden(f"calling AE title {aet!r} called from {address}, not from its "
                            f"configured host {peer.host}")
    if aet in settings.curator_aets and (from_its_host or tls_client_cert):
        return Identity(aet, Role.CURATOR, Kind.DIMSE, None, address)
    site = peer.site if (peer is not None and from_its_host and peer.site) else aet
    return Identity(aet, Role.CONTRIBUTOR, Kind.DIMSE, site or None, address)


def host_matches(peer: Peer, address: str) -> bool:
    """True when `address` is the peer's configured host (an IP, or a name resolving to it)."""
    try:
        caller = _normal(address)
    except ValueError:
        return False
    try:
        return caller == _normal(peer.host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(peer.host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return any(caller == _normal(str(info[4][0])) for info in infos)


def _normal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip

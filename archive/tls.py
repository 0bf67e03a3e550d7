"""Transport security: the TLS contexts both doors serve with, and the start-up warning.

HTTPS and DICOM TLS use the same certificate (`--tls-cert`/`--tls-key`). The profile is BCP 195
(RFC 9325) as PS3.15 B.9 "BCP 195 TLS Profile" asks: TLS 1.2 or newer, forward-secret AEAD
ciphers only, no compression, no renegotiation. `--dimse-tls-ca` makes DICOM TLS require and
verify a client certificate (which also lets a curator AE title call from anywhere).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl

from archive.config import Settings
from archive.errors import ConfigError

log = logging.getLogger("archive.tls")

# TLS 1.2 suites of BCP 195 §4.2 (ECDHE/DHE + AES-GCM or ChaCha20); TLS 1.3 suites are all fine.
BCP195_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!SHA1"


def server_context(settings: Settings, client_ca: bool = False) -> ssl.SSLContext | None:
    """A BCP 195 server context, or None when no certificate is configured."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(BCP195_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    try:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
        if client_ca and settings.dimse_tls_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(settings.dimse_tls_ca))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate, key or CA: {exc}") from exc
    return ctx


def http_context(settings: Settings) -> ssl.SSLContext | None:
    return server_context(settings)


def dimse_context(settings: Settings) -> ssl.SSLContext | None:
    """The DICOM TLS listener's context (client certificates required with --dimse-tls-ca)."""
    return server_context(settings, client_ca=True) if settings.dimse_tls_port else None


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warnings(settings: Settings) -> list[str]:
    """What is served in clear on a non-loopback address (said loudly at start)."""
    if is_loopback(settings.host):
        return []
    out = []
    if settings.tls_cert is None:
        out.append(f"HTTP on {settings.host}:{settings.http_port} is NOT encrypted "
                   "(set --tls-cert and --tls-key to serve HTTPS)")
    out.append(f"DIMSE on {settings.host}:{settings.dimse_port} is NOT encrypted"
               + ("" if settings.dimse_tls_port else " (add --dimse-tls-port for DICOM TLS)"))
    return out


def warn_if_exposed(settings: Settings) -> None:
    for line in exposure_warnings(settings):
        log.warning("WARNING: %s; bearer tokens and patient data cross the network in clear", line)

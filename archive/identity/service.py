"""The identity parts a running archive needs, built from Settings in one call.

The composition root calls `start(settings, engine)` once and `close()` at shutdown; doors use
`.authenticator.identify(...)` and `.audit.record(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from archive.config import Settings
from archive.identity.apikeys import ApiKeyStore
from archive.identity.audit import AuditEvent
from archive.identity.audit_log import AuditSink, AuditWriter, query_events
from archive.identity.authenticate import Authenticator
from archive.identity.oidc import OidcConfig, OidcValidator
from archive.identity.syslog import SyslogSender, parse_target
from archive.index.handles import Engine


@dataclass
class IdentityService:
    authenticator: Authenticator
    audit: AuditWriter
    syslog: SyslogSender | None
    engine: Engine | None = None

    async def events(self, *, actor: str | None = None, study: str | None = None,
                     action: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, after: int = 0,
                     limit: int = 1000) -> list[tuple[int, AuditEvent]]:
        """Audit events in order, filtered (what `GET /commons/audit` answers); events recorded
        so far are flushed first so a caller sees its own last action."""
        assert self.engine is not None
        await self.audit.flush()
        async with self.engine.connect() as conn:
            return await query_events(conn, actor=actor, study=study, action=action,
                                      since=since, until=until, after_pk=after, limit=limit)

    async def close(self) -> None:
        await self.audit.close()
        if self.syslog is not None:
            await self.syslog.close()
        await self.authenticator.close()


def start(settings: Settings, engine: Engine) -> IdentityService:
    """Build and start the audit writer (and syslog sender) and the authenticator.

    Must run inside the server's event loop; raises ConfigError for an OIDC issuer without an
    audience.
    """
    oidc_config = OidcConfig.from_settings(settings)
    syslog = None
    sinks: list[AuditSink] = []
    if settings.audit_syslog:
        host, port = parse_target(settings.audit_syslog)
        syslog = SyslogSender(host, port, audit_source=settings.ae_title)
        syslog.start()
        sinks.append(syslog)
    audit = AuditWriter(engine, sinks=sinks)
    audit.start()
    authenticator = Authenticator(
        anonymous_role=settings.anonymous_role, curator_token=settings.curator_token,
        keys=ApiKeyStore(engine), oidc=OidcValidator(oidc_config) if oidc_config else None,
        audit=audit)
    return IdentityService(authenticator, audit, syslog, engine)

"""Resource limits of the DIMSE listener (issue 13), from Settings: one peer cannot take all
memory (maximum PDU size, enforced on the announced length before reading), all slots
(maximum associations) or hold sockets forever (ARTIM and idle timeouts)."""

from __future__ import annotations

from typing import Any

from pynetdicom import AE, evt

from archive.config import Settings
from archive.metrics import Metrics

# an A-ASSOCIATE-RQ is not a P-DATA PDU and may exceed a tiny maximum: allow this much over it
PDU_SLACK = 64 * 1024


def apply_limits(ae: AE, settings: Settings) -> None:
    """Set the AE's limits; `dimse.tuning`'s socket reader enforces `maximum_pdu_size`."""
    ae.maximum_pdu_size = settings.dimse_max_pdu
    ae.network_timeout = settings.dimse_idle_timeout
    ae.acse_timeout = settings.dimse_artim_timeout
    ae.dimse_timeout = 600
    ae.maximum_associations = settings.dimse_max_associations


def receive_limit(ae: AE | None) -> int:
    """The longest PDU body this AE accepts (0: no limit)."""
    size = int(getattr(ae, "maximum_pdu_size", 0) or 0)
    return size + PDU_SLACK if size else 0


ASSOCIATION_EVENTS = {"accepted": evt.EVT_ACCEPTED, "rejected": evt.EVT_REJECTED,
                      "aborted": evt.EVT_ABORTED, "released": evt.EVT_RELEASED}


def association_counters(metrics: Metrics) -> list[tuple[Any, Any]]:
    """Event handlers counting associations by outcome (archive_dimse_associations_total)."""
    def counter(name: str) -> Any:
        return lambda event: metrics.associations.labels(name).inc()
    return [(event, counter(name)) for name, event in ASSOCIATION_EVENTS.items()]

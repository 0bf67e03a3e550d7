"""Resource limits of the DIMSE listener (issue 13), from Settings: one peer cannot take all
memory (maximum PDU size, enforced on the announced length before reading), all slots
(maximum associations overall and per calling AE title) or hold sockets forever (ARTIM and
idle timeouts)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from pynetdicom import AE, evt

from archive.config import Settings
from archive.metrics import Metrics

log = logging.getLogger("dimse.limits")

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


# A-ASSOCIATE-RJ result "rejected-transient", source "service-provider (presentation)",
# reason "local-limit-exceeded" (PS3.8 §9.3.4): what pynetdicom sends for its overall limit
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)


def _calling_aet(assoc: Any) -> str | None:
    primitive = getattr(getattr(assoc, "requestor", None), "primitive", None)
    if primitive is None:  # still waiting for its A-ASSOCIATE-RQ: not yet anyone's
        return None
    aet = primitive.calling_ae_title
    return (aet.decode(errors="replace") if isinstance(aet, bytes) else str(aet)).strip()


def _holds_slot(assoc: Any) -> bool:
    return bool(assoc.is_alive() and assoc.is_acceptor and not assoc.is_rejected
                and not assoc.is_aborted and not assoc.is_released)


def per_ae_limit(settings: Settings) -> tuple[Any, Any]:
    """An EVT_REQUESTED handler rejecting an association when its calling AE title already
    holds `dimse_max_associations_per_ae` others (0: no limit), so one modality or script
    cannot take every slot of `dimse_max_associations` and lock the other AEs out.

    pynetdicom has only the overall limit, so this counts the AE's live acceptor associations
    itself. Decisions are serialised by a lock and a rejected association stops counting at
    once, so simultaneous requests from one AE get exactly the limit, not fewer. Bound after
    the identity handler (dimse.peers): an association it already rejected is left alone."""
    limit = settings.dimse_max_associations_per_ae
    lock = threading.Lock()

    def handler(event: Any) -> None:
        assoc = event.assoc
        if limit <= 0 or assoc.is_rejected or assoc.is_aborted:
            return
        aet = _calling_aet(assoc)
        with lock:
            held = sum(1 for a in assoc.ae.active_associations
                       if a is not assoc and _holds_slot(a) and _calling_aet(a) == aet)
            if held < limit:
                return
            log.warning("association rejected: calling AE %s already holds %d associations "
                        "(limit %d)", aet, held, limit,
                        extra={"calling_ae": aet, "address": str(assoc.requestor.address)})
            assoc.acse.send_reject(*LOCAL_LIMIT_EXCEEDED)  # sets is_rejected under the lock
        evt.trigger(assoc, evt.EVT_REJECTED, {})  # counted like pynetdicom's own rejections
        assoc.kill()  # as pynetdicom does: the DUL sends the A-ASSOCIATE-RJ, then closes

    return (evt.EVT_REQUESTED, handler)

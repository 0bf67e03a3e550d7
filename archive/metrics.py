"""Prometheus metrics of one archive (issue 13), served at /metrics.

Each Core owns its own registry (no process-global state: tests run several archives in one
process). prometheus-client is the reference Python client; its exposition format is what
Prometheus and Grafana read (docs/grafana-dashboard.json).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Gauges(Collector):
    """Gauges read at scrape time (pool usage, queue depths) from callables."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, Callable[[], float]]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (doc, read) in self.sources.items():
            try:
                value = float(read())
            except Exception:  # a source that cannot answer (engine closed) is left out
                continue
            yield GaugeMetricFamily(name, doc, value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("archive_http_requests", "HTTP requests by route and status",
                                     ["method", "route", "status"], registry=r)
        self.associations = Counter("archive_dimse_associations",
                                    "DIMSE associations by event (accepted, rejected, aborted)",
                                    ["event"], registry=r)
        self.ingest_seconds = Histogram("archive_ingest_seconds", "time to store and index a batch",
                                        registry=r)
        self.batch_size = Histogram("archive_ingest_batch_size", "instances per group commit",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.bytes_stored = Counter("archive_bytes_stored", "bytes of instances made durable",
                                    registry=r)
        self.instances_stored = Counter("archive_instances_stored", "instances made durable",
                                        registry=r)
        self.errors = Counter("archive_errors", "errors by kind (exception class) and door",
                              ["door", "kind"], registry=r)
        self._gauges = _Gauges()
        r.register(self._gauges)

    def gauge(self, name: str, doc: str, read: Callable[[], Any]) -> None:
        """Register a gauge read at scrape time."""
        self._gauges.sources[name] = (doc, read)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

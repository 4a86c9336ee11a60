"""``/metrics``: the library's counters and store-derived gauges in Prometheus text format.

Built per scrape by a custom collector on a registry of our own (never the
global one, so a host application's metrics are not mixed in):

- ``eventtracking_counter_total{counter}``: every process-wide self-metric of
  this process (`eventtracking.diagnostics.snapshot`);
- ``eventtracking_delivery_*{backend,pid}``: each delivery worker's counters
  (emitted, delivered, retried, dead-lettered, dropped by reason) and gauges
  (queue depth, journal bytes, circuit open, latency p50/p99);
- ``eventtracking_dead_letters{backend}``: dead letters kept;
- ``eventtracking_store_events{name}`` and ``eventtracking_store_newest_event_timestamp_seconds``:
  what the store holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final

from ..exceptions import MissingExtraError

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("prometheus_client", "console") from exc

from .. import diagnostics
from .health import Health

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
_COUNTERS: Final = ("emitted", "delivered", "retried", "dead_lettered", "failures", "batches")
_GAUGES: Final = ("queue_depth", "in_flight", "journal_bytes", "journal_unread")


class _Collector(Collector):
    def __init__(
        self,
        health: Callable[[], Health],
        store_counts: Callable[[], tuple[list[tuple[str, int]], datetime | None]],
    ) -> None:
        self._health = health
        self._store_counts = store_counts

    def collect(self) -> Iterator[Metric]:
        counters = CounterMetricFamily(
            "eventtracking_counter", "Self-metrics of this process, by name.", labels=["counter"]
        )
        for name, value in sorted(diagnostics.snapshot().items()):
            counters.add_metric([name], value)
        yield counters
        yield from _delivery(self._health())
        by_name, newest = self._store_counts()
        stored = GaugeMetricFamily(
            "eventtracking_store_events", "Events held in the store, by name.", labels=["name"]
        )
        for name, count in by_name:
            stored.add_metric([name], count)
        yield stored
        newest_metric = GaugeMetricFamily(
            "eventtracking_store_newest_event_timestamp_seconds",
            "Timestamp of the newest stored event (0 when the store is empty).",
        )
        newest_metric.add_metric([], newest.timestamp() if newest else 0.0)
        yield newest_metric


def _delivery(health: Health) -> Iterator[Metric]:
    labels = ["backend", "pid"]
    families: dict[str, Any] = {
        key: CounterMetricFamily(
            f"eventtracking_delivery_{key}", f"Delivery worker counter: {key}.", labels=labels
        )
        for key in _COUNTERS
    }
    dropped = CounterMetricFamily(
        "eventtracking_delivery_dropped",
        "Events a delivery worker dropped, by reason.",
        labels=[*labels, "reason"],
    )
    gauges: dict[str, Any] = {
        key: GaugeMetricFamily(
            f"eventtracking_delivery_{key}", f"Delivery worker gauge: {key}.", labels=labels
        )
        for key in (*_GAUGES, "circuit_open")
    }
    latency = GaugeMetricFamily(
        "eventtracking_delivery_latency_seconds",
        "Delivery latency over the recent past, by quantile.",
        labels=[*labels, "quantile"],
    )
    for worker in health.workers:
        key_labels = [str(worker.get("name")), str(worker.get("pid"))]
        for key in _COUNTERS:
            families[key].add_metric(key_labels, float(worker.get(key) or 0))
        for reason, count in sorted((worker.get("dropped") or {}).items()):
            dropped.add_metric([*key_labels, reason], float(count))
        for key in _GAUGES:
            gauges[key].add_metric(key_labels, float(worker.get(key) or 0))
        gauges["circuit_open"].add_metric(key_labels, 1.0 if worker.get("circuit_open") else 0.0)
        for quantile, field in (("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms")):
            if worker.get(field) is not None:
                latency.add_metric([*key_labels, quantile], float(worker[field]) / 1000)
    yield from families.values()
    yield dropped
    yield from gauges.values()
    yield latency
    dead = GaugeMetricFamily(
        "eventtracking_dead_letters", "Dead letters kept, by backend.", labels=["backend"]
    )
    totals: dict[str, int] = {}
    for counts in health.dead.values():
        for backend, count in counts.items():
            totals[backend] = totals.get(backend, 0) + count
    for backend, count in sorted(totals.items()):
        dead.add_metric([backend], count)
    yield dead


def exposition(
    health: Callable[[], Health],
    store_counts: Callable[[], tuple[list[tuple[str, int]], datetime | None]],
) -> bytes:
    """The Prometheus text exposition of everything above, as of now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(health, store_counts))
    return generate_latest(registry)

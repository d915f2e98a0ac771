"""The integrations' Prometheus metrics, read at scrape time from the service and its webhooks
(listed with every other metric in the table of ``cti_server.health.metrics``): public events
made by type, open stream clients, and per webhook the events delivered, retried, given up, dropped
from a full queue, and waiting now."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cti_server.integrations.service import IntegrationService

_WEBHOOK_COUNTERS = (
    ("delivered", "cti_webhook_delivered", "Events a webhook receiver took (2xx)"),
    ("retried", "cti_webhook_retries", "Webhook tries that failed and were tried again"),
    ("failed", "cti_webhook_failed", "Events given up after every try"),
    ("dropped", "cti_webhook_dropped", "Events pushed out of a full webhook queue"),
)


class IntegrationsCollector(Collector):
    def __init__(self, service: IntegrationService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        made = CounterMetricFamily(
            "cti_public_events", "Public events made for streams and webhooks", labels=["type"]
        )
        for kind, count in sorted(self._service.sent_by_type.items()):
            made.add_metric([kind], count)
        yield made
        clients = GaugeMetricFamily("cti_event_stream_clients", "Open event stream websockets")
        clients.add_metric([], len(self._service.receivers))
        yield clients
        hooks = self._service.webhooks.hooks
        for attribute, name, text in _WEBHOOK_COUNTERS:
            counter = CounterMetricFamily(name, text, labels=["webhook"])
            for hook in hooks:
                counter.add_metric([hook.name], getattr(hook.stats, attribute))
            yield counter
        queued = GaugeMetricFamily(
            "cti_webhook_queued", "Events waiting for a webhook receiver", labels=["webhook"]
        )
        for hook in hooks:
            queued.add_metric([hook.name], hook.status()["queued"])
        yield queued

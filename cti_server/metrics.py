"""Prometheus metrics, read from the live parts at scrape time (no global registry)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cti_server.bus import MemoryBus
from cti_server.recorder.recorder import Recorder
from cti_server.speech.metrics import transcription_metrics
from cti_server.speech.pool import DecodePool
from cti_server.telephony.ami_client import AmiClient
from cti_server.tracker.tracker import Tracker
from cti_server.watchdog import LoopWatchdog


class CtiCollector(Collector):
    def __init__(
        self,
        tracker: Tracker,
        links: list[AmiClient],
        recorder: Recorder,
        bus: MemoryBus,
        watchdog: LoopWatchdog,
        *,
        decoding: DecodePool | None = None,
    ) -> None:
        self._watchdog = watchdog
        self._decoding = decoding
        self._tracker = tracker
        self._links = links
        self._recorder = recorder
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        yield from self._calls()
        yield from self._queues(now)
        yield from self._links_metrics()
        recorder = self._recorder.status()
        spooled = GaugeMetricFamily("cti_recorder_spooled", "Interaction writes not yet in the CRM")
        spooled.add_metric([], recorder["spooled"])
        yield spooled
        written = CounterMetricFamily("cti_recorder_written", "Interaction writes stored")
        written.add_metric([], recorder["written"])
        yield written
        lag = GaugeMetricFamily("cti_event_loop_lag_seconds", "Event loop lag, last sample")
        lag.add_metric([], self._watchdog.last_lag)
        yield lag
        stalls = CounterMetricFamily("cti_event_loop_stalls", "Times the loop was blocked > 2 s")
        stalls.add_metric([], self._watchdog.stalls)
        yield stalls
        bus = self._bus.status()
        dropped = CounterMetricFamily("cti_bus_dropped", "Events dropped by slow subscribers")
        dropped.add_metric([], bus["dropped"])
        yield dropped
        if self._decoding is not None:
            yield from transcription_metrics(self._decoding)

    def _calls(self) -> Iterator[Metric]:
        calls = GaugeMetricFamily("cti_calls", "Live calls by state", labels=["node", "state"])
        counts = Counter((c.node, c.state.value) for c in self._tracker.calls.values())
        for (node, state), count in sorted(counts.items()):
            calls.add_metric([node, state], count)
        yield calls
        agents = GaugeMetricFamily("cti_agents", "Agents by state", labels=["node", "state"])
        agent_counts = Counter((a.node, a.state.value) for a in self._tracker.agents.values())
        for (node, state), count in sorted(agent_counts.items()):
            agents.add_metric([node, state], count)
        yield agents

    def _queues(self, now: datetime) -> Iterator[Metric]:
        labels = ["node", "queue"]
        families = {
            "waiting": GaugeMetricFamily("cti_queue_waiting", "Callers waiting", labels=labels),
            "longest": GaugeMetricFamily(
                "cti_queue_longest_wait_seconds", "Longest wait now", labels=labels
            ),
            "sl": GaugeMetricFamily(
                "cti_queue_service_level", "Share answered within the SL time", labels=labels
            ),
            "asa": GaugeMetricFamily(
                "cti_queue_asa_seconds", "Average speed of answer", labels=labels
            ),
            "aht": GaugeMetricFamily("cti_queue_aht_seconds", "Average handle time", labels=labels),
            "abandon": GaugeMetricFamily(
                "cti_queue_abandon_rate", "Share of callers abandoning", labels=labels
            ),
        }
        offered = CounterMetricFamily(
            "cti_queue_offered", "Calls that entered the queue", labels=labels
        )
        for stats in self._tracker.queues.values():
            key = [stats.node, stats.name]
            families["waiting"].add_metric(key, len(stats.waiting))
            families["longest"].add_metric(key, stats.longest_wait(now))
            families["sl"].add_metric(key, stats.service_level)
            families["asa"].add_metric(key, stats.asa)
            families["aht"].add_metric(key, stats.aht)
            families["abandon"].add_metric(key, stats.abandon_rate)
            offered.add_metric(key, stats.offered)
        yield from families.values()
        yield offered

    def _links_metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("cti_ami_connected", "AMI link up (1) or down (0)", labels=["node"])
        events = CounterMetricFamily("cti_ami_events", "AMI events received", labels=["node"])
        reconnects = CounterMetricFamily(
            "cti_ami_reconnects", "AMI reconnect attempts", labels=["node"]
        )
        depth = GaugeMetricFamily(
            "cti_ami_inbox_depth", "AMI messages read, not yet processed", labels=["node"]
        )
        peak = GaugeMetricFamily(
            "cti_ami_inbox_peak", "Highest AMI inbox depth since start", labels=["node"]
        )
        capacity = GaugeMetricFamily(
            "cti_ami_inbox_capacity", "AMI inbox size; full drops the link", labels=["node"]
        )
        behind = CounterMetricFamily(
            "cti_ami_inbox_behind",
            "Times AMI processing passed the high-water mark",
            labels=["node"],
        )
        overflows = CounterMetricFamily(
            "cti_ami_inbox_overflows",
            "Times the AMI inbox was full (link dropped)",
            labels=["node"],
        )
        for link in self._links:
            status = link.status
            up.add_metric([status.node], 1 if status.connected else 0)
            events.add_metric([status.node], status.events)
            reconnects.add_metric([status.node], status.reconnects)
            inbox = link.inbox.stats
            depth.add_metric([status.node], inbox.depth)
            peak.add_metric([status.node], inbox.peak)
            capacity.add_metric([status.node], inbox.capacity)
            behind.add_metric([status.node], inbox.behind)
            overflows.add_metric([status.node], inbox.overflows)
        yield from (up, events, reconnects, depth, peak, capacity, behind, overflows)


def make_registry(collector: CtiCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry

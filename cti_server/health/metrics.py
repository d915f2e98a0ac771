"""Prometheus metrics, read from the live parts at scrape time (no global registry).

Named as Prometheus users expect (https://prometheus.io/docs/practices/naming/): the unit in the
name (``_seconds``), counters end in ``_total``, a gauge only for a value true at the instant of
the scrape. Nothing here is an average or a share since start: those cannot be added up across
queues or servers, their sums and counts can. For instance, over the last hour:

- ASA: ``sum(increase(cti_queue_answer_wait_seconds_sum[1h]))`` / the same of ``_count``
- AHT: the same with ``cti_queue_handle_time_seconds``
- service level: ``cti_queue_answered_within_service_level_total`` over
  ``cti_queue_answer_wait_seconds_count`` + ``cti_queue_abandoned_total`` (each increased)
- abandon ratio: ``cti_queue_abandoned_total`` over the same sum

name                                          type      labels         meaning
--------------------------------------------- --------- -------------- -----------------------
cti_build_info                                gauge     version,python 1; the release, Python's
cti_calls                                     gauge     node,state     live calls
cti_agents                                    gauge     node,state     agents (available, ...)
cti_queue_waiting                             gauge     node,queue     callers waiting now
cti_queue_longest_wait_seconds                gauge     node,queue     the longest of their waits
cti_queue_service_level_target_seconds        gauge     node,queue     "answered within" this
cti_queue_offered_total                       counter   node,queue     callers who began to wait
cti_queue_abandoned_total                     counter   node,queue     hung up while waiting
cti_queue_answered_within_service_level_total counter   node,queue     answered within target
cti_queue_answer_wait_seconds                 histogram node,queue     answered callers' waits
cti_queue_handle_time_seconds                 histogram node,queue     completed calls' talk
cti_ami_connected                             gauge     node           AMI link up 1, down 0
cti_ami_events_total                          counter   node           AMI events received
cti_ami_reconnects_total                      counter   node           reconnect attempts
cti_ami_inbox_depth                           gauge     node           messages not yet handled
cti_ami_inbox_peak                            gauge     node           the highest since start
cti_ami_inbox_capacity                        gauge     node           the depth that drops it
cti_ami_inbox_behind_total                    counter   node           times past high water
cti_ami_inbox_overflows_total                 counter   node           times full (dropped)
cti_recorder_spooled                          gauge                    writes not yet in the CRM
cti_recorder_written_total                    counter                  writes stored in the CRM
cti_event_loop_lag_seconds                    gauge                    the last lag sample
cti_event_loop_stalls_total                   counter                  times blocked for over 2 s
cti_bus_dropped_total                         counter                  events subscribers lost
cti_transcription_*                           both                     see ``speech.metrics``
cti_public_events_total                       counter   type           events for integrators
cti_event_stream_clients                      gauge                    open /api/events/stream
cti_webhook_delivered_total                   counter   webhook        taken by the receiver
cti_webhook_retries_total                     counter   webhook        tries failed, tried again
cti_webhook_failed_total                      counter   webhook        given up after every try
cti_webhook_dropped_total                     counter   webhook        lost from a full queue
cti_webhook_queued                            gauge     webhook        waiting now
cti_login_failures_total                      counter   reason         sign-ins refused
process_*, python_info, python_gc_*           both      generation     prometheus_client's

The counters count since this process started (``rate`` and ``increase`` take a restart in their
stride); a caller answered in two queues they waited for counts in both. Handle time is the talk
time app_queue reports when the agent's call completes (wrap-up is not in it). Servers that follow
the same Asterisk node (a standby beside the leader) report the same calls: take one per ``node``
(``max by (node, queue, le)``) before adding nodes up.
"""

from __future__ import annotations

import math
import platform
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cti_server.bus import MemoryBus
from cti_server.health.version import release
from cti_server.health.watchdog import LoopWatchdog
from cti_server.recorder.recorder import Recorder
from cti_server.speech.metrics import transcription_metrics
from cti_server.speech.pool import DecodePool
from cti_server.telephony.ami_client import AmiClient
from cti_server.tracker.model import Durations
from cti_server.tracker.tracker import Tracker


def build_info() -> dict[str, str]:
    """The labels of ``cti_build_info``: the installed release of this package and Python's."""
    return {"version": release(), "python": platform.python_version()}


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
        self._build = build_info()

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        build = InfoMetricFamily("cti_build", "The running release of cti-server, and Python's")
        build.add_metric([], self._build)
        yield build
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
        counts = Counter((c.node, c.state.value) for c in self._tracker.live_calls())
        for (node, state), count in sorted(counts.items()):
            calls.add_metric([node, state], count)
        yield calls
        agents = GaugeMetricFamily("cti_agents", "Agents by state", labels=["node", "state"])
        agent_counts = Counter((a.node, a.state.value) for a in self._tracker.all_agents())
        for (node, state), count in sorted(agent_counts.items()):
            agents.add_metric([node, state], count)
        yield agents

    def _queues(self, now: datetime) -> Iterator[Metric]:
        labels = ["node", "queue"]
        waiting = GaugeMetricFamily("cti_queue_waiting", "Callers waiting now", labels=labels)
        longest = GaugeMetricFamily(
            "cti_queue_longest_wait_seconds", "Longest wait of the callers now", labels=labels
        )
        target = GaugeMetricFamily(
            "cti_queue_service_level_target_seconds",
            "Callers answered within this wait count as within the service level",
            labels=labels,
        )
        offered = CounterMetricFamily(
            "cti_queue_offered", "Callers who began to wait for the queue", labels=labels
        )
        abandoned = CounterMetricFamily(
            "cti_queue_abandoned", "Callers who hung up while waiting", labels=labels
        )
        within = CounterMetricFamily(
            "cti_queue_answered_within_service_level",
            "Callers answered within the queue's service-level target",
            labels=labels,
        )
        waits = HistogramMetricFamily(
            "cti_queue_answer_wait_seconds",
            "Whole wait of the callers an agent answered (ASA: _sum / _count)",
            labels=labels,
        )
        handling = HistogramMetricFamily(
            "cti_queue_handle_time_seconds",
            "Talk time of the queue's calls agents completed (AHT: _sum / _count)",
            labels=labels,
        )
        for stats in self._tracker.all_queues():
            key = [stats.node, stats.name]
            waiting.add_metric(key, len(stats.waiting))
            longest.add_metric(key, stats.longest_wait(now))
            target.add_metric(key, stats.service_level_seconds)
            offered.add_metric(key, stats.offered)
            abandoned.add_metric(key, stats.abandoned)
            within.add_metric(key, stats.answered_within_sl)
            waits.add_metric(key, _buckets(stats.answer_waits), stats.answer_waits.total)
            handling.add_metric(key, _buckets(stats.handle_times), stats.handle_times.total)
        yield from (waiting, longest, target, offered, abandoned, within, waits, handling)

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


def _buckets(durations: Durations) -> list[tuple[str, float]]:
    """Prometheus' ``le`` labels: the bound as a float, the last one ``+Inf``."""
    return [("+Inf" if math.isinf(b) else str(b), n) for b, n in durations.cumulative()]


def make_registry(collector: CtiCollector) -> CollectorRegistry:
    """What ``/metrics`` exposes: ours, and prometheus_client's process (CPU, memory, open
    files), platform (``python_info``) and garbage-collector metrics, on a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry

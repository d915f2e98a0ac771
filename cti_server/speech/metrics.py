"""Transcription's back-pressure as Prometheus metrics: how many calls were decoded live, sent
to post-call (no room, or a live stream behind), fell behind, failed, and what waits now."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from cti_server.speech.pool import DecodePool

_COUNTERS = (
    ("live_calls", "cti_transcription_live_admitted", "Calls admitted to live transcription"),
    (
        "refused_live",
        "cti_transcription_live_refused",
        "Calls refused live transcription (no room, or a live stream behind): post-call",
    ),
    (
        "refused_lagging",
        "cti_transcription_live_refused_lagging",
        "Of those refused, because a live stream was behind",
    ),
    (
        "degraded_calls",
        "cti_transcription_fell_behind",
        "Live calls whose decoding fell behind: post-call",
    ),
    ("post_call_calls", "cti_transcription_post_call", "Calls transcribed from recordings"),
    ("transcribed_calls", "cti_transcription_transcribed", "Calls with a stored transcript"),
    ("failed_calls", "cti_transcription_failed", "Calls that could not be transcribed"),
    ("segments", "cti_transcription_segments", "Transcript segments stored"),
)


def transcription_metrics(pool: DecodePool) -> Iterator[Metric]:
    for attribute, name, text in _COUNTERS:
        counter = CounterMetricFamily(name, text)
        counter.add_metric([], getattr(pool.counters, attribute))
        yield counter
    for name, text, value in (
        ("cti_transcription_live_now", "Calls being transcribed live", pool.live_now),
        ("cti_transcription_live_capacity", "Live calls the pool admits", pool.capacity),
        ("cti_transcription_live_lag_seconds", "Largest live stream lag now", pool.lag_seconds),
        (
            "cti_transcription_post_call_backlog",
            "Calls waiting for or in post-call decoding",
            pool.post_call_backlog,
        ),
    ):
        gauge = GaugeMetricFamily(name, text)
        gauge.add_metric([], value)
        yield gauge

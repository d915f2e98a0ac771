"""Refused sign-ins on ``/metrics`` (listed with every other metric in
``cti_server.health.metrics``): ``cti_login_failures_total{reason}``, read at scrape
time from the one :class:`LoginGuard`."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from crm_core.login_throttle import LoginGuard, Refusal


class LoginCollector(Collector):
    def __init__(self, guard: LoginGuard) -> None:
        self._guard = guard

    def collect(self) -> Iterator[Metric]:
        refused = CounterMetricFamily(
            "cti_login_failures",
            "Sign-ins refused (desktop and API): wrong credentials, account or address locked",
            labels=["reason"],
        )
        for reason in Refusal:
            refused.add_metric([reason.value], self._guard.failures[reason])
        yield refused

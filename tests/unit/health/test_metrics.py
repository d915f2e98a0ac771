"""/metrics as a Prometheus user reads it: names that follow the conventions, queue figures that
add up across queues and servers, the process's own metrics and the running release."""

from __future__ import annotations

import math
import platform
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import cti_server.health.metrics
from cti_server.app import TRACKER, build_app
from cti_server.config import (
    AgiSettings,
    AmiSettings,
    DatabaseSettings,
    RecorderSettings,
    Settings,
)
from cti_server.telephony.ami_events import translate
from tests.support.ports import free_port

NODE = "pbx1"
TIME_WORDS = {"time", "wait", "lag", "duration", "latency", "age", "delay"}
AVERAGES = {"percent", "percentage", "pct", "rate", "avg", "average", "mean", "asa", "aht"}


@dataclass
class Server:
    """The whole server, started (its AMI link finds no Asterisk, which is fine here)."""

    client: TestClient[Any, Any]
    settings: Settings

    def ami(self, event: str, **headers: str) -> None:
        """An AMI event as Asterisk would send it, through the translator into the tracker."""
        translated = translate({"Event": event, **headers}, NODE)
        assert translated is not None, event
        self.client.app[TRACKER].apply(translated)

    async def scrape(self) -> dict[str, Any]:
        """Every metric family of /metrics by name, parsed as Prometheus parses them."""
        response = await self.client.get("/metrics")
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
        return {family.name: family for family in text_string_to_metric_families(text)}


@pytest_asyncio.fixture
async def server(sqlite_crm_template: Path, tmp_path: Path) -> AsyncIterator[Server]:
    shutil.copyfile(sqlite_crm_template, tmp_path / "crm.db")
    settings = Settings(
        ami=AmiSettings(port=free_port(), secret="metrics-test", node=NODE),
        agi=AgiSettings(port=free_port()),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}"),
        recorder=RecorderSettings(spool_path=tmp_path / "spool.jsonl"),
    )
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(settings)))
    await client.start_server()
    try:
        yield Server(client, settings)
    finally:
        await client.close()


def _caller(server: Server, linkedid: str, queue: str) -> None:
    channel = f"PJSIP/trunk-{linkedid}"
    server.ami("Newchannel", Uniqueid=linkedid, Linkedid=linkedid, Channel=channel)
    server.ami("QueueCallerJoin", Queue=queue, Uniqueid=linkedid, Linkedid=linkedid, Position="1")


def _answered(server: Server, linkedid: str, queue: str, hold: int) -> None:
    member = {"Queue": queue, "Interface": "PJSIP/2101", "MemberName": "Alice"}
    ids = {"Uniqueid": linkedid, "Linkedid": linkedid, "DestUniqueid": f"{linkedid}.2"}
    server.ami("AgentCalled", **member, **ids)
    server.ami("AgentConnect", **member, **ids, HoldTime=str(hold), RingTime="2")


def _completed(server: Server, linkedid: str, queue: str, talk: int) -> None:
    member = {"Queue": queue, "Interface": "PJSIP/2101", "MemberName": "Alice"}
    ids = {"Uniqueid": linkedid, "Linkedid": linkedid, "DestUniqueid": f"{linkedid}.2"}
    server.ami("AgentComplete", **member, **ids, TalkTime=str(talk), Reason="caller")
    server.ami("Hangup", Uniqueid=linkedid, Linkedid=linkedid, Channel=f"PJSIP/trunk-{linkedid}")


def _abandoned(server: Server, linkedid: str, queue: str) -> None:
    ids = {"Queue": queue, "Uniqueid": linkedid, "Linkedid": linkedid}
    server.ami("QueueCallerAbandon", **ids, HoldTime="40")
    server.ami("QueueCallerLeave", **ids)
    server.ami("Hangup", Uniqueid=linkedid, Linkedid=linkedid, Channel=f"PJSIP/trunk-{linkedid}")


def _value(families: dict[str, Any], sample: str, **labels: str) -> float:
    """The value of one sample (``x_total``, ``x_bucket``...) with exactly these labels."""
    (value,) = [
        s.value
        for family in families.values()
        for s in family.samples
        if s.name == sample and s.labels == labels
    ]
    return float(value)


def _queue(queue: str, **more: str) -> dict[str, str]:
    return {"node": NODE, "queue": queue, **more}


async def _with_traffic(server: Server) -> dict[str, Any]:
    """A scrape after one answered and completed call and one abandoned caller."""
    _caller(server, "1.1", "support")
    _answered(server, "1.1", "support", hold=12)
    _completed(server, "1.1", "support", talk=95)
    _caller(server, "2.1", "support")
    _abandoned(server, "2.1", "support")
    return await server.scrape()


@pytest.mark.asyncio
async def test_every_metric_is_named_as_prometheus_users_expect(server: Server) -> None:
    families = await _with_traffic(server)
    assert any(name.startswith("cti_queue_") for name in families)  # the queue's too
    for name, family in families.items():
        words = set(name.split("_"))
        assert name.startswith(("cti_", "process_", "python_")), name
        assert family.documentation, f"{name} has no HELP"
        assert not words & AVERAGES, f"{name}: an average or a share; expose sums and counts"
        if words & TIME_WORDS:
            assert name.endswith("_seconds"), f"{name}: a duration without its unit"
        if family.type == "counter":
            names = {s.name for s in family.samples} - {f"{name}_created"}
            assert names <= {f"{name}_total"}, f"{name}: a counter must end in _total"
        if family.type == "gauge":
            assert not name.endswith("_total"), f"{name}: a gauge named as a counter"
        if name.endswith("_ratio"):
            assert all(0 <= s.value <= 1 for s in family.samples), f"{name}: a ratio is 0..1"
        if family.type == "histogram":
            _assert_histogram(family.samples)


def _assert_histogram(samples: list[Sample]) -> None:
    """Each series: buckets by growing bound, never fewer below a bigger bound, +Inf = count."""
    series: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
    for sample in samples:
        labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
        series.setdefault(labels, []).append(sample)
    assert series
    for of_series in series.values():
        buckets = [s for s in of_series if s.name.endswith("_bucket")]
        bounds = [float(s.labels["le"]) for s in buckets]
        counts = [s.value for s in buckets]
        assert bounds == sorted(bounds), bounds
        assert math.isinf(bounds[-1]), bounds
        assert counts == sorted(counts), counts
        (count,) = [s.value for s in of_series if s.name.endswith("_count")]
        assert counts[-1] == count


@pytest.mark.asyncio
async def test_answering_and_completing_a_call_are_observed_in_the_queue_histograms(
    server: Server,
) -> None:
    _caller(server, "1.1", "support")
    _answered(server, "1.1", "support", hold=15)
    answered = await server.scrape()
    waits = "cti_queue_answer_wait_seconds"
    handle = "cti_queue_handle_time_seconds"
    assert _value(answered, f"{waits}_count", **_queue("support")) == 1
    assert _value(answered, f"{waits}_sum", **_queue("support")) == 15
    assert _value(answered, f"{waits}_bucket", **_queue("support", le="10.0")) == 0
    assert _value(answered, f"{waits}_bucket", **_queue("support", le="15.0")) == 1  # le: <=
    assert _value(answered, f"{handle}_count", **_queue("support")) == 0  # still talking

    _completed(server, "1.1", "support", talk=95)
    ended = await server.scrape()
    assert _value(ended, f"{handle}_count", **_queue("support")) == 1
    assert _value(ended, f"{handle}_sum", **_queue("support")) == 95
    assert _value(ended, f"{handle}_bucket", **_queue("support", le="60.0")) == 0
    assert _value(ended, f"{handle}_bucket", **_queue("support", le="120.0")) == 1


@pytest.mark.asyncio
async def test_asa_and_service_level_of_several_queues_add_up(server: Server) -> None:
    """Averages of averages are wrong: 1 call waited 10 s in sales, 3 waited 30 s in support,
    the centre's ASA is 25 s (not 20); only sums and counts give it."""
    _caller(server, "1.1", "sales")
    _answered(server, "1.1", "sales", hold=10)
    for n in (2, 3, 4):
        _caller(server, f"{n}.1", "support")
        _answered(server, f"{n}.1", "support", hold=30)
    _caller(server, "5.1", "support")
    _abandoned(server, "5.1", "support")
    families = await server.scrape()
    queues = ("sales", "support")
    waited = sum(_value(families, "cti_queue_answer_wait_seconds_sum", **_queue(q)) for q in queues)
    answered = sum(
        _value(families, "cti_queue_answer_wait_seconds_count", **_queue(q)) for q in queues
    )
    assert waited / answered == 25.0
    within = sum(
        _value(families, "cti_queue_answered_within_service_level_total", **_queue(q))
        for q in queues
    )
    abandoned = sum(_value(families, "cti_queue_abandoned_total", **_queue(q)) for q in queues)
    offered = sum(_value(families, "cti_queue_offered_total", **_queue(q)) for q in queues)
    assert (answered, abandoned, offered) == (4, 1, 5)
    assert within / (answered + abandoned) == 0.2  # only sales' caller, within its 20 s
    target = "cti_queue_service_level_target_seconds"
    assert _value(families, target, **_queue("support")) == 20


@pytest.mark.asyncio
async def test_the_process_and_python_metrics_are_exposed(server: Server) -> None:
    families = await server.scrape()
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"):
        assert families[name].samples[0].value > 0, name
    assert families["process_start_time_seconds"].samples[0].value > 1.7e9
    (python,) = families["python_info"].samples
    assert python.labels["version"] == platform.python_version()
    assert "python_gc_collections" in families


@pytest.mark.asyncio
async def test_build_info_names_the_running_release_and_python(server: Server) -> None:
    families = await server.scrape()
    (build,) = families["cti_build_info"].samples
    assert build.labels == {"version": version("cti-server"), "python": platform.python_version()}
    assert build.value == 1


@pytest.mark.asyncio
async def test_the_docstring_table_lists_every_metric_the_server_exposes(server: Server) -> None:
    """What an operator reads in the module is what they find at /metrics."""
    documented = set((cti_server.health.metrics.__doc__ or "").split())
    families = await _with_traffic(server)
    exposed = {
        f"{name}_total" if family.type == "counter" else name
        for name, family in families.items()
        if name.startswith("cti_") and not name.startswith("cti_transcription_")
    }
    assert "cti_queue_answer_wait_seconds" in exposed
    assert exposed - documented == set()
    assert "cti_transcription_*" in documented  # those are listed in speech.metrics

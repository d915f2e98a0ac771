"""Erlang C against published figures; Erlang A against its exact special cases and the
birth-and-death chain it is (an independent computation), and where it needs fewer agents."""

from __future__ import annotations

import math

import pytest
from scipy import integrate, stats

from cti_server.staffing.erlang import Queue, StaffingError, erlang_b
from cti_server.staffing.targets import (
    AbandonRate,
    AverageSpeedOfAnswer,
    ServiceLevel,
    agents_needed,
    parse_target,
    scheduled,
)

PER_HALF_HOUR = 1 / 1800


def test_erlang_c_matches_the_published_example() -> None:
    """100 calls in 30 minutes, 3-minute handle time, 80 % in 20 s: 14 agents, service level
    0.88835, probability of waiting 0.1741319, ASA 7.836 s, 20 scheduled with 30 % shrinkage.
    Sources: the pyworkforce README (rodrigo-arenas/pyworkforce, ``ErlangC(transactions=100,
    asa=20/60, aht=3, interval=30, shrinkage=0.3)``: raw_positions 14, positions 20,
    service_level 0.8883500191794669, waiting_probability 0.1741319335950498) and the R
    package ErlangC 0.1.0 on CRAN (``erlang_c(100, 30 min, 180 s, 20 s, 14)``: ASA 7.835937 s)."""
    queue = Queue(100 * PER_HALF_HOUR, 180, 14)

    assert agents_needed(100 * PER_HALF_HOUR, 180, ServiceLevel(0.8, 20)) == 14
    assert queue.service_level(20) == pytest.approx(0.8883500191794669, rel=1e-9)
    assert queue.wait_probability == pytest.approx(0.1741319335950498, rel=1e-9)
    assert queue.asa == pytest.approx(7.83593701177724, rel=1e-9)
    assert queue.occupancy == pytest.approx(10 / 14)
    assert scheduled(14, 0.3) == 20


def test_erlang_b_matches_the_textbook_table() -> None:
    """Erlang B, 10 erlangs on 10 lines: 0.2146 (every Erlang B table, e.g. Kleinrock vol. 1)."""
    assert erlang_b(10, 10.0) == pytest.approx(0.21458, abs=5e-5)


def _birth_death(queue: Queue, states: int = 4000) -> tuple[float, float]:
    """P(wait) and P(abandon) of M/M/n+M from its birth-and-death chain, truncated
    (Mandelbaum and Zeltyn 2005, section 3): the abandon rate is θ E[queue] / λ."""
    assert queue.patience_s is not None
    lam, mu, theta, n = queue.calls_per_s, 1 / queue.handle_s, 1 / queue.patience_s, queue.agents
    logs = [0.0]
    for k in range(1, states):
        logs.append(logs[-1] + math.log(lam / (min(k, n) * mu + max(k - n, 0) * theta)))
    top = max(logs)
    weights = [math.exp(v - top) for v in logs]
    total = sum(weights)
    waiting = sum(weights[n:]) / total
    queued = sum((k - n) * w for k, w in enumerate(weights) if k > n) / total
    return waiting, theta * queued / lam


@pytest.mark.parametrize(
    ("calls_per_s", "handle_s", "agents", "patience_s"),
    [
        (100 / 1800, 180, 14, 120),  # the Erlang C example, callers who hang up
        (2880 / 3600, 60, 50, 120),  # 2,880 calls an hour, 1 min, 2 min patience, 50 agents
        (2880 / 3600, 60, 40, 120),  # the same overloaded: Erlang C has no answer
        (0.5, 200, 80, 300),  # a large centre
        (0.05, 180, 3, 60),  # a small one, impatient callers
    ],
)
def test_erlang_a_is_the_birth_and_death_chain(
    calls_per_s: float, handle_s: float, agents: int, patience_s: float
) -> None:
    queue = Queue(calls_per_s, handle_s, agents, patience_s)
    waiting, abandoning = _birth_death(queue)

    assert queue.wait_probability == pytest.approx(waiting, rel=1e-8)
    assert queue.abandon_rate == pytest.approx(abandoning, rel=1e-8)


def test_patience_equal_to_handle_time_gives_a_poisson_number_in_the_system() -> None:
    """With θ = μ every caller leaves at rate μ, waiting or served: the number in the system
    is Poisson(a), so P(wait) = P(N >= n) exactly."""
    queue = Queue(0.1, 120, 12, patience_s=120)

    assert queue.wait_probability == pytest.approx(stats.poisson.sf(11, 12.0), rel=1e-9)


def test_long_patience_tends_to_erlang_c() -> None:
    c = Queue(100 * PER_HALF_HOUR, 180, 14)
    a = Queue(100 * PER_HALF_HOUR, 180, 14, patience_s=1e7)

    assert a.service_level(20) == pytest.approx(c.service_level(20), abs=1e-5)
    assert a.asa == pytest.approx(c.asa, rel=1e-4)
    assert a.abandon_rate < 1e-5


def test_asa_is_the_mean_offered_wait_of_those_answered() -> None:
    """E[wait; answered] = ∫ P(answered after waiting more than t) dt, from the service-level
    curve: an independent path to the ASA."""
    queue = Queue(0.8, 60, 47, patience_s=120)
    answered = queue.service_level(math.inf)
    tail, _ = integrate.quad(lambda t: answered - queue.service_level(t), 0, 3600, limit=200)

    assert queue.asa == pytest.approx(tail / answered, rel=1e-5)


def test_erlang_a_needs_fewer_agents_and_stays_defined_when_overloaded() -> None:
    rate = 2880 / 3600
    target = ServiceLevel(0.8, 20)

    assert agents_needed(rate, 60, target, patience_s=120) < agents_needed(rate, 60, target)
    overloaded = Queue(rate, 60, 40, patience_s=120)
    assert 0 < overloaded.abandon_rate < 1
    assert Queue(rate, 60, 40).service_level(20) == 0.0  # Erlang C: the queue grows for ever


def test_every_target_kind_is_met_by_the_agents_it_asks_for() -> None:
    rate, handle, patience = 0.05, 240, 180
    for target in (ServiceLevel(0.9, 30), AverageSpeedOfAnswer(15), AbandonRate(0.02)):
        n = agents_needed(rate, handle, target, patience_s=patience)
        assert target.met(Queue(rate, handle, n, patience))
        assert not target.met(Queue(rate, handle, n - 1, patience))


def test_no_calls_need_no_agents_and_no_agents_answer_nobody() -> None:
    assert agents_needed(0.0, 180, ServiceLevel(0.8, 20)) == 0
    nobody = Queue(0.01, 180, 0, patience_s=60)
    assert nobody.service_level(20) == 0.0
    assert nobody.abandon_rate == 1.0


def test_targets_are_read_from_text_and_bad_ones_are_refused() -> None:
    assert parse_target("80%/20s") == ServiceLevel(0.8, 20)
    assert parse_target("asa:30s") == AverageSpeedOfAnswer(30)
    assert parse_target("abandon:5%") == AbandonRate(0.05)
    for bad in ("80/20", "120%/20s", "abandon:0%", "fast"):
        with pytest.raises(StaffingError, match="target"):
            parse_target(bad)
    with pytest.raises(StaffingError, match="handle time"):
        Queue(0.1, 0, 3)
    with pytest.raises(StaffingError, match="shrinkage"):
        scheduled(10, 1.0)

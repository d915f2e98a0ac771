"""``cti staffing``: the forecast, and the agents it needs, per queue and interval, with what-ifs.

The history is a traffic file in the bank's format (``--traffic``) or the CRM's interactions
(the settings' database), counted per interval; holidays and closed hours come from the IVR
calendar (``calendar.yaml`` beside the flows).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from cti_server.cli.common import Group, config_option, crm_engine, crm_settings, run

if TYPE_CHECKING:
    from cti_server.ivr.calendar import Calendar
    from cti_server.staffing.forecast import Forecast
    from cti_server.staffing.history import Contact, History
    from cti_server.staffing.replay import Reached
    from cti_server.staffing.targets import Target
    from cti_server.staffing.whatif import Comparison


@dataclass(frozen=True, slots=True)
class Source:
    """The options every ``cti staffing`` command shares: where the history comes from, what
    to forecast, and the forecast's what-if."""

    config_file: Path | None
    traffic_file: Path | None
    days: str | None
    weeks: int
    queue: str
    minutes: str
    method: str
    scale: float | None
    on_day: datetime | None


@click.group(cls=Group)
def staffing() -> None:
    """Forecast offered calls and the agents they need, per queue and interval."""


def _source_options(command: Callable[..., None]) -> Callable[..., None]:
    """Adds the shared options; the command receives them as one :class:`Source`."""

    @functools.wraps(command)
    def with_source(**kwargs: Any) -> None:
        names = Source.__dataclass_fields__
        command(Source(**{k: kwargs.pop(k) for k in names}), **kwargs)

    options = [
        config_option,
        click.option(
            "--traffic",
            "traffic_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="History from a traffic file (the bank's CSV format) instead of the CRM.",
        ),
        click.option(
            "--days",
            default=None,
            help="YYYY-MM-DD or FIRST..LAST to forecast (default: the day after the history).",
        ),
        click.option(
            "--weeks",
            type=click.IntRange(min=1),
            default=4,
            show_default=True,
            help="Weeks of history before the first day forecast.",
        ),
        click.option("--queue", default="all", show_default=True, help="A queue, or all."),
        click.option(
            "--interval",
            "minutes",
            type=click.Choice(["15", "30", "60"]),
            default="30",
            show_default=True,
            help="Minutes per interval.",
        ),
        click.option(
            "--method",
            type=click.Choice(["profile", "seasonal-naive"]),
            default="profile",
            show_default=True,
        ),
        click.option(
            "--scale",
            type=click.FloatRange(min=0),
            default=None,
            help="What-if: offered calls times this factor (on --on, else every day).",
        ),
        click.option(
            "--on",
            "on_day",
            type=click.DateTime(["%Y-%m-%d"]),
            default=None,
            help="The day a what-if applies to (YYYY-MM-DD).",
        ),
    ]
    decorated: Callable[..., None] = with_source
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The contacts, their counts and the forecast a command works from."""

    contacts: list[Contact]
    history: History
    forecast: Forecast
    calendar: Calendar


def _inputs(source: Source) -> _Inputs:
    """The history and the forecast, or exit 2 with what is wrong."""
    from cti_server.routing.traffic import TrafficError, parse_days
    from cti_server.staffing.erlang import StaffingError
    from cti_server.staffing.forecast import METHODS, forecast
    from cti_server.staffing.history import count

    try:
        calendar = _calendar(source)
        wanted = parse_days(source.days) if source.days else None
        contacts = _contacts(source, calendar, wanted)
        history = count(contacts, int(source.minutes))
        if not history.days:
            raise StaffingError("no call in the history: nothing to forecast from")
        ahead = wanted or [history.days[-1] + timedelta(days=1)]
        first = ahead[0] - timedelta(weeks=source.weeks)
        history = history.between(first, ahead[0] - timedelta(days=1))
        queue = source.queue
        if queue not in history.loads:
            raise StaffingError(f"no call in queue {queue!r}: have {sorted(history.loads)}")
        chosen = next(m for m in METHODS if m == source.method)  # click checked it is one
        expected = forecast(history, ahead, method=chosen, calendar=calendar, queues=[queue])
    except (TrafficError, StaffingError) as exc:
        _fail(str(exc))
    return _Inputs(contacts, history, expected, calendar)


def _fail(message: str) -> NoReturn:
    click.echo(f"cti staffing: {message}", err=True)
    sys.exit(2)


def _calendar(source: Source) -> Calendar:
    from cti_server.asterisk.data import data_dir
    from cti_server.ivr.calendar import CALENDAR_FILE, Calendar, CalendarError, load_calendar

    if source.traffic_file is not None:
        return Calendar()  # a recorded centre's own hours are in its data, not our calendar
    settings = crm_settings(source.config_file)
    try:
        return load_calendar((settings.ivr.flows_dir or data_dir("ivr_flows")) / CALENDAR_FILE)
    except CalendarError as exc:
        _fail(str(exc))


def _contacts(source: Source, calendar: Calendar, wanted: list[date] | None) -> list[Contact]:
    from zoneinfo import ZoneInfo

    from cti_server.routing.traffic import load_traffic
    from cti_server.staffing.crm_history import contacts_since
    from cti_server.staffing.history import from_traffic

    if source.traffic_file is not None:
        traffic = load_traffic(source.traffic_file)
        return list(from_traffic(traffic, traffic.days[0]))
    zone = ZoneInfo(calendar.timezone)
    today = datetime.now(zone).date()
    first = (wanted[0] if wanted else today + timedelta(days=1)) - timedelta(weeks=source.weeks)
    since = datetime.combine(first, time(), zone).astimezone(UTC)
    engine = crm_engine(crm_settings(source.config_file))

    async def _read() -> list[Contact]:
        try:
            return await contacts_since(engine, since, zone)
        finally:
            await engine.dispose()

    return run(_read)


def _scaled(forecast: Forecast, factor: float | None, on_day: datetime | None) -> Forecast:
    from cti_server.staffing.erlang import StaffingError
    from cti_server.staffing.plan import scale

    if factor is None:
        if on_day is not None:
            _fail("--on needs a what-if: --scale (or, for plan, --fewer)")
        return forecast
    try:
        return scale(forecast, factor, on=on_day.date() if on_day else None)
    except StaffingError as exc:
        _fail(str(exc))


@staffing.command("forecast")
@_source_options
def staffing_forecast(source: Source) -> None:
    """Expected offered calls and handle time per interval, learnt from the weeks before."""
    inputs = _inputs(source)
    base, queue, scale, minutes = inputs.forecast, source.queue, source.scale, source.minutes
    what_if = _scaled(base, scale, source.on_day)
    click.echo(
        f"queue {queue}, {source.method} forecast from {inputs.history.days[0]}.."
        f"{inputs.history.days[-1]} ({len(inputs.history.days)} days), {minutes}-minute intervals"
    )
    head = f"{'interval':<16} {'calls':>7} {'handle s':>8}"
    head += f" {'what-if':>8}" if scale is not None else ""
    click.echo(head)
    for start, one in sorted(base.queues[queue].items()):
        changed = what_if.queues[queue][start].offered
        if one.offered == 0 and changed == 0:
            continue
        line = f"{start:%Y-%m-%d %H:%M} {one.offered:>7.1f} {one.handle_s:>8.0f}"
        line += f" {changed:>8.1f}" if scale is not None else ""
        click.echo(line)
    total = sum(one.offered for one in base.queues[queue].values())
    click.echo(
        f"total {total:.0f} calls"
        + (
            f", what-if {sum(o.offered for o in what_if.queues[queue].values()):.0f}"
            if scale is not None
            else ""
        )
    )


@staffing.command("plan")
@_source_options
@click.option(
    "--target",
    default="80%/20s",
    show_default=True,
    help="80%/20s (service level), asa:30s or abandon:5%.",
)
@click.option(
    "--shrinkage",
    type=click.FloatRange(min=0, max=0.95),
    default=0.3,
    show_default=True,
    help="Share of paid time not on the phones (breaks, training, absence).",
)
@click.option(
    "--patience",
    "patience_s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Callers' mean patience in seconds (default: fitted from the history's abandons).",
)
@click.option(
    "--wrap-up",
    "wrap_up_s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="After-call work per call, seconds, added to the handle time.",
)
@click.option(
    "--fewer",
    type=click.IntRange(min=0),
    default=None,
    help="What-if: this many agents fewer than Erlang A's plan (from --from, on --on).",
)
@click.option(
    "--from",
    "since",
    type=click.DateTime(["%H:%M"]),
    default="00:00",
    show_default=True,
    help="When --fewer starts (HH:MM).",
)
@click.option(
    "--replay",
    "policy",
    default=None,
    help="With --traffic: replay the days' recorded calls through the routing simulator under "
    "this policy (a file, or bank-fifo, bank-observed, default) with the agents of the plan "
    "(or the what-if's), and show the service level they got.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=None,
    help="Staff each interval to meet the target with this probability (e.g. 0.9), counting "
    "the forecast's error (fitted from the history) and the few callers' scatter; default: "
    "the models' staffing for the expected calls, met on average.",
)
def staffing_plan(
    source: Source,
    target: str,
    shrinkage: float,
    patience_s: float | None,
    wrap_up_s: float,
    fewer: int | None,
    since: datetime,
    policy: str | None,
    confidence: float | None,
) -> None:
    """Agents per interval for a target, Erlang C beside Erlang A (patience from the
    history's abandons), and what a what-if does to the service level (Erlang A; replayed
    through the routing simulator with --replay)."""
    from cti_server.staffing.erlang import StaffingError
    from cti_server.staffing.plan import staffing_for
    from cti_server.staffing.targets import parse_target
    from cti_server.staffing.whatif import WhatIf, compare

    if policy is not None and source.traffic_file is None:
        _fail("--replay replays recorded calls: give them with --traffic")
    if policy is not None and source.scale is not None:
        _fail("--replay replays the calls as they came: not with --scale")
    inputs = _inputs(source)
    queue, scale, on_day, minutes = source.queue, source.scale, source.on_day, source.minutes
    if on_day is not None and scale is None and fewer is None:
        _fail("--on needs a what-if: --scale or --fewer")
    what_if = WhatIf(scale, fewer, since.time(), on_day.date() if on_day else None)
    try:
        goal = parse_target(target)
        if patience_s is None:
            patience_s = _fitted_patience(inputs, queue)
        rules, error = staffing_for(
            goal,
            patience_s,
            inputs.history,
            queue,
            calendar=inputs.calendar,
            confidence=confidence,
            shrinkage=shrinkage,
            wrap_up_s=wrap_up_s,
        )
        figures = compare(inputs.forecast, queue, rules, what_if)
    except StaffingError as exc:
        _fail(str(exc))
    available = {outcome.start: outcome.agents for outcome in figures.after}
    replayed = _replayed(source, inputs.forecast, available, policy, goal) if policy else None
    click.echo(
        f"queue {queue}, target {goal}, mean patience {patience_s:.0f} s, shrinkage "
        f"{shrinkage:.0%}; agents on the phones (scheduled = after shrinkage)"
    )
    if error is not None:
        click.echo(
            f"each interval staffed to meet the target with probability {confidence:g}; the "
            f"forecast's rate may be {error.spread:.0%} off (fitted on {error.days} days "
            f"forecast again)"
        )
    _echo_plan(figures, replayed, asking=what_if.asked, minutes=minutes)


def _echo_plan(
    figures: Comparison, replayed: dict[datetime, Reached] | None, *, asking: bool, minutes: str
) -> None:
    """One line per interval: the plan and how it does, the what-if's (if asked), the replay's
    service level (if asked)."""
    rows, base, changed, after = figures.rows, figures.base, figures.changed, figures.after
    chances = any(outcome.chance is not None for outcome in base)
    head = (
        f"{'interval':<16} {'calls':>6} {'AHT s':>6} {'Erl C':>5} {'Erl A':>5} {'sched':>5} "
        f"{'SL':>5} {'aband':>5}"
    )
    head += f" {'chance':>6}" if chances else ""
    if asking:
        head += f" | {'calls':>6} {'agents':>6} {'SL':>5} {'aband':>5} {'need A':>6}"
    if replayed is not None:
        head += f" | {'replay':>6} {'SL':>5}"
    click.echo(head)
    for row, now, new, later in zip(rows, base, changed, after, strict=True):
        called = replayed is not None and row.start in replayed
        if row.offered == 0 and new.offered == 0 and not called:
            continue
        line = (
            f"{row.start:%Y-%m-%d %H:%M} {row.offered:>6.1f} {row.handle_s:>6.0f} "
            f"{row.erlang_c:>5} {row.erlang_a:>5} {row.scheduled_a:>5} "
            f"{now.service_level:>5.0%} {now.abandon_rate:>5.0%}"
        )
        if chances:
            line += f" {now.chance:>6.0%}" if now.chance is not None else f" {'-':>6}"
        if asking:
            line += (
                f" | {new.offered:>6.1f} {later.agents:>6} {later.service_level:>5.0%} "
                f"{later.abandon_rate:>5.0%} {new.erlang_a:>6}"
            )
        if replayed is not None:
            got = replayed.get(row.start)
            line += (
                f" | {got.offered:>6} {got.service_level:>5.0%}" if got else f" | {0:>6} {'-':>5}"
            )
        click.echo(line)
    hours = float(minutes) / 60
    c_hours = sum(r.erlang_c for r in rows) * hours
    a_hours = sum(r.erlang_a for r in rows) * hours
    click.echo(
        f"agent hours on the phones: Erlang C {c_hours:.1f}, Erlang A {a_hours:.1f} "
        f"(scheduled {sum(r.scheduled_a for r in rows) * hours:.1f})"
    )
    if asking:
        missed = [o for o in after if not o.met]
        click.echo(
            f"what-if: {len(missed)} intervals below the target; Erlang A would need "
            f"{sum(r.erlang_a for r in changed) * hours:.1f} agent hours"
        )


def _replayed(
    source: Source, forecast: Forecast, agents: dict[datetime, int], policy: str, goal: Target
) -> dict[datetime, Reached]:
    """The recorded calls of the forecast's days replayed with ``agents`` per interval."""
    from cti_server.routing.policy import PolicyError, policy_from
    from cti_server.routing.traffic import TrafficError, load_traffic
    from cti_server.staffing.replay import replay_staffing
    from cti_server.staffing.targets import ServiceLevel

    assert source.traffic_file is not None  # checked before anything was read
    try:
        chosen = policy_from(policy)
        first_day = load_traffic(source.traffic_file).days[0]
        traffic = load_traffic(source.traffic_file, forecast.days)
    except (PolicyError, TrafficError) as exc:
        _fail(str(exc))
    threshold = goal.within_s if isinstance(goal, ServiceLevel) else 20.0
    return replay_staffing(
        traffic, first_day, agents, chosen, minutes=forecast.minutes, threshold=threshold
    )


def _fitted_patience(inputs: _Inputs, queue: str) -> float:
    """Mean patience from the history's waits (exponential, censored: the MLE)."""
    from cti_server.staffing.patience import fit_exponential

    first, last = inputs.history.days[0], inputs.history.days[-1]
    waits = [
        (c.waited_s, not c.answered)
        for c in inputs.contacts
        if first <= c.arrived.date() <= last and queue in ("all", c.queue)
    ]
    return fit_exponential(waits).mean_s

"""The ``cti`` command: serve, render the dialplan, run the local Asterisk, simulate calls."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from cti_server.asterisk.local import AsteriskChroot, AsteriskError, AsteriskInstance
from cti_server.asterisk.render import render_config, write_config
from cti_server.cli.users import register_user_commands
from cti_server.config import ConfigError, LoggingSettings, Settings, load_settings
from cti_server.health.logs import LogFormat, configure_logging
from cti_server.health.version import PACKAGE

log = logging.getLogger(__name__)

T = TypeVar("T")

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (default: $CTI_CONFIG_FILE; the environment overrides it).",
)


def _settings(config_file: Path | None, **overrides: Any) -> Settings:
    try:
        settings = load_settings(config_file, **overrides)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    _logging_choice().settings = settings.logging
    _apply_logging()
    return settings


@dataclass
class _LoggingChoice:
    """The flags seen so far (before or after the command name) and the settings' [logging]."""

    verbose: bool = False
    log_format: LogFormat | None = None
    settings: LoggingSettings | None = None


def _logging_choice() -> _LoggingChoice:
    meta = click.get_current_context().meta  # shared by the group's and the command's context
    choice: _LoggingChoice = meta.setdefault("cti.logging", _LoggingChoice())
    return choice


def _apply_logging() -> None:
    """Flags win over the settings file and the environment, which win over the defaults."""
    choice = _logging_choice()
    configured = choice.settings or LoggingSettings()
    level = logging.DEBUG if choice.verbose else logging.getLevelName(configured.level.upper())
    configure_logging(level, choice.log_format or configured.format)


def _verbose_flag(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _logging_choice().verbose = True
        _apply_logging()


def _log_format_flag(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _logging_choice().log_format = "json" if value == "json" else "text"
        _apply_logging()


def _logging_options() -> list[click.Parameter]:
    return [
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            callback=_verbose_flag,
            help="Debug logging.",
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(["text", "json"]),
            expose_value=False,
            callback=_log_format_flag,
            help="Log lines as text or one JSON object each (default: [logging] format).",
        ),
    ]


class _Command(click.Command):
    """A command that takes the logging options too: `cti serve -v` is `cti -v serve`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_logging_options())


class _Group(click.Group):
    """A group whose commands and subgroups all take the logging options."""

    command_class = _Command
    group_class = type  # subgroups are _Group too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_logging_options())


@click.group(cls=_Group)
@click.version_option(package_name=PACKAGE, prog_name="cti", message="%(prog)s %(version)s")
def main() -> None:
    """Contact-center CTI server beside Asterisk."""
    _apply_logging()


def _run_server(command: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run the server; a failure to start (or to stop in time) is one line on standard error
    and exit 1, its traceback only with -v."""
    from cti_server.app import ServeError, StartupError

    try:
        _run(run)
    except ServeError as exc:
        log.debug("cti %s failed", command, exc_info=exc)
        what = "cannot start: " if isinstance(exc, StartupError) else ""
        click.echo(f"cti {command}: {what}{exc}", err=True)
        sys.exit(1)


@main.command()
@config_option
def serve(config_file: Path | None) -> None:
    """Run the CTI server until SIGTERM or SIGINT."""
    from cti_server.app import serve as run_server

    settings = _settings(config_file)
    _run_server("serve", lambda: run_server(settings))


@main.group()
def dialplan() -> None:
    """The Asterisk configuration rendered from the settings."""


@dialplan.command("render")
@config_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def dialplan_render(config_file: Path | None, out: Path) -> None:
    """Write manager.conf, extensions.conf, queues.conf, pjsip.conf, ... into OUT."""
    settings = _settings(config_file)
    for path in write_config(render_config(settings), out):
        click.echo(str(path))


@main.group()
def asterisk() -> None:
    """The local development Asterisk (Debian sid in a cached chroot)."""


def _instance(settings: Settings, name: str | None) -> AsteriskInstance:
    chroot = AsteriskChroot(settings.asterisk.chroot)
    return AsteriskInstance(chroot, name or settings.asterisk.instance, settings)


@asterisk.command("up")
@config_option
@click.option("--instance", default=None, help="Instance name (default: settings).")
def asterisk_up(config_file: Path | None, instance: str | None) -> None:
    """Provision the chroot if needed, install the configuration, start, wait until ready."""
    settings = _settings(config_file)
    node = _instance(settings, instance)
    try:
        node.up()
    except AsteriskError as exc:
        click.echo(f"cti asterisk up: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Asterisk instance {node.name!r} ready (AMI 127.0.0.1:{settings.ami.port})")


@asterisk.command("provision")
def asterisk_provision() -> None:
    """Build the Debian sid chroot with Asterisk, unless a complete one is cached."""
    settings = _settings(None, **_no_secret_needed())
    chroot = AsteriskChroot(settings.asterisk.chroot)
    try:
        chroot.provision()
    except AsteriskError as exc:
        click.echo(f"cti asterisk provision: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Asterisk chroot ready at {chroot.root}")


@asterisk.command("down")
@config_option
@click.option("--instance", default=None)
def asterisk_down(config_file: Path | None, instance: str | None) -> None:
    """Stop the instance and unmount what was mounted for it."""
    node = _instance(_settings(config_file, **_no_secret_needed()), instance)
    node.stop()
    click.echo(f"Asterisk instance {node.name!r} stopped")


@asterisk.command("status")
@config_option
@click.option("--instance", default=None)
def asterisk_status(config_file: Path | None, instance: str | None) -> None:
    """Say whether the chroot is cached and the instance is running; exit 1 if not running."""
    node = _instance(_settings(config_file, **_no_secret_needed()), instance)
    click.echo(f"chroot: {node.chroot.root} ({'complete' if node.chroot.complete else 'missing'})")
    pid = node.pid()
    click.echo(f"instance {node.name!r}: {f'running, pid {pid}' if pid else 'stopped'}")
    sys.exit(0 if pid else 1)


def _no_secret_needed() -> dict[str, Any]:
    """down/status never talk to AMI: let them run without the secret."""
    return {} if os.environ.get("CTI_AMI__SECRET") else {"ami": {"secret": "unused"}}


@main.command()
@config_option
@click.option("--number", default="+8613800138000", show_default=True)
@click.option("--name", default="张伟", show_default=True)
@click.option("--dialed", default="100", show_default=True)
@click.option("--agent", "agents", multiple=True, help="Add a simulated agent EXT to the queue.")
def call(
    config_file: Path | None, number: str, name: str, dialed: str, agents: tuple[str, ...]
) -> None:
    """Place one simulated customer call into the local Asterisk."""
    from cti_server.sim.simulation import add_sim_agent, place_customer_call
    from cti_server.telephony.ami_client import AmiClient

    settings = _settings(config_file)

    async def _call() -> str:
        client = AmiClient(settings.ami, on_event=lambda _m: None)
        runner = asyncio.create_task(client.run())
        try:
            await client.wait_connected(10.0)
            for ext in agents:
                await add_sim_agent(client, settings.dialplan.default_queue, ext)
            placed = await place_customer_call(
                client,
                context=settings.dialplan.inbound_context,
                number=number,
                name=name,
                dialed=dialed,
                audio="cti/sim-hello",
            )
            return placed.uniqueid
        finally:
            runner.cancel()

    click.echo(f"call placed: {_run(_call)}")


@main.command()
@config_option
@click.option("--rate", default=3.0, show_default=True, help="Calls per minute (Poisson).")
@click.option(
    "--bank-data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay a day of the bank's calls (august_1999_calls.csv.gz) instead of --rate.",
)
@click.option("--day", default="1999-08-02", show_default=True, help="The bank day to replay.")
@click.option("--speed", default=60.0, show_default=True, help="Replay this many times faster.")
@click.option("--max-calls", type=int, default=None, help="Stop placing calls after this many.")
@click.option("--agents", default=3, show_default=True, help="Virtual agents 1001, 1002, ...")
@click.option("--seed", type=int, default=None, help="Repeat the same traffic.")
@click.option(
    "--call-back-after",
    type=click.FloatRange(min=0),
    default=None,
    help="Unhappy customers call again this many seconds after their call (beyond --max-calls).",
)
def simulate(
    config_file: Path | None,
    rate: float,
    bank_data: Path | None,
    day: str,
    speed: float,
    max_calls: int | None,
    agents: int,
    seed: int | None,
    call_back_after: float | None,
) -> None:
    """Realistic traffic into the Asterisk of the settings: CRM customers call, walk the IVR,
    wait, talk (personas, complaints included) or give up; virtual agents answer."""
    import random
    from datetime import date

    from sqlalchemy.ext.asyncio import AsyncSession

    from cti_server.sim.arrivals import bank_day, poisson
    from cti_server.sim.callers import load_callers
    from cti_server.sim.runner import CallSimulator, Summary

    settings = _settings(config_file)
    try:
        arrivals = (
            bank_day(bank_data, date.fromisoformat(day), speed)
            if bank_data is not None
            else poisson(rate, random.Random(seed))  # noqa: S311 - simulated traffic
        )
    except ValueError as exc:
        click.echo(f"cti simulate: {exc}", err=True)
        sys.exit(2)
    if bank_data is None and max_calls is None:
        click.echo("cti simulate: give --max-calls with --rate (Ctrl-C stops it too)", err=True)

    async def _simulate() -> Summary:
        engine = _engine(settings)
        try:
            async with AsyncSession(engine) as session:
                callers = await load_callers(session)
        finally:
            await engine.dispose()
        simulator = CallSimulator(
            settings,
            callers,
            agents=[str(1001 + n) for n in range(agents)],
            seed=seed,
            call_back_after=call_back_after,
        )
        return await simulator.run(arrivals, max_calls)

    for line in _run(_simulate).lines():
        click.echo(line)


@main.group()
def speech() -> None:
    """Speech models (Vosk) for spoken menus and transcription."""


@speech.command("check")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--word", "words", multiple=True, help="Check that the model knows this word.")
def speech_check(model: Path, words: tuple[str, ...]) -> None:
    """Load a Vosk model and decode a second of audio with it; exit 1 if it cannot serve."""
    from cti_server.speech.decoder import CALL_RATE, StreamDecoder, model_rate
    from cti_server.speech.models import load_model

    if not (model / "am").is_dir() and not (model / "final.mdl").is_file():
        click.echo(f"cti speech check: {model} is not a Vosk model directory (no am/)", err=True)
        sys.exit(1)
    try:
        loaded = load_model(model)
        rate = model_rate(model)
        decoder = StreamDecoder(loaded, rate, "customer")
        decoder.feed(b"\0" * 2 * CALL_RATE)
        decoder.finish()
    except Exception as exc:  # any failure means the model cannot serve
        click.echo(f"cti speech check: {model}: {exc}", err=True)
        sys.exit(1)
    unknown = [w for w in words if loaded.vosk_model_find_word(w) == -1]
    click.echo(f"{model}: ok, features at {rate} Hz")
    if unknown:
        click.echo(f"not in the vocabulary: {', '.join(unknown)}", err=True)
        sys.exit(1)


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    async def _main() -> T:
        return await factory()

    return asyncio.run(_main())


@main.group()
def ivr() -> None:
    """IVR flows."""


@ivr.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def ivr_check(paths: tuple[Path, ...]) -> None:
    """Validate flow files (default: every flow shipped); exit 1 naming each problem."""
    from cti_server.asterisk.data import data_dir
    from cti_server.ivr.calendar import CALENDAR_FILE, CalendarError, load_calendar
    from cti_server.ivr.flow import FlowError
    from cti_server.ivr.registry import check_flow_file

    directory = data_dir("ivr_flows")
    files = [
        p for path in paths for p in (sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    ]
    failed = False
    for path in files or sorted(directory.glob("*.yaml")):
        try:
            if path.name == CALENDAR_FILE:
                load_calendar(path)
                click.echo(f"{path.name}: calendar ok")
                continue
            flow = check_flow_file(path)
        except (FlowError, CalendarError) as exc:
            click.echo(str(exc), err=True)
            failed = True
            continue
        click.echo(f"{path.name}: flow {flow.name!r} ok ({len(flow.steps)} steps)")
    sys.exit(1 if failed else 0)


@main.group()
def routing() -> None:
    """Routing policies, tried on recorded traffic."""


@routing.command("simulate")
@click.option(
    "--traffic",
    "traffic_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Recorded calls (the bank's CSV format, plain or .gz).",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    default=("bank-observed", "default"),
    show_default=True,
    help="A policy file or a built-in one (default, bank-fifo, bank-observed); repeat to compare.",
)
@click.option(
    "--agents",
    type=click.IntRange(min=1),
    default=None,
    help="N agents serving every type, on duty whenever anyone was (default: as recorded).",
)
@click.option("--days", default=None, help="YYYY-MM-DD or FIRST..LAST (default: every day).")
@click.option(
    "--service-level",
    "service_level_s",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Seconds within which an answer counts for the service level.",
)
def routing_simulate(
    traffic_file: Path,
    policies: tuple[str, ...],
    agents: int | None,
    days: str | None,
    service_level_s: float,
) -> None:
    """Replay recorded arrivals, patience and handle times through the routing core under
    each policy; print ASA, abandon rate and service level per customer class beside the
    recorded ones. By default: the bank's rule as its data shows it against ours."""
    from cti_server.routing.policy import PolicyError, policy_from
    from cti_server.routing.simulator import observed, simulate, table
    from cti_server.routing.traffic import TrafficError, load_traffic, parse_days

    try:
        chosen = [policy_from(spec) for spec in policies]
        traffic = load_traffic(traffic_file, parse_days(days) if days else None)
    except (PolicyError, TrafficError) as exc:
        click.echo(f"cti routing simulate: {exc}", err=True)
        sys.exit(2)
    recorded = len({shift.agent for shift in traffic.shifts})
    staff = f"{agents} agents" if agents else f"{recorded} agents as recorded"
    click.echo(
        f"{traffic_file.name}: {len(traffic.calls)} calls, {traffic.days[0]}..{traffic.days[-1]}"
        f", {staff}"
    )
    reports = [observed(traffic, service_level_s)]
    reports += [
        simulate(traffic, p, service_level_s=service_level_s, agents=agents) for p in chosen
    ]
    click.echo(table(reports, service_level_s))


@main.group()
def crm() -> None:
    """The CRM database: schema, users, demo data."""


def _crm_settings(config_file: Path | None) -> Settings:
    """CRM commands never talk to AMI: they run without its secret."""
    return _settings(config_file, **_no_secret_needed())


@crm.command("migrate")
@config_option
def crm_migrate(config_file: Path | None) -> None:
    """Bring the CRM schema up to date (cti serve also does this at start)."""
    from crm_core.migrate import upgrade

    settings = _crm_settings(config_file)

    async def _migrate() -> None:
        engine = _engine(settings)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    _run(_migrate)
    click.echo("CRM schema up to date")


def _engine(settings: Settings) -> AsyncEngine:
    from crm_core.database import make_engine

    password = settings.database.password
    return make_engine(settings.database.url, password.get_secret_value() if password else None)


@crm.command("seed")
@config_option
@click.option(
    "--customers", type=click.IntRange(min=1), required=True, help="How many customers to add."
)
@click.option(
    "--seed",
    "seed",
    type=int,
    default=1,
    show_default=True,
    help="Random seed: the same seed into the same database gives the same data.",
)
def crm_seed(config_file: Path | None, customers: int, seed: int) -> None:
    """Add realistic demo customers with phones, orders, past calls and complaints."""
    from crm_core.migrate import upgrade
    from crm_core.seed import SeedReport, seed_crm

    settings = _crm_settings(config_file)
    step = max(1, customers // 20)  # about twenty progress lines, whatever the size
    shown = 0

    def progress(done: int) -> None:
        nonlocal shown
        if done - shown >= step or done == customers:
            shown = done
            click.echo(f"  {done:,} of {customers:,} customers ({100 * done // customers} %)")

    async def _seed() -> SeedReport:
        engine = _engine(settings)
        try:
            await upgrade(engine)
            return await seed_crm(
                engine,
                customers,
                seed=seed,
                region=settings.crm.default_region,
                policy=settings.crm.value,
                progress=progress,
            )
        finally:
            await engine.dispose()

    click.echo(f"seeding {customers:,} customers (seed {seed})")
    report = _run(_seed)
    tiers = ", ".join(f"{tier} {count:,}" for tier, count in sorted(report.tiers.items()))
    click.echo(
        f"added {report.customers:,} customers ({report.organisations:,} organisations), "
        f"{report.phones:,} phones, {report.transactions:,} transactions, "
        f"{report.interactions:,} interactions, {report.cases:,} cases "
        f"in {report.seconds:.1f} s; tiers: {tiers}"
    )


register_user_commands(crm, config_option, lambda config: _engine(_crm_settings(config)))


@main.command()
@config_option
@click.option("--customers", default=2000, show_default=True, help="CRM customers to seed once.")
@click.option("--every", default=20.0, show_default=True, help="Seconds between demo calls.")
def demo(config_file: Path | None, customers: int, every: float) -> None:
    """The living demo: Asterisk, the CTI server, a seeded CRM, demo accounts, demo calls."""
    from cti_server.app import DATABASE
    from cti_server.app import serve as run_server
    from cti_server.sim.demo import demo_settings, demo_traffic, prepare_demo_data

    made_up = not os.environ.get("CTI_AMI__SECRET")
    if made_up:
        os.environ["CTI_AMI__SECRET"] = secrets.token_urlsafe(24)
    settings = demo_settings(_settings(config_file))
    node = _instance(settings, "demo")
    try:
        node.up()
    except AsteriskError as exc:
        click.echo(f"cti demo: {exc}", err=True)
        sys.exit(1)

    async def _prepare() -> list[Any]:
        engine = _engine(settings)
        try:
            return await prepare_demo_data(engine, settings, customers)
        finally:
            await engine.dispose()

    accounts = _run(_prepare)
    base = f"http://{settings.http.host}:{settings.http.port}"
    lines = [
        "",
        "The demo call center is up. Simulated agents answer; a customer calls every "
        f"~{every:g} s.",
        f"  desktop and wallboard: {base}/ui/   (sign in with an account below)",
        f"  status:   {base}/status        metrics: {base}/metrics",
        f"  API:      {base}/api/openapi.json",
        "  accounts (new passwords each start):",
        *(f"    {a.username:<11} {a.password}" for a in accounts),
        "Try:",
        f'  curl -s {base}/api/tokens -d \'{{"username":"supervisor","password":"..."}}\'',
        f"  curl -s -H 'Authorization: Bearer TOKEN' {base}/live",
    ]
    if made_up:
        lines.append(
            f"  export CTI_AMI__SECRET={os.environ['CTI_AMI__SECRET']}"
            "   # then: .venv/bin/cti call --agent 1001"
        )
    lines.append("Stop with Ctrl-C.\n")
    click.echo("\n".join(lines))
    try:
        _run_server(
            "demo",
            lambda: run_server(
                settings, background=lambda app: demo_traffic(app[DATABASE], settings, every)
            ),
        )
    finally:
        node.stop()

"""The composition root: the one place that builds every long-lived object and wires them.

Everything that runs in the background is started and stopped by one aiohttp ``cleanup_ctx``
entry, so shutdown cancels and awaits each task in the reverse order of start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web
from panoramisk.message import Message
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from agent_ui.app import create_ui
from agent_ui.deps import UiDeps
from agent_ui.desktop import DESKS
from agent_ui.phone_accounts import BrowserPhones
from crm_core.access import least
from crm_core.api.app import create_api
from crm_core.api.http import role_rank
from crm_core.database import make_engine, ping
from crm_core.login_throttle import LoginGuard
from crm_core.migrate import upgrade
from crm_core.people import user_for_token
from cti_server.asterisk.data import data_dir
from cti_server.asterisk.local import AsteriskChroot, AsteriskInstance
from cti_server.asterisk.sip_digests import REALM, read_digests
from cti_server.bus import Bus, MemoryBus
from cti_server.bus.lease import Leader, RedisLease, SoleLeader
from cti_server.bus.redis import RedisBus
from cti_server.complaints.detector import ComplaintDetector
from cti_server.complaints.operating_point import OperatingPoint
from cti_server.complaints.resources import ComplaintDataError
from cti_server.complaints.signals import CATEGORIES
from cti_server.complaints.watch import ComplaintWatch, RecordedCalls, crm_repeat_call
from cti_server.config import AmiSettings, ComplaintSettings, Settings
from cti_server.control.staffing import StaffingPlans
from cti_server.events import AmiLinkChanged
from cti_server.health import heap
from cti_server.health.login_metrics import LoginCollector
from cti_server.health.logs import ACCESS_LOGGER, AccessLogger
from cti_server.health.metrics import CtiCollector, make_registry
from cti_server.health.version import release
from cti_server.health.watchdog import LoopWatchdog
from cti_server.integrations.plugin import add_integrations
from cti_server.ivr.channels.agi_api import PREFIX as AGI_API_PREFIX
from cti_server.ivr.channels.agi_api import create_agi_api
from cti_server.ivr.customers import CrmLookup
from cti_server.ivr.engine import IvrEngine
from cti_server.ivr.identification import CallerIdentification
from cti_server.ivr.inbound import InboundCalls, callers_ahead
from cti_server.ivr.registry import FlowRegistry
from cti_server.ivr.self_service import CrmSelfService
from cti_server.recorder.recorder import Recorder
from cti_server.recorder.spool import Spool
from cti_server.routing.directory import Directory
from cti_server.routing.http import routing_routes
from cti_server.routing.inputs import personal_queue
from cti_server.routing.policy import builtin_policy_path
from cti_server.routing.reloader import PolicyReloader
from cti_server.routing.router import Router
from cti_server.routing.supervision import RouterSupervision
from cti_server.speech.audiosocket import AudioSocketServer
from cti_server.speech.desk_redaction import SequenceRedaction
from cti_server.speech.models import SpeechModels
from cti_server.speech.text_redaction import regions_for
from cti_server.speech.transcription import TranscriptionService, recording_names
from cti_server.staffing.http import staffing_api
from cti_server.staffing.service import crm_planner
from cti_server.telephony.agent_control import AmiAgentControl
from cti_server.telephony.ami_client import AmiClient, AmiError
from cti_server.telephony.ami_events import translate
from cti_server.telephony.fastagi import FastAgiServer, asterisk_key
from cti_server.telephony.tasks import cancel_and_wait
from cti_server.tracker.resync import resync
from cti_server.tracker.tracker import Tracker
from cti_server.web.hardening import GuardedSite, ReadLimits, add_security_headers
from cti_server.web.server_log import ServerLog

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
BUS = web.AppKey("bus", MemoryBus)
AMI = web.AppKey("ami", AmiClient)
AGI = web.AppKey("agi", FastAgiServer)
SPEECH = web.AppKey("speech", AudioSocketServer)
TRANSCRIPTION = web.AppKey("transcription", TranscriptionService)
COMPLAINTS = web.AppKey("complaints", ComplaintWatch)
IDENTIFICATION = web.AppKey("identification", CallerIdentification)
IDENTIFY_WAIT_SECONDS = 2.0  # the router waits for a caller's identification up to this long
LEADER = web.AppKey("leader", Leader)
DATABASE = web.AppKey("database", AsyncEngine)
SCHEMA_READY = web.AppKey("schema_ready", asyncio.Event)
TRACKER = web.AppKey("tracker", Tracker)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
METRICS = web.AppKey("metrics", CollectorRegistry)
WATCHDOG = web.AppKey("watchdog", LoopWatchdog)
RESYNCS = web.AppKey("resyncs", set[asyncio.Task[None]])
LINKS = web.AppKey("links", list[AmiClient])
AGENT_CONTROL = web.AppKey("agent_control", AmiAgentControl)
RECORDER = web.AppKey("recorder", Recorder)
ROUTER = web.AppKey("router", Router)


def _add_speech(
    app: web.Application, settings: Settings, bus: Bus, ami: AmiClient, leader: Leader
) -> AudioSocketServer:
    """Spoken menus and transcription share the models and the AudioSocket listener."""
    models = SpeechModels(settings.speech.models, settings.speech.end_silence_seconds)
    speech = AudioSocketServer(settings.speech, models)
    app[SPEECH] = speech
    regions = regions_for(settings.crm.default_region)
    app[TRANSCRIPTION] = TranscriptionService(
        settings.transcription,
        settings.speech,
        bus,
        ami,
        speech,
        models,
        regions=regions,
        is_leader=leader.leading.is_set,
    )
    return speech


def _complaint_detector(settings: ComplaintSettings) -> ComplaintDetector:
    """The detector at the manager's operating point; by default the embedding model (0.820 F1
    on the English set against 0.769) where its extra is installed."""
    embeddings = {"auto": None, "on": True, "off": False}[settings.embeddings]
    point = OperatingPoint(settings.expected_rate, settings.miss_cost, settings.false_alarm_cost)
    return ComplaintDetector(embeddings=embeddings, operating_point=point)


def _complaint_watch(
    settings: ComplaintSettings,
    bus: Bus,
    sessions: async_sessionmaker[AsyncSession],
    leader: Leader,
    transcription: TranscriptionService,
) -> ComplaintWatch:
    return ComplaintWatch(
        bus,
        _complaint_detector(settings),
        crm_repeat_call(sessions, RecordedCalls(bus)),
        is_leader=leader.leading.is_set,
        # no transcript (transcription off, no model for the call's language): on the facts alone
        transcript_expected=lambda ended: transcription.follows(ended.linkedid),
    )


def build_app(settings: Settings) -> web.Application:  # noqa: PLR0915 - the root builds all
    """Build the whole server as an aiohttp application; nothing runs until it is started."""
    app = web.Application()
    add_security_headers(app)  # no-store, nosniff, no referrer, no framing on every answer
    nodes = frozenset(n.node for n in (settings.ami, *settings.extra_nodes))
    bus = (
        RedisBus(settings.bus.redis_url, local_nodes=nodes)
        if settings.bus.backend == "redis"
        else MemoryBus()
    )
    app[SETTINGS] = settings
    app[BUS] = bus
    # work done once among processes that share nodes (routing, taps, complaint detection)
    leader: Leader = (
        RedisLease(settings.bus.redis_url, "leader", settings.bus.lease_seconds)
        if settings.bus.backend == "redis"
        else SoleLeader()
    )
    app[LEADER] = leader
    tracker = Tracker(
        bus.publish,
        service_levels={q.name: q.service_level for q in settings.dialplan.queues},
        wrapup_times={q.name: q.wrapup_time for q in settings.dialplan.queues},
    )
    app[TRACKER] = tracker
    links = [_link(node, tracker, bus) for node in (settings.ami, *settings.extra_nodes)]
    app[LINKS] = links
    app[AMI] = links[0]
    resyncs: set[asyncio.Task[None]] = set()

    def after_stall(_lag: float) -> None:
        for link in links:
            if link.connected:
                task = asyncio.create_task(_resync_quietly(link, tracker))
                resyncs.add(task)
                task.add_done_callback(resyncs.discard)

    app[WATCHDOG] = LoopWatchdog(after_stall)
    app[RESYNCS] = resyncs
    database = settings.database
    engine = make_engine(
        database.url, database.password.get_secret_value() if database.password else None
    )
    app[DATABASE] = engine
    agi = FastAgiServer(settings.agi, key=asterisk_key(settings.ami.secret.get_secret_value()))
    speech = _add_speech(app, settings, bus, links[0], leader)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    app[IDENTIFICATION] = CallerIdentification(sessions, settings.crm.default_region)
    lookup = CrmLookup(sessions, app[IDENTIFICATION].customer_of)
    self_service = CrmSelfService(sessions)
    inbound = InboundCalls(
        bus,
        settings.ami.node,
        settings.dialplan.default_queue,
        flows=FlowRegistry(settings.ivr.flows_dir or data_dir("ivr_flows")),
        flow_name=settings.ivr.inbound_flow,
        survey_flow=settings.ivr.survey_flow,
        estimate_wait=lambda queue: tracker.estimated_wait(settings.ami.node, queue),
        callers_ahead=callers_ahead(tracker, settings.ami.node),
        engine=IvrEngine(None, lookup.by_account, self_service, verify_pin=lookup.verify_pin),
        speech=speech,
        caller_lookup=lookup.for_call,
    )
    agi.add_route("inbound", inbound.handle)
    agi.add_route("survey", inbound.survey)
    app[AGI] = agi
    app[SCHEMA_READY] = asyncio.Event()
    app[RECORDER] = Recorder(
        bus,
        sessions,
        Spool(settings.recorder.spool_path),
        region=settings.crm.default_region,
        retry_seconds=settings.recorder.retry_seconds,
        schema_ready=app[SCHEMA_READY],
        case_sla=settings.crm.case_sla,
        value_policy=settings.crm.value,
    )
    app[COMPLAINTS] = _complaint_watch(
        settings.complaints, bus, sessions, leader, app[TRANSCRIPTION]
    )
    # who is calling: asked once per call, published for the router, the pops and the recorder
    # (in every process: another's word about a node this one follows does not cross Redis)
    app[IDENTIFICATION].subscribe(bus)
    app.cleanup_ctx.extend(
        [
            *(_database, _bus, _recorder, _identification, _ami_link),
            *(_watchdog, _complaints, _speech, _fastagi),
        ]
    )
    if settings.routing.enabled:
        app[ROUTER] = _router(settings, tracker, links, sessions, bus, leader)
        app.router.add_routes(routing_routes(app[ROUTER], authorize, authorized_user))
    app.cleanup_ctx.append(_routing)  # last in, first out: it releases calls to the fallback
    app.router.add_routes(_operator_routes())
    app[METRICS] = make_registry(
        CtiCollector(
            tracker, links, app[RECORDER], bus, app[WATCHDOG], decoding=app[TRANSCRIPTION].pool
        )
    )
    app[SESSIONS] = sessions
    logins = _login_guard(settings, sessions, app[METRICS])
    app[AGENT_CONTROL] = _agent_control(settings, bus, tracker, links)
    app.cleanup_ctx.append(_close_agent_control)
    staffing = crm_planner(  # the forecast and staffing plan: the API's, the page's, the board's
        engine,
        flows_dir=settings.ivr.flows_dir or data_dir("ivr_flows"),
        time_zone=settings.ui.time_zone,
        confidence=settings.staffing.confidence,
    )
    ui = create_ui(
        _ui_deps(
            settings,
            bus,
            tracker,
            app[AGENT_CONTROL],
            sessions,
            router=app.get(ROUTER),
            logins=logins,
            staffing=staffing,
        )
    )
    app.add_subapp(  # whom an agent serves now is their desk's: the API's row rules ask it
        "/api",
        create_api(
            sessions,
            settings.crm,
            logins=logins,
            serving=lambda user: ui[DESKS].serving(user.extension),
            extra=[staffing_api(staffing)],
        ),
    )
    add_integrations(  # /api/events: the event stream and signed webhooks for other systems
        app,
        settings.integrations,
        bus,
        sessions,
        is_leader=leader.leading.is_set,
        metrics=app[METRICS],
    )
    app.add_subapp("/ui", ui)
    app.add_subapp(  # what cti-agi (classic AGI, a process per call) asks of this server
        AGI_API_PREFIX,
        create_agi_api(
            token=settings.ivr.service_token,
            caller_lookup=lookup.for_call,
            by_account=lookup.by_account,
            self_service=self_service,
            estimated_wait=tracker.estimated_wait,
            callers_ahead=lambda node, queue: callers_ahead(tracker, node)(queue),
            publish=bus.publish,
            nodes=[node.node for node in (settings.ami, *settings.extra_nodes)],
            verify_pin=lookup.verify_pin,
            speech=speech,
        ),
    )
    app.cleanup_ctx.append(heap.settled_heap)  # last: what every part built at start is kept
    return app


def _operator_routes() -> list[web.RouteDef]:
    """Liveness, readiness, the live model and the metrics, beside the API and the UI."""
    return [
        web.get("/healthz", healthz_view),
        web.get("/status", status_view),
        web.get("/live", live_view),
        web.get("/metrics", metrics_view),
    ]


def _login_guard(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], metrics: CollectorRegistry
) -> LoginGuard:
    """One sign-in throttle for ``/ui/login`` and ``POST /api/tokens``, counted on /metrics."""
    logins = LoginGuard(sessions, settings.crm.login)
    metrics.register(LoginCollector(logins))
    return logins


def _ui_deps(
    settings: Settings,
    bus: MemoryBus,
    tracker: Tracker,
    control: AmiAgentControl,
    sessions: async_sessionmaker[AsyncSession],
    *,
    router: Router | None,
    logins: LoginGuard,
    staffing: StaffingPlans | None = None,
) -> UiDeps:
    """The UI's share of the server: the live model, the agent control, the services it shows
    (redaction, recordings, complaint categories), the router (routing on) for the wallboard."""
    return UiDeps(
        settings=settings.ui,
        region=settings.crm.default_region,
        node=settings.ami.node,
        bus=bus,
        live=tracker,
        control=control,
        db=sessions,
        redaction=SequenceRedaction(settings.crm.default_region),
        recording_names=recording_names,
        complaint_categories=CATEGORIES,
        service_level=settings.dialplan.queues[0].service_level,
        recordings_path=settings.transcription.recordings_path,
        routing=RouterSupervision(router) if router is not None else None,
        logins=logins,
        phones=_browser_phones(settings),
        staffing=staffing,
    )


def _browser_phones(settings: Settings) -> BrowserPhones | None:
    """The agents whose phone is the browser, Asterisk's WSS listener, and their SIP password
    hashes (``[dialplan] sip_digests``, else the local instance's file, where `cti agent secret
    rotate` keeps them)."""
    dialplan = settings.dialplan
    browser = frozenset(a.extension for a in dialplan.agents if dialplan.browser_phone(a))
    if not browser:
        return None
    digests = dialplan.sip_digests or (
        AsteriskInstance(
            AsteriskChroot(settings.asterisk.chroot), settings.asterisk.instance, settings
        ).digests_file
    )
    return BrowserPhones(
        browser,
        dialplan.wss_bind,
        dialplan.wss_port,
        REALM,
        functools.partial(read_digests, digests),
    )


def _agent_control(
    settings: Settings, bus: MemoryBus, tracker: Tracker, links: list[AmiClient]
) -> AmiAgentControl:
    """What desks and supervisors do to phones, calls and queues; it owns the desks' wrap-up."""
    queues = tuple(q.name for q in settings.dialplan.queues)
    routing = settings.routing.enabled
    return AmiAgentControl(
        settings.ui,
        node=settings.ami.node,
        links={link.status.node: link for link in links},
        live=tracker,
        publish=bus.publish,
        # routing on: agents join their own queue and the fallback, never the waiting queues
        queues=(settings.routing.fallback_queue,) if routing else settings.ui.queues or queues,
        transfer_queues=queues,
        own_queue=personal_queue if routing else None,
    )


async def _close_agent_control(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[AGENT_CONTROL].close()


def _router(  # noqa: PLR0917 - the composition root's own parts
    settings: Settings,
    tracker: Tracker,
    links: list[AmiClient],
    sessions: async_sessionmaker[AsyncSession],
    bus: MemoryBus,
    leader: Leader,
) -> Router:
    """Routing by value, skill and relationship; its policy is re-read when its file changes."""
    routing = settings.routing
    router = Router(
        tracker=tracker,
        links=links,
        policies=PolicyReloader(routing.policy_path or builtin_policy_path()),
        directory=Directory(
            sessions,
            cache_seconds=routing.skills_cache_seconds,
            preferred_days=routing.preferred_days,
        ),
        publish=bus.publish,
        settings=routing,
        waiting_queues=[q.name for q in settings.dialplan.queues],
        is_leader=leader.leading.is_set,
        identify_wait=IDENTIFY_WAIT_SECONDS,
    )
    router.subscribe(bus)
    return router


def _link(settings: AmiSettings, tracker: Tracker, bus: MemoryBus) -> AmiClient:
    """One Asterisk node: its events feed the tracker, each login resyncs the node."""
    node = settings.node

    def on_event(message: Message) -> None:
        event = translate(message, node)
        if event is not None:
            tracker.apply(event)  # the live model's only consumer of Asterisk's events

    async def after_login() -> None:
        await resync(client, tracker, node)

    client = AmiClient(
        settings,
        on_event=on_event,
        on_state=lambda up: bus.publish(AmiLinkChanged(node=node, connected=up)),
        on_login=after_login,
    )
    return client


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Bring the schema up to date: a SQLite file at once (it cannot come later: a path that
    cannot be opened or written is a start-up failure); a database server in the background,
    retried while it is unreachable (``/status`` says 503 meanwhile)."""
    engine = app[DATABASE]
    task = None
    try:
        if engine.dialect.name == "sqlite":
            await _migrate_local(app)
        else:
            task = asyncio.create_task(_migrate_until_done(app), name="crm-migrate")
        yield
    finally:
        if task is not None:
            await cancel_and_wait(task)
        await engine.dispose()


async def _migrate_local(app: web.Application) -> None:
    engine = app[DATABASE]
    try:
        await upgrade(engine)
        async with engine.begin() as connection:  # read-only files pass the upgrade at head
            version = (await connection.exec_driver_sql("PRAGMA user_version")).scalar()
            await connection.exec_driver_sql(f"PRAGMA user_version = {int(version or 0)}")
    except (OSError, DBAPIError) as exc:
        reason = getattr(exc, "orig", None) or exc
        where = engine.url.render_as_string(hide_password=True)
        raise StartupError(f"database {where} (database.url): {reason}") from exc
    app[SCHEMA_READY].set()


async def _migrate_until_done(app: web.Application) -> None:
    """Retry with backoff; a WARNING when the failure is new or changes, the retries at DEBUG."""
    engine = app[DATABASE]
    where = engine.url.render_as_string(hide_password=True)
    delay, last = 0.5, ""
    while True:
        try:
            await upgrade(engine)
        except (OSError, DBAPIError) as exc:
            reason = str(getattr(exc, "orig", None) or exc)
            (log.debug if reason == last else log.warning)(
                "database %s not ready: %s; retrying", where, reason
            )
            last = reason
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            continue
        app[SCHEMA_READY].set()
        log.info("CRM schema up to date")
        return


async def _bus(app: web.Application) -> AsyncIterator[None]:
    bus = app[BUS]
    if isinstance(bus, RedisBus):
        await bus.start()
    lease = asyncio.create_task(app[LEADER].run(), name="leader-lease")
    yield
    await cancel_and_wait(lease)
    if isinstance(bus, RedisBus):
        await bus.stop()


async def _recorder(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[RECORDER].run(), name="recorder")
    yield
    await cancel_and_wait(task)


async def _ami_link(app: web.Application) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(link.run(), name=f"ami-{link.status.node}") for link in app[LINKS]]
    yield
    await cancel_and_wait(*tasks)


async def _resync_quietly(client: AmiClient, tracker: Tracker) -> None:
    try:
        await resync(client, tracker, client.status.node)
    except (AmiError, TimeoutError) as exc:
        log.warning("resync of %s after a stall failed: %s", client.status.node, exc)


async def _watchdog(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[WATCHDOG].run(), name="loop-watchdog")
    yield
    await cancel_and_wait(task, *app[RESYNCS])


async def _routing(app: web.Application) -> AsyncIterator[None]:
    router = app.get(ROUTER)
    if router is None:
        yield
        return
    task = asyncio.create_task(router.run(), name="router")
    yield
    await cancel_and_wait(task)


async def _fastagi(app: web.Application) -> AsyncIterator[None]:
    agi = app[SETTINGS].agi
    async with _listener("FastAGI", "agi", agi.host, agi.port):
        await app[AGI].start()
    yield
    await app[AGI].stop()


async def _speech(app: web.Application) -> AsyncIterator[None]:
    """Spoken menus only where the user gave a model: no listener, no model load otherwise."""
    speech = app[SPEECH]
    if not speech.languages():
        yield
        return
    listen = app[SETTINGS].speech
    async with _listener("AudioSocket", "speech", listen.host, listen.port):
        await speech.start()
    loading = asyncio.create_task(speech.preload(), name="speech-preload")
    transcription = app[TRANSCRIPTION]
    transcription.attach()
    yield
    await cancel_and_wait(loading)
    await transcription.close()
    await speech.stop()


async def _complaints(app: web.Application) -> AsyncIterator[None]:
    """The detector's data and models are read at start, off the event loop and beside it:
    the first call's live transcript must not wait while the embedding engine loads."""
    app[COMPLAINTS].attach()
    loading = asyncio.create_task(_load_detector(app[COMPLAINTS].detector), name="complaints-load")
    yield
    await cancel_and_wait(loading)
    await app[COMPLAINTS].close()


async def _load_detector(detector: ComplaintDetector) -> None:
    try:
        await asyncio.to_thread(detector.load)
    except ComplaintDataError as exc:  # the first judgement raises it again, where it is logged
        log.error("complaint detector not loaded: %s", exc)
    else:
        heap.settle()  # the models live as long as the server


async def _identification(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[IDENTIFICATION].close()  # look-ups under way: their calls are gone with us


async def healthz_view(_request: web.Request) -> web.Response:
    """Liveness: answered while the event loop runs, whatever AMI or the database say.

    An orchestrator restarts the server when this fails; ``/status`` is readiness (503 while a
    part is down), so a restart never happens merely because Asterisk is down.
    """
    return web.json_response({"ok": True, "version": release()})


async def status_view(request: web.Request) -> web.Response:
    """Health you can wait on: AMI link, database, bus and FastAGI, each with an ``ok``."""
    app = request.app
    database_ok = app[SCHEMA_READY].is_set() and await ping(app[DATABASE])
    tracker = app[TRACKER]
    nodes = [
        {**link.status.as_dict(), "resyncs": tracker.resync_count(link.status.node)}
        for link in app[LINKS]
    ]
    ami = {**nodes[0], "nodes": nodes, "connected": all(n["connected"] for n in nodes)}
    bus: Bus = app[BUS]
    body: dict[str, Any] = {
        "ami": {**ami, "ok": ami["connected"]},
        "database": {"ok": database_ok},
        "bus": bus.status(),
        "agi": {**app[AGI].status(), "ok": app[AGI].status()["listening"]},
        "recorder": app[RECORDER].status(),
        "transcription": app[TRANSCRIPTION].status(),
        "leader": {
            "ok": True,
            "leading": app[LEADER].leading.is_set(),
            "holder": app[LEADER].holder,
        },
    }
    router = app.get(ROUTER)
    if router is not None:
        body["routing"] = {"ok": not router.last_error, "cycles": router.cycles}
    body["ok"] = all(part["ok"] for part in body.values())
    body["version"] = release()
    return web.json_response(body, status=200 if body["ok"] else 503)


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus text format."""
    body = generate_latest(request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def authorize(request: web.Request, role: str) -> web.Response | None:
    """None when the bearer token belongs to ``role`` or above, else the 401 or 403 to send."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    user = None
    if scheme.lower() == "bearer" and 0 < len(token) < 200:
        async with request.app[SESSIONS]() as session:
            user = await user_for_token(session, token.strip())
    if user is None:
        return web.json_response({"error": "unauthorized"}, status=401)
    if role_rank(user.role) < role_rank(role):
        return web.json_response({"error": "forbidden"}, status=403)
    request[AUTHORIZED_USER] = user.username
    return None


AUTHORIZED_USER = web.RequestKey("cti_authorized_user", str)


def authorized_user(request: web.Request) -> str:
    """The username :func:`authorize` let through on this request ("" before it did)."""
    name: str = request.get(AUTHORIZED_USER, "")
    return name


async def live_view(request: web.Request) -> web.Response:
    """The live model (calls, agents, queues) for supervisors: what the wallboard shows."""
    refused = await authorize(request, least("wallboard.watch"))
    if refused is not None:
        return refused
    return web.json_response(request.app[TRACKER].snapshot())


Background = Callable[[web.Application], Coroutine[Any, Any, None]]


class ServeError(Exception):
    """The server could not start, or not stop in time; the message says what, in one line."""


class StartupError(ServeError):
    """A part could not start (a port taken, a database that cannot be opened, ...)."""


@contextlib.asynccontextmanager
async def _listener(what: str, section: str, host: str, port: int) -> AsyncIterator[None]:
    """A listener that cannot bind is named with its address and the setting that moves it."""
    try:
        yield
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StartupError(
            f"{what} cannot listen on {host}:{port} ({section}.host, {section}.port): {reason}"
        ) from exc


async def serve(settings: Settings, background: Background | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop every part and return.

    ``background`` (e.g. the demo's call traffic) runs beside the server and is cancelled first.
    A part that cannot start raises :class:`StartupError` after whatever had started is stopped.
    """
    runner = await _start(settings)
    try:
        log.info(
            "CTI server %s ready: http://%s:%d/status",
            release(),
            settings.http.host,
            settings.http.port,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        extra = asyncio.create_task(background(runner.app)) if background else None
        await stop.wait()
        if extra is not None:
            await cancel_and_wait(extra)
        log.info("stopping")
    finally:
        await _stop(runner, settings.shutdown_timeout)


async def _start(settings: Settings) -> web.AppRunner:
    """Every part started and the HTTP port bound, or nothing left running and StartupError."""
    try:
        app = build_app(settings)
    except Exception as exc:  # e.g. a flow or policy file that cannot be read
        raise StartupError(f"{type(exc).__name__}: {exc}") from exc
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=logging.getLogger(ACCESS_LOGGER) if settings.logging.access_log else None,
        access_log_class=AccessLogger,
        keepalive_timeout=settings.http.idle_timeout,
        logger=ServerLog(),  # a request the parser refuses: one line at INFO, no traceback
    )
    http = settings.http
    try:
        await runner.setup()
        site = GuardedSite(
            runner, http.host, http.port, ReadLimits(http.header_timeout, http.body_timeout)
        )
        async with _listener("HTTP", "http", settings.http.host, settings.http.port):
            await site.start()
    except BaseException as exc:
        try:
            await _stop(runner, settings.shutdown_timeout)
        except Exception as cleanup:  # the start-up failure is what the operator must read
            log.warning("stopping after a failed start: %s: %s", type(cleanup).__name__, cleanup)
        if isinstance(exc, Exception) and not isinstance(exc, ServeError):
            raise StartupError(f"{type(exc).__name__}: {exc}") from exc
        raise
    return runner


async def _stop(runner: web.AppRunner, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await runner.cleanup()
    except TimeoutError:
        raise ServeError(f"did not stop within {timeout:g} s (shutdown_timeout)") from None

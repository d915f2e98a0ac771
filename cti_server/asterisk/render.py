"""Render the Asterisk configuration in ``dialplans/`` from the same settings the server uses.

The server and Asterisk then never disagree about ports, contexts, queues or the AMI user.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

from cti_server.asterisk.data import data_dir
from cti_server.asterisk.sip_digests import REALM
from cti_server.config import Settings
from cti_server.telephony.fastagi import asterisk_key

CONFIG_FILES = (
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "manager.conf",
    "extensions.conf",
    "queues.conf",
    "pjsip.conf",
    "musiconhold.conf",
    "rtp.conf",
    "features.conf",
    "http.conf",
)


@dataclass(frozen=True)
class InstanceDirs:
    """Directories of one Asterisk instance, as Asterisk sees them."""

    etc: str = "/etc/asterisk"
    modules: str = ""
    db: str = "/var/lib/asterisk"
    spool: str = "/var/spool/asterisk"
    run: str = "/var/run/asterisk"
    log: str = "/var/log/asterisk"
    cache: str = "/var/cache/asterisk"

    def with_modules(self) -> InstanceDirs:
        if self.modules:
            return self
        multiarch = sysconfig.get_config_var("MULTIARCH") or ""
        lib = f"/usr/lib/{multiarch}" if multiarch else "/usr/lib"
        return InstanceDirs(**{**self.__dict__, "modules": f"{lib}/asterisk/modules"})


@dataclass(frozen=True)
class RtpRange:
    start: int = 10000
    end: int = 20000


# secrets (the AMI secret, the FastAGI key, SIP password hashes): readable by Asterisk's user only
PRIVATE_FILES = ("manager.conf", "extensions.conf", "pjsip.conf")


class RenderError(ValueError):
    """The settings ask for something the configuration cannot say (a WSS listener without TLS)."""


@dataclass(frozen=True)
class AgentPhone:
    """One agent's endpoint as pjsip.conf needs it."""

    extension: str
    name: str
    browser: bool
    digest: str | None  # the HA1 of the agent's own password, if it has one


def agent_phones(settings: Settings, digests: Mapping[str, str]) -> list[AgentPhone]:
    dialplan = settings.dialplan
    return [
        AgentPhone(
            agent.extension,
            agent.name,
            dialplan.browser_phone(agent),
            digests.get(agent.extension),
        )
        for agent in dialplan.agents
    ]


def render_config(
    settings: Settings,
    dirs: InstanceDirs | None = None,
    rtp: RtpRange | None = None,
    digests: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return ``{file name: text}`` for every Asterisk configuration file we own.

    ``digests`` (``{extension: HA1}``): agents' own SIP passwords, which win over the shared
    ``sip_secret``. The WSS listener is on while some agent has a browser phone.
    """
    agents = agent_phones(settings, digests or {})
    wss = any(agent.browser for agent in agents)
    if wss and settings.dialplan.tls_cert is None:
        raise RenderError(
            "browser phones need a certificate: set [dialplan] tls_cert and tls_key "
            "(`cti asterisk up` makes one for the local Asterisk)"
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("dialplans")),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - Asterisk config files, not HTML; values are validated
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    sip_secret = settings.dialplan.sip_secret
    context = {
        "settings": settings,
        "dirs": (dirs or InstanceDirs()).with_modules(),
        "rtp": rtp or RtpRange(),
        "ami_secret": settings.ami.secret.get_secret_value(),
        "agi_key": asterisk_key(settings.ami.secret.get_secret_value()),
        "sip_secret": sip_secret.get_secret_value() if sip_secret else "",
        "agents": agents,
        "wss": wss,
        "realm": REALM,
    }
    return {name: env.get_template(f"{name}.j2").render(context) for name in CONFIG_FILES}


def write_config(files: dict[str, str], out: Path) -> list[Path]:
    """Write the rendered files; manager.conf holds the AMI secret, extensions.conf the key
    Asterisk proves itself to the FastAGI server with and pjsip.conf the agents' password hashes,
    so none of them is world-readable."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out / name
        mode = 0o600 if name in PRIVATE_FILES else 0o644
        path.unlink(missing_ok=True)  # a new file gets ``mode`` before any byte is written
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        path.chmod(mode)  # the umask may have narrowed it
        written.append(path)
    return written

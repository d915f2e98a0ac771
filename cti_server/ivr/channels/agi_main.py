"""``cti-agi``: the IVR as a classic AGI program, one process per call on stdin/stdout.

Asterisk runs it as ``AGI(cti-agi,inbound)`` or ``AGI(cti-agi,survey)`` (the dialplan does when
``ivr.transport = "agi"``). It walks the same flows with the same :class:`InboundCalls` and
:class:`IvrEngine` as the FastAGI route of ``cti serve``; only the channel (pyst2) and the
server-side services (over the server's HTTP port, see ``agi_client.py``) differ; spoken menu
choices too are heard by the server, Asterisk streaming the caller to it over AudioSocket.

Exit status, which Asterisk reports as ``AGISTATUS``: 0 when the walk ended (also when the caller
hung up); 1 when the CTI server could not be reached or the walk failed: nothing was set on the
channel, so the dialplan's fallback sends the call to the default queue (``AGISTATUS=FAILURE``);
2 for a configuration error.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from asterisk.agi import AGI

from cti_server.asterisk.data import data_dir
from cti_server.config import ConfigError, Settings, load_settings
from cti_server.ivr.channels.agi import AgiCall, AgiChannel, RemoteSpeech, ServerUnavailable
from cti_server.ivr.channels.agi_client import CtiServerClient
from cti_server.ivr.channels.commands import AgiCommandFailed
from cti_server.ivr.engine import CallerGone, IvrEngine
from cti_server.ivr.inbound import InboundCalls
from cti_server.ivr.registry import FlowRegistry

log = logging.getLogger("cti_server.agi")

ROUTES = ("inbound", "survey")
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class _Discard:
    """pyst2 writes the whole AGI environment (caller ID, name) to stderr: not into our logs."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def server_url(settings: Settings) -> str:
    """``ivr.server_url``, else the server's own HTTP address (a wildcard bind: loopback)."""
    if settings.ivr.server_url:
        return settings.ivr.server_url
    host = settings.http.host
    if host in ("", "0.0.0.0"):  # noqa: S104 - reading a bind address, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http.port}"


def build_inbound(settings: Settings, server: CtiServerClient) -> InboundCalls:
    """The same routes as ``cti serve`` builds, with the server's services reached over HTTP."""
    return InboundCalls(
        server,
        settings.ami.node,
        settings.dialplan.default_queue,
        flows=FlowRegistry(settings.ivr.flows_dir or data_dir("ivr_flows")),
        flow_name=settings.ivr.inbound_flow,
        survey_flow=settings.ivr.survey_flow,
        estimate_wait=server.estimated_wait,
        callers_ahead=server.callers_ahead,
        engine=IvrEngine(
            None, server.by_account, server.self_service, verify_pin=server.verify_pin
        ),
        caller_lookup=server.for_call,
    )


async def walk(
    calls: InboundCalls, call: AgiCall, route: str, speech: RemoteSpeech | None = None
) -> int:
    """Walk ``route`` for the call; the exit status that tells Asterisk how it went. Spoken
    menu choices are heard by the server (``speech``)."""
    channel = AgiChannel(call, speech)
    try:
        if route == "inbound":
            await calls.walk_inbound(call, channel)
        else:
            await calls.walk_survey(call, channel)
    except ServerUnavailable as exc:
        log.error("CTI server unavailable, the dialplan's fallback takes the call: %s", exc)
        return EXIT_FAILED
    except CallerGone:
        log.info("the caller hung up during %s", route)
    except AgiCommandFailed as exc:
        log.error("AGI %s failed: %s", route, exc)
        return EXIT_FAILED
    return EXIT_OK


def _settings(config_file: Path | None) -> Settings:
    """cti-agi never talks to AMI: it runs without the AMI secret."""
    needs_no_secret: dict[str, Any] = (
        {}
        if os.environ.get("CTI_AMI__SECRET") or os.environ.get("CTI_AMI__SECRET_FILE")
        else {"ami": {"secret": "unused"}}
    )
    return load_settings(config_file, **needs_no_secret)


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (default: $CTI_CONFIG_FILE; the environment overrides it).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (on stderr).")
@click.argument("route", required=False, type=click.Choice(ROUTES))
def main(config_file: Path | None, verbose: bool, route: str | None) -> None:
    """One call's IVR over classic AGI: ROUTE is inbound or survey (default: agi_arg_1)."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="cti-agi[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = _settings(config_file)
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(EXIT_CONFIG)
    token = settings.ivr.service_token
    if token is None:
        log.error("no ivr.service_token (CTI_IVR__SERVICE_TOKEN or _FILE): cannot ask the server")
        sys.exit(EXIT_FAILED)
    agi = AGI(
        stdin=io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n"),
        stdout=io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n"),
        stderr=_Discard(),
    )
    call = AgiCall(agi)
    route = route or call.env.get("agi_arg_1", "")
    if route not in ROUTES:
        log.error("unknown route %r: AGI(cti-agi,inbound) or AGI(cti-agi,survey)", route)
        sys.exit(EXIT_CONFIG)
    server = CtiServerClient(
        server_url(settings),
        token.get_secret_value(),
        settings.ami.node,
        settings.ivr.agi_http_timeout,
    )
    sys.exit(asyncio.run(walk(build_inbound(settings, server), call, route, speech=server)))


if __name__ == "__main__":
    main()

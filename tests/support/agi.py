"""Classic AGI in tests: a running Asterisk's dialplan switched to ``cti-agi`` for a while."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import SecretStr

from cti_server.asterisk.agi_bridge import AgiBridge
from cti_server.config import Settings
from tests.support.asterisk import AsteriskNode


def with_classic_agi(settings: Settings) -> Settings:
    """The same settings with the IVR on classic AGI and a fresh service token."""
    ivr = settings.ivr.model_copy(
        update={"transport": "agi", "service_token": SecretStr(secrets.token_urlsafe(24))}
    )
    return settings.model_copy(update={"ivr": ivr})


def cti_agi_env(settings: Settings, token_file: Path) -> dict[str, str]:
    """What ``cti-agi`` reads: the settings it needs, the token from a ``_FILE`` variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    ivr = settings.ivr
    env.update(
        CTI_AMI__NODE=settings.ami.node,
        CTI_HTTP__PORT=str(settings.http.port),
        CTI_IVR__TRANSPORT="agi",
        CTI_IVR__INBOUND_FLOW=ivr.inbound_flow or "",
        CTI_IVR__SURVEY_FLOW=ivr.survey_flow or "",
        CTI_IVR__SERVICE_TOKEN_FILE=str(token_file),
        CTI_DIALPLAN__DEFAULT_QUEUE=settings.dialplan.default_queue,
    )
    if ivr.flows_dir is not None:
        env["CTI_IVR__FLOWS_DIR"] = str(ivr.flows_dir)
    return env


@asynccontextmanager
async def classic_agi(
    node: AsteriskNode, settings: Settings, workdir: Path
) -> AsyncIterator[AgiBridge]:
    """Calls into ``node`` run ``cti-agi`` (behind the AGI bridge) with ``settings``; after, the
    node's own dialplan (FastAGI) is back for the tests that follow."""
    token = settings.ivr.service_token
    assert token is not None, "with_classic_agi() gives the server and cti-agi their token"
    token_file = workdir / "agi-token"
    token_file.write_text(token.get_secret_value(), encoding="utf-8")
    token_file.chmod(0o600)
    bridge = AgiBridge(
        node.instance.agi_socket,
        env=cti_agi_env(settings, token_file),
        log_path=workdir / "cti-agi.log",
    )
    await bridge.start()
    try:
        await asyncio.to_thread(node.instance.reload, settings)
        try:
            yield bridge
        finally:
            await asyncio.to_thread(node.instance.reload, node.settings)
    finally:
        await bridge.stop()

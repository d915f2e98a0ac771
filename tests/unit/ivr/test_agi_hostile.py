"""The IVR over the classic AGI adapter (pyst2, pipes) against hostile and recorded input: the
same cases as over the FastAGI socket (``test_fastagi_hostile.py``), the same outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cti_server.asterisk.data import data_dir
from cti_server.ivr.channels.agi import AgiCall, AgiChannel
from cti_server.ivr.channels.commands import key_of
from cti_server.ivr.engine import Customer, IvrEngine, IvrResult
from cti_server.ivr.flow import Flow, load_flow
from tests.support.agi_pipes import AgiPipes, sighup_kept
from tests.support.agi_sessions import env_lines, recorded_sessions

FLOWS = data_dir("ivr_flows")
CALLER = "+8613800138000"
HEAD = f"agi_request: cti-agi\nagi_channel: PJSIP/trunk-00000001\nagi_callerid: {CALLER}\n\n"
OK = "200 result=0 endpos=0"


@pytest.fixture
def pipes() -> Iterator[AgiPipes]:
    with sighup_kept():
        opened = AgiPipes()
        yield opened
        opened.close()


@pytest.fixture(scope="module")
def main_flow() -> Flow:
    return load_flow(FLOWS / "main.yaml", FLOWS / "prompts")


class Nobody:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, key: str) -> Customer | None:
        self.asked.append(key)
        return None


async def _walk(main_flow: Flow, call: AgiCall, crm: Nobody) -> IvrResult:
    engine = IvrEngine(crm, crm)
    return await engine.run(main_flow, AgiChannel(call), call.env.get("agi_callerid", ""))


@pytest.mark.asyncio
async def test_a_100_digit_account_and_a_hash_star_flood_lead_to_the_operator(
    main_flow: Flow, pipes: AgiPipes
) -> None:
    answers = [
        "200 result=1",  # SET VARIABLE CHANNEL(language)
        OK,  # GET OPTION choose_language: nothing
        "200 result=" + "7" * 100,  # GET DATA enter_account
        OK,  # STREAM FILE welcome
        *["200 result=35 endpos=0", OK, "200 result=42 endpos=0", OK] * 2,  # # and * at the menu
    ]
    crm = Nobody()
    result = await _walk(main_flow, pipes.call(HEAD, answers), crm)
    commands = pipes.commands()

    assert crm.asked == [CALLER, CALLER]  # the 100 digits never reach the CRM
    by_step = {r.step: r for r in result.path}
    assert by_step["identify_account"].input == "account: 100 characters, refused"
    assert by_step["menu"].input == "# * #"
    assert sum(c.startswith("GET OPTION cti/main_menu") for c in commands) == 3
    assert result.attributes["intent"] == "operator"
    assert result.outcome == "transfer"


@pytest.mark.parametrize("path", recorded_sessions())
@pytest.mark.asyncio
async def test_recorded_environment_blocks_are_read_by_pyst2(
    main_flow: Flow, pipes: AgiPipes, path: Path
) -> None:
    """Every recorded block (one has no space after the colon) as pyst2 reads it, walked to the
    operator as over FastAGI: no language, account "0" (unknown), three silent menus."""
    lines = env_lines(path)
    expected: dict[str, Any] = {
        k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)
    }
    crm = Nobody()
    call = pipes.call("\n".join(lines) + "\n\n", [OK] * 12)
    assert dict(call.env) == expected
    result = await _walk(main_flow, call, crm)

    assert crm.asked == [expected["agi_callerid"], expected["agi_callerid"], "0"]
    assert result.outcome == "transfer"
    assert result.attributes["intent"] == "operator"


@pytest.mark.parametrize(
    ("code", "key"),
    [
        ("49", "1"),
        ("35", "#"),
        ("42", "*"),
        ("65", "A"),
        ("68", "D"),
        ("0", ""),
        ("69", ""),  # E: no key on a keypad
        ("97", ""),  # a
        ("10", ""),  # a line feed
        ("-1", ""),
        ("1114111", ""),
        ("1114112", ""),
        ("9" * 40, ""),
        ("x", ""),
    ],
)
def test_only_keypad_keys_are_keys(code: str, key: str) -> None:
    assert key_of(code) == key

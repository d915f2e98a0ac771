"""The IVR over the classic AGI adapter (pyst2, pipes) against hostile and recorded input: the
same cases as over the FastAGI socket (``test_fastagi_hostile.py``), the same outcomes."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asterisk.agi import AGI

from cti_server.asterisk.data import data_dir
from cti_server.ivr.channels.agi import AgiCall, AgiChannel
from cti_server.ivr.channels.commands import key_of
from cti_server.ivr.engine import Customer, IvrEngine, IvrResult
from cti_server.ivr.flow import Flow, load_flow
from tests.support.agi_sessions import env_lines, recorded_sessions

FLOWS = data_dir("ivr_flows")
CALLER = "+8613800138000"
HEAD = f"agi_request: cti-agi\nagi_channel: PJSIP/trunk-00000001\nagi_callerid: {CALLER}\n\n"
OK = "200 result=0 endpos=0"


class Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


class Pipes:
    """Asterisk's side written in advance (the environment, then the answers) and closed."""

    def __init__(self) -> None:
        self._opened: list[io.TextIOWrapper] = []
        self._stdout: io.TextIOWrapper | None = None
        self._sent: io.TextIOWrapper | None = None

    def call(self, head: str, answers: list[str]) -> AgiCall:
        to_script_r, to_script_w = os.pipe()
        from_script_r, from_script_w = os.pipe()
        with open(to_script_w, "w", encoding="utf-8") as asterisk_side:
            asterisk_side.write(head + "".join(f"{a}\n" for a in answers))
        stdin = open(to_script_r, encoding="utf-8", newline="\n")  # noqa: SIM115
        self._stdout = open(from_script_w, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self._sent = open(from_script_r, encoding="utf-8")  # noqa: SIM115
        self._opened.extend([stdin, self._stdout, self._sent])
        return AgiCall(AGI(stdin=stdin, stdout=self._stdout, stderr=Discard()))

    def commands(self) -> list[str]:
        assert self._stdout is not None
        assert self._sent is not None
        self._stdout.close()
        return self._sent.read().splitlines()

    def close(self) -> None:
        for handle in self._opened:
            handle.close()


@pytest.fixture
def pipes() -> Iterator[Pipes]:
    before = signal.getsignal(signal.SIGHUP)  # pyst2 installs its own handler
    opened = Pipes()
    yield opened
    opened.close()
    signal.signal(signal.SIGHUP, before)


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
    main_flow: Flow, pipes: Pipes
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
    main_flow: Flow, pipes: Pipes, path: Path
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

"""The classic-AGI channel (pyst2) over pipes, with Asterisk's answers scripted in advance."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from cti_server.config import load_settings
from cti_server.events import CallKey, DomainEvent
from cti_server.ivr.channels.agi import AgiCall, AgiChannel, RemoteListening, ServerUnavailable
from cti_server.ivr.channels.agi_main import build_inbound, walk
from cti_server.ivr.channels.commands import AgiCommandFailed
from cti_server.ivr.engine import CallerGone, Customer, Lookup, PinCheck, Recording
from cti_server.speech.heard import Heard
from tests.support.agi_pipes import AgiPipes, sighup_kept

ENV = {
    "agi_request": "cti-agi",
    "agi_channel": "PJSIP/trunk-00000001",
    "agi_uniqueid": "1700000000.1",
    "agi_callerid": "+8613800138000",
    "agi_calleridname": "张伟",
    "agi_arg_1": "inbound",
}
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


Script = Callable[..., tuple[AgiCall, Callable[[], list[str]]]]


@pytest.fixture
def asterisk() -> Iterator[Script]:
    """``asterisk(*answers)``: a call whose Asterisk has written its environment and these
    answers, then closed its end (more commands meet EOF); and what the script sent."""
    made: list[AgiPipes] = []

    def make(
        *answers: str, env: dict[str, str] | None = None
    ) -> tuple[AgiCall, Callable[[], list[str]]]:
        pipes = AgiPipes()
        made.append(pipes)
        head = "".join(f"{k}: {v}\n" for k, v in (env or ENV).items()) + "\n"
        return pipes.call(head, list(answers)), pipes.commands

    with sighup_kept():
        yield make
        for pipes in made:
            pipes.close()


@pytest.mark.asyncio
async def test_the_environment_is_read_as_pyst2_reads_it(asterisk: Script) -> None:
    call, _ = asterisk()
    assert call.env["agi_calleridname"] == "张伟"
    assert call.env["agi_arg_1"] == "inbound"


@pytest.mark.asyncio
async def test_play_sets_the_language_once_and_returns_the_key(asterisk: Script) -> None:
    call, commands = asterisk("200 result=1", "200 result=49 endpos=800", "200 result=0")
    channel = AgiChannel(call)
    assert await channel.play("main_menu", "zh", "0123456789*#") == "1"
    assert await channel.play("invalid", "zh") == ""
    assert commands() == [
        'SET VARIABLE CHANNEL(language) "zh"',
        'STREAM FILE cti/main_menu "0123456789*#"',
        'STREAM FILE cti/invalid ""',
    ]


@pytest.mark.asyncio
async def test_minus_one_with_the_caller_still_there_goes_on(asterisk: Script) -> None:
    """-1 is also "could not play": CHANNEL STATUS says the caller is there, the walk goes on."""
    call, commands = asterisk(
        "200 result=1", "200 result=-1 endpos=0", "200 result=6", "200 result=50"
    )
    channel = AgiChannel(call)
    assert await channel.play("missing", "en") == ""
    assert await channel.read_key(2.5) == "2"
    assert commands()[1:] == ['STREAM FILE cti/missing ""', "CHANNEL STATUS", "WAIT FOR DIGIT 2500"]


@pytest.mark.asyncio
async def test_minus_one_on_a_dead_channel_is_the_caller_gone(asterisk: Script) -> None:
    call, _ = asterisk("200 result=-1", DEAD)
    with pytest.raises(CallerGone):
        await AgiChannel(call).read_key(4)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answers",
    [
        (),  # the link closes mid-step (EOF)
        ("200 result=-1 (hangup)",),
        ("HANGUP",),  # not an AGI answer
    ],
    ids=["eof", "hangup-answer", "not-agi"],
)
async def test_a_hang_up_mid_step_is_the_caller_gone(
    asterisk: Script, answers: tuple[str, ...]
) -> None:
    call, _ = asterisk("200 result=1", *answers)
    with pytest.raises(CallerGone):
        await AgiChannel(call).read_digits("enter_account", "en", 8, 5)


@pytest.mark.asyncio
async def test_digits_and_timeouts(asterisk: Script) -> None:
    call, commands = asterisk("200 result=1", "200 result=12345678", "200 result= (timeout)")
    channel = AgiChannel(call)
    assert await channel.read_digits("enter_account", "en", 8, 5) == "12345678"
    assert await channel.read_digits("enter_account", "en", 8, 5) == ""
    assert commands()[1] == "GET DATA cti/enter_account 5000 8"


@pytest.mark.asyncio
async def test_a_recording_is_where_asterisk_wrote_it(asterisk: Script) -> None:
    call, commands = asterisk(
        "200 result=1 (/var/spool/asterisk)", "200 result=0 (timeout) endpos=16000"
    )
    made = await AgiChannel(call).record("ivr/comment-1", 60, 4)
    assert made == Recording("/var/spool/asterisk/recordings/ivr/comment-1.wav", 2.0)
    assert commands() == [
        'GET FULL VARIABLE "${ASTSPOOLDIR}"',
        'RECORD FILE /var/spool/asterisk/recordings/ivr/comment-1 wav "#" 60000 BEEP s=4',
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", ["200 result=-1 (hangup) endpos=24000", None])
async def test_hanging_up_while_recording_keeps_the_message(
    asterisk: Script, answer: str | None
) -> None:
    call, _ = asterisk("200 result=1 (/var/spool/asterisk)", *([answer] if answer else []))
    with pytest.raises(CallerGone) as gone:
        await AgiChannel(call).record("ivr/voicemail-1", 120, 5)
    assert gone.value.recording == Recording(
        "/var/spool/asterisk/recordings/ivr/voicemail-1.wav", -1.0
    )


@pytest.mark.asyncio
async def test_a_sighup_before_recording_is_no_message(asterisk: Script) -> None:
    call, commands = asterisk("200 result=1 (/var/spool/asterisk)")
    os.kill(os.getpid(), signal.SIGHUP)  # as Asterisk signals a hang-up to its AGI program
    with pytest.raises(CallerGone) as gone:
        await AgiChannel(call).record("ivr/voicemail-1", 120, 5)
    assert gone.value.recording is None
    assert commands() == []


@pytest.mark.asyncio
async def test_line_breaks_never_reach_asterisk(asterisk: Script) -> None:
    """A CRM value or a caller's name with CR/LF/NUL cannot add a command of its own."""
    call, commands = asterisk("200 result=1", "200 result=1", "200 result=1", "200 result=0")
    channel = AgiChannel(call)
    await channel.set_variable("CTI_ATTR_NAME", 'Wang\r\nEXEC Dial "x"\x00')
    await call.set_variable("CTI_QUEUE\nHANGUP", "support")
    await channel.say("number", "12\n34", "en")
    assert commands() == [
        'SET VARIABLE CTI_ATTR_NAME "Wang  EXEC Dial \\"x\\""',
        'SET VARIABLE CTI_QUEUE HANGUP "support"',
        'SET VARIABLE CHANNEL(language) "en"',
        'SAY NUMBER 12 34 ""',
    ]


@pytest.mark.asyncio
async def test_variables_read_as_pyst2_reads_them(asterisk: Script) -> None:
    call, _ = asterisk(
        "200 result=1 (sim-1)", "200 result=0", "200 result=1 (hangup)", "510 Invalid"
    )
    assert await call.get_variable("${CHANNEL(linkedid)}") == "sim-1"
    assert await call.get_variable("${CTI_DID}") == ""
    assert await call.get_variable("${CTI_ROUTE}") == "hangup"  # a value, not a hang-up
    with pytest.raises(AgiCommandFailed):
        await call.get_variable("${BROKEN")


class _Unreachable:
    """The server as cti-agi sees it when nothing answers on its port."""

    def publish(self, event: DomainEvent) -> None:
        raise ServerUnavailable(f"{type(event).__name__}: connection refused")

    def estimated_wait(self, queue: str) -> float:
        raise ServerUnavailable(queue)

    def callers_ahead(self, queue: str) -> int:
        raise ServerUnavailable(queue)

    def for_call(self, key: CallKey) -> Lookup:
        async def by_caller_id(number: str) -> Customer | None:
            raise ServerUnavailable(f"{key}: {number}")

        return by_caller_id

    async def by_account(self, digits: str) -> Customer | None:
        raise ServerUnavailable(digits)

    async def self_service(self, name: str, customer: Customer | None) -> dict[str, str] | None:
        raise ServerUnavailable(name)

    async def verify_pin(self, customer: Customer, pin: str) -> PinCheck:
        raise ServerUnavailable("pin")


@pytest.mark.asyncio
async def test_server_out_of_reach_ends_the_walk_with_nothing_set(
    asterisk: Script, tmp_path: Path
) -> None:
    """Exit status 1 and no CTI_QUEUE: the dialplan's fallback sends the call on."""
    call, commands = asterisk("200 result=1 (1700000000.1)", "200 result=1 (100)")
    settings = load_settings(None, ami={"secret": "unused"})
    calls = build_inbound(settings, _Unreachable())  # type: ignore[arg-type]
    assert await walk(calls, call, "inbound") == 1
    assert not any("CTI_QUEUE" in line for line in commands())


@pytest.mark.asyncio
async def test_a_menu_plays_and_waits_for_the_key_in_one_command(asterisk: Script) -> None:
    """GET OPTION: a key pressed just as the prompt ends is not lost between two commands."""
    call, commands = asterisk("200 result=1", "200 result=51 endpos=0")
    channel = AgiChannel(call)
    assert await channel.ask("main_menu", "en", "0123456789*#", 4) == "3"
    assert commands() == [
        'SET VARIABLE CHANNEL(language) "en"',
        'GET OPTION cti/main_menu "0123456789*#" 4000',
    ]


WORDS = {"잔액": "1", "상담원": "0"}
HEARD = RemoteListening("4d3c2b1a-0000-4000-8000-000000000001", "127.0.0.1:4575", 12.0)
AUDIOSOCKET = f"EXEC AudioSocket {HEARD.id},{HEARD.address}"
SAID_BALANCE = Heard("1", "잔액")


class FakeServer:
    """The CTI server's speech as cti-agi reaches it: Korean only; ``fail`` names what is out
    of reach."""

    def __init__(self, heard: Heard = SAID_BALANCE, fail: str = "") -> None:
        self._heard = heard
        self._fail = fail
        self.asked: list[str] = []

    def _ask(self, what: str) -> None:
        self.asked.append(what)
        if what == self._fail:
            raise ServerUnavailable(f"{what}: connection refused")

    def speech_languages(self) -> set[str]:
        self._ask("languages")
        return {"ko"}

    def listen(
        self, words: Mapping[str, str], language: str, timeout: float
    ) -> RemoteListening | None:
        self._ask("listen")
        assert dict(words) == WORDS
        return HEARD if language == "ko" else None

    def heard(self, listening: RemoteListening) -> Heard:
        self._ask("heard")
        assert listening == HEARD
        return self._heard


def test_the_server_is_asked_once_per_call_which_languages_it_hears(asterisk: Script) -> None:
    call, _ = asterisk()
    server = FakeServer()
    channel = AgiChannel(call, server)
    assert channel.understands("ko")
    assert not channel.understands("en")
    assert channel.understands("ko")
    assert server.asked == ["languages"]
    assert not AgiChannel(call).understands("ko")  # no server given: keys only


def test_a_server_out_of_reach_understands_nothing(asterisk: Script) -> None:
    call, _ = asterisk()
    server = FakeServer(fail="languages")
    channel = AgiChannel(call, server)
    assert not channel.understands("ko")
    assert not channel.understands("ko")
    assert server.asked == ["languages"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("audiosocket", "heard"),
    [
        ("200 result=-1", Heard("1", "잔액")),  # the server closed the socket: it heard
        ("200 result=0", Heard("1", "잔액")),
        ("200 result=-1", Heard("0")),  # a key pressed while listening
        ("200 result=-1", Heard("")),  # silence
    ],
    ids=["word", "word-result-0", "key", "silence"],
)
async def test_asterisk_streams_the_caller_to_the_server_which_says_what_it_heard(
    asterisk: Script, audiosocket: str, heard: Heard
) -> None:
    still_there = ["200 result=6"] if audiosocket.endswith("-1") else []
    call, commands = asterisk(audiosocket, *still_there)
    server = FakeServer(heard)
    assert await AgiChannel(call, server).listen(WORDS, "ko", 6) == heard
    assert server.asked == ["listen", "heard"]
    assert commands() == [AUDIOSOCKET, *(["CHANNEL STATUS"] if still_there else [])]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("language", "fail", "asked"),
    [("en", "", ["listen"]), ("ko", "listen", ["listen"])],
    ids=["no-model", "server-gone"],
)
async def test_without_a_listening_a_key_is_read_as_before(
    asterisk: Script, language: str, fail: str, asked: list[str]
) -> None:
    call, commands = asterisk("200 result=48")
    server = FakeServer(fail=fail)
    assert await AgiChannel(call, server).listen(WORDS, language, 6) == Heard("0")
    assert server.asked == asked
    assert commands() == ["WAIT FOR DIGIT 6000"]


@pytest.mark.asyncio
async def test_no_server_at_all_reads_a_key(asterisk: Script) -> None:
    call, commands = asterisk("200 result=0")
    assert await AgiChannel(call).listen(WORDS, "ko", 4) == Heard("")
    assert commands() == ["WAIT FOR DIGIT 4000"]


@pytest.mark.asyncio
async def test_a_server_that_lost_what_it_heard_gets_a_key_instead(asterisk: Script) -> None:
    call, commands = asterisk("200 result=-1", "200 result=6", "200 result=49")
    server = FakeServer(fail="heard")
    assert await AgiChannel(call, server).listen(WORDS, "ko", 6) == Heard("1")
    assert commands() == [AUDIOSOCKET, "CHANNEL STATUS", "WAIT FOR DIGIT 6000"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answers",
    [
        ("200 result=-1", DEAD),  # AudioSocket ended, and the channel is dead
        ("200 result=-1 (hangup)",),
        (),  # the link closes mid-listen (EOF)
    ],
    ids=["dead-channel", "hangup-answer", "eof"],
)
async def test_hanging_up_while_listening_is_the_caller_gone(
    asterisk: Script, answers: tuple[str, ...]
) -> None:
    call, _ = asterisk(*answers)
    server = FakeServer()
    with pytest.raises(CallerGone):
        await AgiChannel(call, server).listen(WORDS, "ko", 6)
    assert server.asked == ["listen"]  # nothing to fetch: the server forgets it by itself

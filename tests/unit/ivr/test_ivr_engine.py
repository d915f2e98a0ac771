"""The IVR engine over a scripted in-memory channel, on the shipped ``main`` flow and small ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cti_server.ivr.engine import (
    MASK,
    MAX_STEPS,
    CallerGone,
    Customer,
    IvrEngine,
    Recording,
)
from cti_server.ivr.flow import Flow, FlowError, MenuStep, load_flow
from tests.support.ivr_script import (
    ACCOUNT,
    ACCOUNT_HOLDER,
    NO_LANGUAGE,
    UNKNOWN_NUMBER,
    VIP,
    VIP_NUMBER,
    Crm,
    ScriptedChannel,
    steps,
)

STRANGER_TO_OPERATOR = [
    "identify",
    "choose_language",
    "identify_account",
    "opening_hours",
    "welcome",
    "menu",
    "operator",
]


def write_flow(tmp_path: Path, flow: dict[str, object]) -> Flow:
    path = tmp_path / f"{flow['name']}.yaml"
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    return load_flow(path)


@pytest.mark.asyncio
async def test_known_vip_pressing_1_goes_to_billing_with_high_priority(main_flow: Flow) -> None:
    crm = Crm()
    channel = ScriptedChannel(["1"])  # presses 1 during the menu prompt
    result = await crm.engine().run(main_flow, channel, VIP_NUMBER)

    assert result.outcome == "transfer"
    assert result.queue == "support"
    assert result.customer == VIP
    assert result.attributes == {
        "language": "zh",
        "tier": "platinum",
        "customer_id": "42",
        "verified": "no",  # named by caller ID, proved nothing
        "intent": "billing",
        "skill": "billing",
        "priority": "high",
    }
    assert steps(result) == [
        "identify",
        "opening_hours",
        "welcome",
        "menu",
        "billing",
        "long_wait",
        "by_tier",
        "priority",
    ]
    assert [r.kind for r in result.path] == [
        "identify",
        "branch",
        "play",
        "menu",
        "set",
        "branch",
        "branch",
        "transfer",
    ]
    assert result.path[0].input == "caller id"
    assert result.path[3].input == "1"
    assert all(r.seconds >= 0 for r in result.path)
    # known by caller ID: never asked for an account; prompts in the customer's language
    assert crm.by_caller_id_asked == [VIP_NUMBER]
    assert crm.by_account_asked == []
    assert channel.calls == ["play welcome zh ''", "play main_menu zh '0123456789*#'"]
    assert result.inputs == {}
    assert channel.unused == []


@pytest.mark.asyncio
async def test_three_invalid_keys_go_to_the_operator(main_flow: Flow) -> None:
    channel = ScriptedChannel(["", "8", "", "7", "", "6"])
    result = await Crm().engine().run(main_flow, channel, VIP_NUMBER)

    assert result.outcome == "transfer"
    assert result.attributes["intent"] == "operator"
    assert steps(result) == ["identify", "opening_hours", "welcome", "menu", "operator"]
    assert result.path[3].input == "8 7 6"
    menu = [call.split(" ")[1] for call in channel.calls if call.startswith("play")][1:]
    assert menu == ["main_menu", "invalid", "main_menu", "invalid", "main_menu", "invalid"]
    assert channel.calls.count("read_key 4.0") == 3
    assert channel.unused == []


@pytest.mark.asyncio
async def test_silent_caller_goes_to_the_operator_after_the_retries(main_flow: Flow) -> None:
    menu = main_flow.steps["menu"]
    assert isinstance(menu, MenuStep)
    channel = ScriptedChannel(["", ""] * menu.retries)
    result = await Crm().engine().run(main_flow, channel, VIP_NUMBER)

    assert result.outcome == "transfer"
    assert result.attributes["intent"] == "operator"
    assert steps(result)[-2:] == ["menu", "operator"]
    assert result.path[3].input == ""
    assert channel.calls.count(f"read_key {menu.timeout}") == menu.retries
    assert channel.calls.count("play main_menu zh '0123456789*#'") == menu.retries
    assert not any("invalid" in call for call in channel.calls)  # a timeout is not an error
    assert channel.unused == []


@pytest.mark.asyncio
async def test_unknown_caller_typing_an_account_number_is_identified(main_flow: Flow) -> None:
    crm = Crm()
    channel = ScriptedChannel(["2", ACCOUNT, "2"])  # Chinese, the account, sales
    result = await crm.engine().run(main_flow, channel, UNKNOWN_NUMBER)

    assert crm.by_caller_id_asked == [UNKNOWN_NUMBER] * 2
    assert crm.by_account_asked == [ACCOUNT]
    assert channel.calls[:2] == [
        "play choose_language en '0123456789*#'",
        "read_digits enter_account zh 9 8.0",
    ]
    assert result.customer == ACCOUNT_HOLDER
    assert result.path[1].input == "2"
    assert result.path[3].input == f"account {ACCOUNT}"
    assert result.inputs == {"account": ACCOUNT}
    assert result.outcome == "transfer"
    assert steps(result) == [
        "identify",
        "choose_language",
        "chinese",
        "identify_account",
        "opening_hours",
        "welcome",
        "menu",
        "sales",
        "long_wait",
        "by_tier",
        "queue",
    ]
    assert result.attributes == {
        "language": "zh",  # the customer has none on file: the one they chose
        "tier": "silver",
        "customer_id": "7",
        "verified": "no",  # an account number is no proof either
        "intent": "sales",
        "skill": "sales",
    }


@pytest.mark.asyncio
async def test_unknown_caller_typing_nothing_still_reaches_the_menu(main_flow: Flow) -> None:
    crm = Crm()
    channel = ScriptedChannel([*NO_LANGUAGE, "", "0"])
    result = await crm.engine().run(main_flow, channel, UNKNOWN_NUMBER)

    assert result.customer is None
    assert crm.by_account_asked == []
    assert result.path[2].input == "account: none given"
    assert result.inputs == {"account": ""}
    assert "tier" not in result.attributes
    assert result.attributes["language"] == "en"  # none chosen: the flow's first
    assert steps(result) == STRANGER_TO_OPERATOR
    assert result.outcome == "transfer"


@pytest.mark.asyncio
async def test_caller_without_caller_id_is_asked_for_the_account(main_flow: Flow) -> None:
    crm = Crm()
    channel = ScriptedChannel([*NO_LANGUAGE, ACCOUNT, "0"])
    result = await crm.engine().run(main_flow, channel, "")

    assert crm.by_caller_id_asked == []
    assert result.customer == ACCOUNT_HOLDER


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("9" * 100, id="100-digits"),
        pytest.param("#*" * 500, id="hash-star-flood"),
        pytest.param("1234#*#*5678", id="mixed"),
        pytest.param("١٢٣٤٥٦٧٨", id="arabic-indic-digits"),
    ],
)
@pytest.mark.asyncio
async def test_hostile_account_input_is_survived_and_not_identified(
    main_flow: Flow, typed: str
) -> None:
    crm = Crm()
    channel = ScriptedChannel([*NO_LANGUAGE, typed, "0"])
    result = await crm.engine().run(main_flow, channel, UNKNOWN_NUMBER)

    assert result.customer is None
    assert "customer_id" not in result.attributes
    assert steps(result) == STRANGER_TO_OPERATOR
    assert result.outcome == "transfer"
    # nothing but the step's account_digits digits reaches the CRM
    assert all(asked.isdigit() and len(asked) <= 9 for asked in crm.by_account_asked)
    assert result.inputs == {"account": ""}


@pytest.mark.asyncio
async def test_caller_gone_mid_menu_keeps_the_steps_taken(main_flow: Flow) -> None:
    channel = ScriptedChannel(["", "8", CallerGone("hung up")])
    result = await Crm().engine().run(main_flow, channel, VIP_NUMBER)

    assert result.outcome == "caller_gone"
    assert result.queue == ""
    assert steps(result) == ["identify", "opening_hours", "welcome", "menu"]
    assert result.customer == VIP  # what was learned before is kept
    assert result.attributes["tier"] == "platinum"
    assert channel.calls[-1] == "play main_menu zh '0123456789*#'"


@pytest.mark.asyncio
async def test_caller_gone_while_typing_the_account(main_flow: Flow) -> None:
    channel = ScriptedChannel([*NO_LANGUAGE, CallerGone("hung up")])
    result = await Crm().engine().run(main_flow, channel, UNKNOWN_NUMBER)

    assert result.outcome == "caller_gone"
    assert steps(result) == ["identify", "choose_language", "identify_account"]


PIN_FLOW: dict[str, object] = {
    "name": "pin",
    "languages": ["en"],
    "start": "pin",
    "steps": {
        "pin": {
            "type": "collect",
            "prompt": "enter_pin",
            "into": "pin",
            "min_digits": 4,
            "max_digits": 6,
            "retries": 2,
            "secret": True,
            "next": "done",
            "on_fail": "failed",
        },
        "done": {"type": "transfer", "queue": "support"},
        "failed": {"type": "hangup", "prompt": "goodbye"},
    },
}


@pytest.mark.asyncio
async def test_secret_collect_is_masked_in_path_and_inputs(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, PIN_FLOW)
    channel = ScriptedChannel(["12", "4321"])  # too short, then a good PIN
    result = await Crm().engine().run(flow, channel, UNKNOWN_NUMBER)

    assert result.outcome == "transfer"
    # each try is recorded with why it was refused; the digits never
    assert result.path[0].input == "*** (2 digits, wanted 4-6) ***"
    assert MASK == "***"
    assert result.inputs == {"pin": "***"}
    assert "4321" not in repr([r.as_dict() for r in result.path])
    assert channel.calls == ["read_digits enter_pin en 6 8.0"] * 2


@pytest.mark.asyncio
async def test_secret_collect_failing_hangs_up_and_records_nothing(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, PIN_FLOW)
    channel = ScriptedChannel(["12", "1234567"])  # too short, too long
    result = await Crm().engine().run(flow, channel, UNKNOWN_NUMBER)

    assert result.outcome == "hangup"
    assert steps(result) == ["pin", "failed"]
    assert result.inputs == {}
    assert "pin" not in result.attributes
    assert channel.played[-1] == ("goodbye", "en")


@pytest.mark.asyncio
async def test_secret_collect_value_is_not_in_the_published_attributes(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, PIN_FLOW)
    result = await Crm().engine().run(flow, ScriptedChannel(["4321"]), UNKNOWN_NUMBER)

    assert result.outcome == "transfer"
    assert "4321" not in result.attributes.values()


@pytest.mark.asyncio
async def test_runaway_flow_stops_after_max_steps(tmp_path: Path) -> None:
    # The loop has a way out (the loader accepts it), but the attribute is never set.
    flow = write_flow(
        tmp_path,
        {
            "name": "runaway",
            "languages": ["en"],
            "start": "check",
            "steps": {
                "check": {
                    "type": "branch",
                    "conditions": [{"attribute": "never_set", "one_of": ["yes"], "goto": "done"}],
                    "default": "hold",
                },
                "hold": {"type": "play", "prompt": "please_hold", "next": "check"},
                "done": {"type": "transfer", "queue": "support"},
            },
        },
    )
    channel = ScriptedChannel([])
    result = await Crm().engine().run(flow, channel, UNKNOWN_NUMBER)

    assert result.outcome == "hangup"
    assert result.queue == ""
    assert len(result.path) == MAX_STEPS
    assert steps(result)[:4] == ["check", "hold", "check", "hold"]
    assert len(channel.played) == MAX_STEPS // 2


@pytest.mark.asyncio
async def test_voicemail_from_the_menu_records_after_the_prompt_then_hangs_up(
    main_flow: Flow,
) -> None:
    channel = ScriptedChannel(["9", "12.5"])  # presses 9, speaks 12.5 s
    result = await Crm().engine().run(main_flow, channel, VIP_NUMBER)

    assert result.outcome == "hangup"
    assert steps(result)[-3:] == ["menu", "voicemail", "message_saved"]
    assert channel.calls[-3:] == [
        "play leave_message zh ''",
        "record ivr/voicemail 120.0 5.0",
        "play message_saved zh ''",
    ]
    (recording,) = result.recordings
    assert recording.seconds == 12.5
    assert result.recording("voicemail") == recording
    assert result.recording("comment") is None
    assert result.path[-2].input == "12.5 s"


@pytest.mark.asyncio
async def test_a_caller_hanging_up_after_the_message_keeps_the_voicemail(
    main_flow: Flow,
) -> None:
    gone = CallerGone("hung up", Recording("/spool/recordings/ivr/voicemail-x.wav", -1.0))
    channel = ScriptedChannel(["9", gone])
    result = await Crm().engine().run(main_flow, channel, VIP_NUMBER)

    assert result.outcome == "caller_gone"
    assert result.recording("voicemail") == gone.recording


@pytest.mark.asyncio
@pytest.mark.parametrize("business_hours", ["no"])
async def test_a_closed_contact_center_takes_a_message(
    main_flow: Flow, business_hours: str
) -> None:
    channel = ScriptedChannel(["3"])
    result = (
        await Crm()
        .engine()
        .run(main_flow, channel, VIP_NUMBER, known={"business_hours": business_hours})
    )
    assert steps(result) == ["identify", "opening_hours", "closed", "voicemail", "message_saved"]
    assert result.recording("voicemail") is not None


class SelfService:
    def __init__(self, answer: dict[str, str] | None) -> None:
        self.answer = answer
        self.asked: list[tuple[str, Customer | None]] = []

    async def __call__(self, name: str, customer: Customer | None) -> dict[str, str] | None:
        self.asked.append((name, customer))
        return self.answer


@pytest.mark.asyncio
async def test_self_service_reads_the_last_order_back_then_returns_to_the_menu(
    main_flow: Flow,
) -> None:
    crm = Crm()
    service = SelfService({"last_order_amount": "1250", "last_order_days": "3"})
    engine = IvrEngine(crm.by_caller_id, crm.by_account, service)
    channel = ScriptedChannel(["3", "0"])  # last order, then the operator
    result = await engine.run(main_flow, channel, VIP_NUMBER)

    assert service.asked == [("last_order", VIP)]
    assert "say number 1250 zh" in channel.calls
    assert "say number 3 zh" in channel.calls
    assert steps(result)[3:8] == ["menu", "last_order", "say_amount", "say_days", "menu"]
    assert result.path[4].input == "last_order_amount=1250, last_order_days=3"
    assert result.attributes["intent"] == "operator"


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", ["no answer", "raises"])
async def test_a_lookup_without_an_answer_says_so_and_goes_on(
    main_flow: Flow, failure: str
) -> None:
    crm = Crm()

    async def broken(name: str, customer: Customer | None) -> dict[str, str] | None:
        raise RuntimeError("CRM down")

    service = SelfService(None) if failure == "no answer" else broken
    engine = IvrEngine(crm.by_caller_id, crm.by_account, service)
    channel = ScriptedChannel(["3", "0"])
    result = await engine.run(main_flow, channel, VIP_NUMBER)

    assert steps(result)[4:7] == ["last_order", "no_order", "menu"]
    assert not any(call.startswith("say") for call in channel.calls)
    assert result.outcome == "transfer"


@pytest.mark.asyncio
async def test_a_spoken_menu_word_chooses_like_its_key(main_flow: Flow) -> None:
    channel = ScriptedChannel(["", "said:账单"])  # silent through the prompt, then says 账单
    result = await Crm().engine().run(main_flow, channel, VIP_NUMBER)

    assert result.attributes["intent"] == "billing"
    assert result.path[3].input == "1 (said 账单)"


@pytest.mark.asyncio
async def test_a_word_the_menu_does_not_know_is_no_choice(main_flow: Flow) -> None:
    channel = ScriptedChannel(["", "said:天气", "", "", "", ""])
    result = await Crm().engine().run(main_flow, channel, VIP_NUMBER)

    assert result.attributes["intent"] == "operator"  # three silences: the operator


def _collect_flow(tmp_path: Path, **collect: object) -> Flow:
    step = {
        "type": "collect",
        "prompt": "enter_date",
        "invalid_prompt": "invalid",
        "into": "value",
        "retries": 3,
        "next": "done",
        "on_fail": "failed",
        **collect,
    }
    return write_flow(
        tmp_path,
        {
            "name": "collect",
            "languages": ["en"],
            "start": "ask",
            "steps": {
                "ask": step,
                "done": {"type": "transfer", "queue": "support"},
                "failed": {"type": "hangup"},
            },
        },
    )


@pytest.mark.asyncio
async def test_a_date_is_asked_again_until_it_is_a_real_day(tmp_path: Path) -> None:
    flow = _collect_flow(tmp_path, validate="date", min_digits=8, max_digits=8)
    channel = ScriptedChannel(["20250230", "", "19870521"])  # 30 February, silence, a day
    result = await Crm().engine().run(flow, channel, UNKNOWN_NUMBER)

    assert result.outcome == "transfer"
    assert result.attributes["value"] == "19870521"
    assert result.path[0].input == ("20250230 (not a date (YYYYMMDD)) (nothing typed) 19870521")
    # the invalid prompt between tries, the question each time
    assert [p for p, _ in channel.played] == [
        "enter_date",
        "invalid",
        "enter_date",
        "invalid",
        "enter_date",
    ]


@pytest.mark.asyncio
async def test_a_flood_or_100_digits_is_refused_and_shown_cut(tmp_path: Path) -> None:
    flow = _collect_flow(tmp_path, validate="account", max_digits=9, retries=2)
    channel = ScriptedChannel(["1" * 100, "#*" * 50])
    result = await Crm().engine().run(flow, channel, UNKNOWN_NUMBER)

    assert result.outcome == "hangup"
    assert "value" not in result.attributes
    assert result.path[0].input == f"{'1' * 9} (100 digits, wanted 1-9) {'#*' * 4}# (not digits)"
    assert channel.played.count(("invalid", "en")) == 1  # not after the last try


@pytest.mark.asyncio
async def test_only_allowed_values_pass(tmp_path: Path) -> None:
    flow = _collect_flow(tmp_path, allowed=["1", "2", "3", "4", "5"], max_digits=1)
    result = await Crm().engine().run(flow, ScriptedChannel(["0", "7", "4"]), UNKNOWN_NUMBER)
    assert result.attributes["value"] == "4"
    assert result.path[0].input == "0 (not one of the choices) 7 (not one of the choices) 4"


@pytest.mark.asyncio
async def test_a_pin_collect_is_a_secret_in_every_try(tmp_path: Path) -> None:
    flow = _collect_flow(tmp_path, validate="pin", secret=True, min_digits=4, max_digits=8)
    result = await Crm().engine().run(flow, ScriptedChannel(["123", "98765"]), UNKNOWN_NUMBER)
    assert result.path[0].input == "*** (3 digits, wanted 4-8) ***"
    assert result.secrets == {"value": "98765"}
    assert "value" not in result.attributes
    assert "98765" not in repr((result.path, result.inputs, result.attributes))


@pytest.mark.parametrize(
    ("collect", "problem"),
    [
        ({"validate": "pin", "min_digits": 4}, "validate: pin needs secret: true"),
        ({"validate": "date", "max_digits": 6}, "validate: date is 8 digits"),
        ({"terminator": "*"}, "terminator: Input should be '#'"),
        ({"min_digits": 5, "max_digits": 3}, "min_digits is more than max_digits"),
    ],
)
def test_collect_options_that_cannot_work_are_refused(
    tmp_path: Path, collect: dict[str, object], problem: str
) -> None:
    with pytest.raises(FlowError, match="step 'ask'") as raised:
        _collect_flow(tmp_path, **collect)
    assert problem in str(raised.value)


@pytest.mark.asyncio
async def test_the_step_the_caller_hangs_up_in_keeps_its_time(
    main_flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter(range(0, 10_000, 2))  # every look at the clock: 2 s later
    monkeypatch.setattr("cti_server.ivr.engine.time.monotonic", lambda: float(next(ticks)))
    channel = ScriptedChannel(["", "8", CallerGone("hung up")])
    result = await Crm().engine().run(main_flow, channel, VIP_NUMBER)

    assert steps(result) == ["identify", "opening_hours", "welcome", "menu"]
    assert [r.seconds for r in result.path] == [2.0, 2.0, 2.0, 2.0]
    assert result.path[-1].as_dict()["seconds"] == 2.0

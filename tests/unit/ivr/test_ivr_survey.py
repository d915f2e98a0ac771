"""The survey after the agent hangs up: a score out of 1-5 is asked again, never dropped."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cti_server.asterisk.data import data_dir
from cti_server.events import DomainEvent, SurveyAnswered
from cti_server.ivr.engine import IvrEngine
from cti_server.ivr.inbound import InboundCalls
from cti_server.ivr.registry import FlowRegistry
from tests.support.ivr_script import Answer, Crm, ScriptedChannel


class Answered:
    """The call as the survey route sees it: answered by an agent, in Chinese."""

    env: Mapping[str, str] = {"agi_callerid": "+8613911112222"}

    async def get_variable(self, name: str) -> str:
        return {
            "${MEMBERNAME}": "PJSIP/1001",
            "${CHANNEL(linkedid)}": "1700000000.7",
            "${CHANNEL(language)}": "zh",
        }[name]

    async def set_variable(self, name: str, value: str) -> None:
        raise AssertionError(f"the survey sets nothing on the channel ({name})")


async def _survey(answers: list[Answer]) -> tuple[list[DomainEvent], ScriptedChannel]:
    published: list[DomainEvent] = []

    class Bus:
        def publish(self, event: DomainEvent) -> None:
            published.append(event)

    crm = Crm()
    calls = InboundCalls(
        Bus(),
        "pbx1",
        "support",
        flows=FlowRegistry(data_dir("ivr_flows")),
        survey_flow="survey",
        engine=IvrEngine(crm.by_caller_id, crm.by_account),
    )
    channel = ScriptedChannel(answers)
    await calls.walk_survey(Answered(), channel)
    assert channel.unused == []
    return published, channel


@pytest.mark.asyncio
@pytest.mark.parametrize("wrong", ["0", "7", "9"])
async def test_a_score_out_of_range_is_asked_again_and_the_comment_kept(wrong: str) -> None:
    # a wrong key, then 4, then 1 to leave a comment of 3 seconds
    published, channel = await _survey([wrong, "4", "1", "3"])

    assert [p for p, _ in channel.played][:3] == ["survey_ask", "survey_invalid", "survey_ask"]
    assert len(published) == 1
    answered = published[0]
    assert isinstance(answered, SurveyAnswered)
    assert answered.score == 4
    assert answered.linkedid == "1700000000.7"
    assert "/recordings/ivr/comment-" in answered.comment


@pytest.mark.asyncio
async def test_two_wrong_scores_end_the_survey_without_a_comment_offered() -> None:
    published, channel = await _survey(["0", "8"])
    assert published == []
    assert not any("survey_comment" in call for call in channel.calls)

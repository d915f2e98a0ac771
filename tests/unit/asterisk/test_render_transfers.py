"""What the rendered configuration lets an agent's phone do: transfer, pick up, ring groups."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cti_server.asterisk.local import STOCK_CONFIG
from cti_server.asterisk.render import render_config
from cti_server.config import ConfigError, Settings, load_settings
from tests.support.asterisk_conf import conf_options, conf_sections


def _settings(**dialplan: Any) -> Settings:
    return load_settings(None, ami={"secret": "s3cret"}, dialplan=dialplan)


def test_features_conf_has_the_transfer_and_pickup_codes_of_the_settings() -> None:
    default = conf_sections(render_config(_settings())["features.conf"])
    assert conf_options(default["[featuremap]"]) == {"blindxfer": "##", "atxfer": "*2"}
    general = conf_options(default["[general]"])
    assert (general["pickupexten"], general["transferdigittimeout"]) == ("*8", "3")

    chosen = _settings(
        blind_transfer_code="#1",
        attended_transfer_code="#2",
        pickup_code="*9",
        transfer_digit_timeout=5,
    )
    sections = conf_sections(render_config(chosen)["features.conf"])
    assert conf_options(sections["[featuremap]"]) == {"blindxfer": "#1", "atxfer": "#2"}
    general = conf_options(sections["[general]"])
    assert (general["pickupexten"], general["transferdigittimeout"]) == ("*9", "5")
    assert "features.conf" not in STOCK_CONFIG  # rendered, never Debian's copy


def test_a_code_that_starts_another_is_refused() -> None:
    # Asterisk acts on the first code keyed in full: "*" would take every "*2" keyed
    with pytest.raises(ConfigError, match="blind_transfer_code '\\*' is the start of"):
        _settings(blind_transfer_code="*", attended_transfer_code="*2")
    with pytest.raises(ConfigError, match="attended_transfer_code"):
        _settings(attended_transfer_code="a2")


@pytest.mark.parametrize("routed", [False, True], ids=["plain", "routed"])
def test_every_queue_lets_the_answering_agent_transfer(routed: bool) -> None:
    settings = load_settings(None, ami={"secret": "x"}, routing={"enabled": routed})
    text = render_config(settings)["extensions.conf"]
    queues = re.findall(r"^\s*(?:same|exten) =>.*\bQueue\(([^,]*),([^,]*),", text, re.MULTILINE)
    assert len(queues) >= 3
    assert all("t" in options for _, options in queues), queues
    # the customer (option T) is never given the codes: digits they key reach the agent
    assert not any("T" in options for _, options in queues)


def test_agents_dial_and_pick_up_each_other_and_transfer_on() -> None:
    agents = [{"extension": e, "name": f"Agent {e}"} for e in ("2001", "2002", "2003")]
    settings = _settings(
        agents=agents,
        ring_groups=[{"extension": "2900", "members": ["2002", "2003"], "ring_seconds": 20}],
    )
    flow = conf_sections(render_config(settings)["extensions.conf"])["[cti-agents]"]
    assert "exten => 2001,1,Dial(PJSIP/2001,30,tT)" in flow
    assert "exten => **2002,1,PickupChan(PJSIP/2002)" in flow
    assert "exten => 2900,1,Dial(PJSIP/2002&PJSIP/2003,20,tT)" in flow
    starts = {line.split(",")[0] for line in flow if line.startswith("exten =>")}
    assert starts == {
        "exten => 2001",
        "exten => 2002",
        "exten => 2003",
        "exten => **2001",
        "exten => **2002",
        "exten => **2003",
        "exten => 2900",
    }  # no pattern: a transfer reaches an agent, a ring group, or nothing


def test_a_queue_with_a_number_is_reached_from_the_agents_phones() -> None:
    queues = [{"name": "support", "extension": "8001"}, {"name": "sales"}]
    flow = conf_sections(render_config(_settings(queues=queues))["extensions.conf"])["[cti-agents]"]
    assert "exten => 8001,1,Goto(cti-to-queue,support,1)" in flow
    assert not any("cti-to-queue,sales" in line for line in flow)  # no number: desktop only


def test_agent_endpoints_share_a_pickup_group_and_follow_forwards_to_agents() -> None:
    text = render_config(_settings(pickup_group="floor-1"))["pjsip.conf"]
    template = conf_options(conf_sections(text)["[agent-endpoint](!)"])
    assert template["named_call_group"] == template["named_pickup_group"] == "floor-1"
    assert template["dtmf_mode"] == "rfc4733"
    sets = re.findall(r"^set_var = (.*)$", text, flags=re.MULTILINE)
    assert sets == ["TRANSFER_CONTEXT=cti-agents", "FORWARD_CONTEXT=cti-agents"]


def test_click_to_dial_takes_the_attended_code_from_features_conf() -> None:
    flow = conf_sections(render_config(_settings())["extensions.conf"])["[cti-click-to-dial]"]
    assert not any("FEATUREMAP" in line for line in flow)
    assert all(",T)" in line for line in flow if "Dial(" in line)


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"extension": "1001", "members": ["1002"]}, "ring group 1001 is already an extension"),
        ({"extension": "1900", "members": ["1002", "7777"]}, "7777 are not agents' extensions"),
        ({"extension": "1900", "members": []}, "at least 1 item"),
        ({"extension": "8001", "members": ["1001"]}, "ring group 8001 is already an extension"),
    ],
)
def test_a_ring_group_must_be_a_new_extension_of_agents(
    group: dict[str, Any], message: str
) -> None:
    queues = [{"name": "support", "extension": "8001"}]
    with pytest.raises(ConfigError, match=message):
        _settings(queues=queues, default_queue="support", ring_groups=[group])


def test_a_queues_number_must_be_a_new_extension() -> None:
    with pytest.raises(ConfigError, match="queue support: 1001 is already an extension"):
        _settings(queues=[{"name": "support", "extension": "1001"}])

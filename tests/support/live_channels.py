"""Channels as Asterisk's ``CoreShowChannels`` reports them, for the resync's tests."""

from __future__ import annotations

from cti_server.tracker.resync import LiveChannel

CALLER_IN_QUEUE = LiveChannel(
    uniqueid="C1",
    linkedid="C1",
    channel="PJSIP/trunk-00000001",
    state="Up",
    caller_number="+8613900000001",
    caller_name="",
    exten="100",
    application="Queue",
    application_data="support,c,,,2",
    bridge="",
    seconds=40,
)
"""A caller waiting in ``support`` for 40 s (replace the fields a test needs otherwise)."""

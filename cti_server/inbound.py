"""What the CTI server does when a customer call enters the inbound context.

For now: note the call (CallArrived on the bus) and send it to the default queue. The IVR engine
and the router take over this decision in later steps; the dialplan's fallback covers the time
when this server is down.
"""

from __future__ import annotations

import logging

from cti_server.bus import Bus
from cti_server.events import CallArrived
from cti_server.telephony.fastagi import AgiSession

log = logging.getLogger(__name__)


class InboundCalls:
    def __init__(self, bus: Bus, node: str, default_queue: str) -> None:
        self._bus = bus
        self._node = node
        self._default_queue = default_queue

    async def handle(self, session: AgiSession) -> None:
        env = session.env
        linkedid = await session.get_variable("${CHANNEL(linkedid)}") or env.get("agi_uniqueid", "")
        dialed = await session.get_variable("${CTI_DID}") or env.get("agi_dnid", "")
        event = CallArrived(
            node=self._node,
            linkedid=linkedid,
            uniqueid=env.get("agi_uniqueid", ""),
            channel=env.get("agi_channel", ""),
            caller_number=env.get("agi_callerid", ""),
            caller_name=env.get("agi_calleridname", ""),
            dialed=dialed,
        )
        log.info("call %s from %r arrived", event.linkedid, event.caller_number)
        self._bus.publish(event)
        await session.set_variable("CTI_QUEUE", self._default_queue)

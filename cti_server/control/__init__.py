"""What the agent UI may use of the server: declared protocols and plain value types only.

``agent_ui`` imports the event vocabulary, the bus and this package, nothing else of
``cti_server``; the composition root (``cti_server/app.py``) hands it the implementations
(the tracker as :class:`LiveView`, ``telephony.agent_control`` as :class:`AgentControl`, the
router's supervisor controls, the speech and complaint services). Nothing here may import
telephony, the tracker, routing or speech: a test keeps it so.

``agents`` (``AgentControl``), ``live`` (``LiveView`` and its views), ``services`` (the
redaction, recordings and router protocols, ``UiOptions``), ``errors`` (``ControlError``),
``staffing`` (``StaffingPlans``: the plan a supervisor asks for, and its answer).
"""

from cti_server.control.agents import WRAP_UP_REASON, AgentControl
from cti_server.control.errors import ControlError
from cti_server.control.live import (
    AgentView,
    CallView,
    LegView,
    LiveView,
    QueueView,
)
from cti_server.control.services import (
    RecordingNames,
    Redaction,
    SupervisorRouting,
    UiOptions,
)

__all__ = [
    "WRAP_UP_REASON",
    "AgentControl",
    "AgentView",
    "CallView",
    "ControlError",
    "LegView",
    "LiveView",
    "QueueView",
    "RecordingNames",
    "Redaction",
    "SupervisorRouting",
    "UiOptions",
]

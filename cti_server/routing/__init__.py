"""Routing: which agent takes which waiting call, by value, skill and relationship, explained.

:func:`decide` is a pure function of (waiting calls, agents, policy, now); the policy is a
validated YAML file (:func:`load_policy`, :class:`PolicyReloader`); :func:`ring_no_answer` says
what happens when an offered call rings out. The what-if simulator (:mod:`.simulator`) replays
recorded traffic through the same :func:`decide`; the live router keeps the same search's
indexes between decisions (:class:`LiveIndex`) and gets the same answers.

Modules: ``core``, ``rules`` and ``reference`` (the decision, fast and plain), ``free_agents``
and ``live_index`` (its indexes, and the live router's kept between decisions), ``model`` (what
it decides about), ``policy``, ``reloader`` and ``policies`` (the YAML policy), ``explain``,
``noanswer``, ``occupancy``, ``patience``; events in: ``router`` (the live router), ``inputs``
and ``directory`` (the live model and the CRM as the router reads them); actions out:
``execution``; HTTP: ``http``, ``supervision`` (the UI's controls); the what-if:
``simulator``, ``traffic``.
"""

from cti_server.routing.core import assignments, decide
from cti_server.routing.live_index import LiveIndex
from cti_server.routing.model import (
    Agent,
    AgentChange,
    Assignment,
    NoAnswer,
    WaitingCall,
)
from cti_server.routing.noanswer import ring_no_answer
from cti_server.routing.policy import (
    BUILTIN_POLICIES,
    Policy,
    PolicyError,
    builtin_policy,
    load_policy,
    parse_policy,
    policy_from,
)
from cti_server.routing.reloader import PolicyReloader

__all__ = [
    "BUILTIN_POLICIES",
    "Agent",
    "AgentChange",
    "Assignment",
    "LiveIndex",
    "NoAnswer",
    "Policy",
    "PolicyError",
    "PolicyReloader",
    "WaitingCall",
    "assignments",
    "builtin_policy",
    "decide",
    "load_policy",
    "parse_policy",
    "policy_from",
    "ring_no_answer",
]

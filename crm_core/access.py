"""Who may read and change what: the role matrix, as data, for the UI and the REST API alike.

Each :class:`Rule` names what it covers, the least role that may do it at all, and, where a
role may do it only for some rows (an agent reads the calls they took, not every transcript),
from which role on every row is allowed and what the others get. The API's route table and the
UI's pages look their rule up here by name (:func:`least`), and the row checks below are the only
ones, so the two edges cannot disagree again. ``docs/roles.md`` is :func:`markdown_table`, kept
equal by a test; :data:`API_OPERATIONS` and :data:`UI_ROUTES` say which rule guards each route,
and the tests walk every route with every role against them.

Who an agent is *serving* (ringing, talking, or wrapping up) is live state that the CRM does not
hold: the embedding server passes a :data:`ServingLookup` in (``crm_core`` imports no telephony).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_, select

from crm_core.models import ROLES, ComplaintCase, FollowUp, Interaction, InteractionParty, User


@dataclass(frozen=True)
class Rule:
    """One line of the matrix."""

    name: str
    what: str
    least: str  # the least role that may do it at all
    every_row: str | None = None  # from this role on, every row; below it only ``rows``
    rows: str = ""


@dataclass(frozen=True)
class Serving:
    """What an agent is serving now: the customers their desk shows (the caller, or each match
    of a shared number) and their calls, as interactions' ``external_key`` (``node:linkedid``)."""

    customers: frozenset[int] = frozenset()
    calls: frozenset[str] = frozenset()


NOBODY = Serving()
ServingLookup = Callable[[User], Serving]


def serving_nobody(_user: User) -> Serving:
    """Where no desk is known (the CRM alone, a test): agents serve nobody."""
    return NOBODY


_SERVED = "customers they are serving (ringing, on the call, or in wrap-up)"
_OWN_CALLS = f"their own calls, and every call of the {_SERVED}"
_ASSIGNED = "cases assigned to them"
_THEIRS = "theirs and unowned ones"

RULES: tuple[Rule, ...] = (
    Rule(
        "session.own",
        "sign out; list and revoke one's own API tokens",
        "agent",
        "admin",
        "their own",
    ),
    Rule("desk.use", "the desktop: state, pop, call controls, wrap-up, click-to-dial", "agent"),
    Rule(
        "wallboard.watch",
        "the wallboard, its charts and supervision actions; the live model (`GET /live`); the "
        "router's view and controls (`/routing`)",
        "supervisor",
    ),
    Rule(
        "staffing.plan",
        "the forecast and the agents it needs per interval, with what-ifs; the wallboard's "
        "forecast beside the calls and agents now",
        "supervisor",
    ),
    Rule("customer.search", "search customers, look a caller ID up", "agent"),
    Rule("customer.read", "a customer's record and value scores", "agent"),
    Rule("customer.create", "create a customer (the pop's form)", "agent"),
    Rule(
        "customer.edit", "change a customer's fields, add a phone", "agent", "supervisor", _SERVED
    ),
    Rule(
        "customer.tier", "set or clear a customer's `tier_override` (create or change)", "manager"
    ),
    Rule("customer.delete", "delete a customer", "manager"),
    Rule("customer.duplicates", "a customer's probable duplicates", "supervisor"),
    Rule("customer.merge", "merge customers, undo a merge, read its audit", "manager"),
    Rule("transaction.write", "record an order, payment or refund", "manager"),
    Rule(
        "interaction.read",
        "an interaction with its transcript; a customer's timeline",
        "agent",
        "supervisor",
        _OWN_CALLS,
    ),
    Rule("interaction.write", "write an interaction (integrations)", "supervisor"),
    Rule("case.open", "open a complaint case by hand", "agent"),
    Rule("case.read", "complaint cases", "agent", "manager", _ASSIGNED),
    Rule("case.resolve", "resolve a complaint case", "agent", "manager", _ASSIGNED),
    Rule("case.assign", "assign a complaint case", "manager"),
    Rule("case.close", "close a resolved complaint case", "manager"),
    Rule(
        "case.review",
        "the complaint review: every case, its calls' transcripts and recordings, the charts",
        "manager",
    ),
    Rule("followup.read", "open follow-ups", "agent", "supervisor", _THEIRS),
    Rule("followup.create", "create a callback or reminder", "agent"),
    Rule("followup.done", "mark a follow-up done", "agent", "supervisor", _THEIRS),
    Rule(
        "events.watch",
        "the public event stream (webhooks see every event)",
        "agent",
        "supervisor",
        "events about their own calls",
    ),
    Rule("events.status", "the event stream's clients and each webhook's deliveries", "admin"),
    Rule("people.read", "everyone who signs in, with skills", "supervisor"),
    Rule(
        "figures.read",
        "agents' figures: calls handled (by transfer too), own talk time, average handle time",
        "agent",
        "supervisor",
        "their own",
    ),
    Rule("people.skills", "set an agent's skill level", "supervisor"),
    Rule("users.admin", "create and change users, passwords, the user audit", "admin"),
)
MATRIX: dict[str, Rule] = {rule.name: rule for rule in RULES}

# which rule guards each operation of the REST API (under /api) and each page of the UI (/ui);
# None: no sign-in needed
API_OPERATIONS: dict[str, str | None] = {
    "POST /tokens": None,
    "GET /tokens": "session.own",
    "DELETE /tokens/{id}": "session.own",
    "GET /customers": "customer.search",
    "GET /customers/lookup": "customer.search",
    "POST /customers": "customer.create",
    "GET /customers/{id}": "customer.read",
    "PATCH /customers/{id}": "customer.edit",
    "DELETE /customers/{id}": "customer.delete",
    "POST /customers/{id}/phones": "customer.edit",
    "GET /customers/{id}/interactions": "interaction.read",
    "GET /customers/{id}/value": "customer.read",
    "POST /customers/{id}/transactions": "transaction.write",
    "GET /customers/{id}/duplicates": "customer.duplicates",
    "POST /customers/{id}/merge": "customer.merge",
    "POST /merges/{id}/undo": "customer.merge",
    "GET /merges/{id}": "customer.merge",
    "POST /interactions": "interaction.write",
    "GET /interactions/{id}": "interaction.read",
    "GET /cases": "case.read",
    "POST /cases": "case.open",
    "GET /cases/{id}": "case.read",
    "POST /cases/{id}/assign": "case.assign",
    "POST /cases/{id}/resolve": "case.resolve",
    "POST /cases/{id}/close": "case.close",
    "GET /follow-ups": "followup.read",
    "POST /follow-ups": "followup.create",
    "POST /follow-ups/{id}/done": "followup.done",
    "GET /agents": "people.read",
    "GET /agents/figures": "figures.read",
    "POST /agents": "users.admin",
    "PUT /agents/{id}/skills/{skill}": "people.skills",
    "GET /users/audit": "users.admin",
    "GET /users": "users.admin",
    "POST /users": "users.admin",
    "PATCH /users/{id}": "users.admin",
    "PUT /users/{id}/password": "users.admin",
}
# beside the CRM's own operations: the event stream for integrators (cti_server.integrations)
API_EVENTS: dict[str, str | None] = {
    "GET /events/stream": "events.watch",
    "GET /events/status": "events.status",
}
# ... and the staffing plan (cti_server.staffing)
API_STAFFING: dict[str, str | None] = {"GET /staffing/plan": "staffing.plan"}
UI_ROUTES: dict[str, str | None] = {
    "GET /login": None,
    "POST /login": None,
    "GET /": None,
    "POST /logout": "session.own",
    "GET /desktop": "desk.use",
    "POST /dial": "desk.use",
    "GET /ws?view=desk": "desk.use",
    "GET /customers": "customer.search",
    "GET /customers/{id}": "customer.read",
    "POST /customers/new": "customer.create",
    "GET /wallboard": "wallboard.watch",
    "GET /wallboard/{chart}.svg": "wallboard.watch",
    "GET /wallboard/agents-today": "wallboard.watch",
    "GET /ws?view=wallboard": "wallboard.watch",
    "GET /staffing": "staffing.plan",
    "GET /complaints": "case.review",
    "GET /complaints/{chart}.svg": "case.review",
    "GET /complaints/{id}": "case.review",
    "POST /complaints/{id}/assign": "case.review",
    "POST /complaints/{id}/resolve": "case.review",
    "POST /complaints/{id}/close": "case.review",
    "GET /complaints/recordings/{linkedid}": "case.review",
}


def rank(role: str) -> int:
    """A role's place in :data:`~crm_core.models.ROLES` (-1: not a role)."""
    return ROLES.index(role) if role in ROLES else -1


def least(name: str) -> str:
    """The least role that may do ``name`` at all (a KeyError names a rule nobody wrote)."""
    return MATRIX[name].least


def allows(role: str, name: str) -> bool:
    """Whether ``role`` may do ``name`` at all (for some rows, perhaps)."""
    return rank(role) >= rank(least(name))


def every_row(role: str, name: str) -> bool:
    """Whether ``role`` may do ``name`` to every row, not only its own or those it serves."""
    rule = MATRIX[name]
    return allows(role, name) and (rule.every_row is None or rank(role) >= rank(rule.every_row))


def may_edit_customer(user: User, customer_id: int, serving: Serving) -> bool:
    return every_row(user.role, "customer.edit") or (
        allows(user.role, "customer.edit") and customer_id in serving.customers
    )


def may_read_interaction(
    user: User, row: Interaction, serving: Serving, chain: Iterable[InteractionParty]
) -> bool:
    """Whether ``user`` may read ``row``; ``chain`` is its parties (an agent who had the
    customer by a transfer took the call too, though ``agent_id`` names the first answerer)."""
    if every_row(user.role, "interaction.read"):
        return True
    return allows(user.role, "interaction.read") and (
        row.agent_id == user.id
        or any(party.agent_id == user.id for party in chain)
        or row.external_key in serving.calls
        or (row.customer_id is not None and row.customer_id in serving.customers)
    )


def interactions_visible(
    user: User, serving: Serving, customer_id: int
) -> ColumnElement[bool] | None:
    """The filter of ``customer_id``'s timeline for ``user`` (None: every row), the SQL form of
    :func:`may_read_interaction`."""
    if every_row(user.role, "interaction.read") or (
        allows(user.role, "interaction.read") and customer_id in serving.customers
    ):
        return None
    if not allows(user.role, "interaction.read"):
        return false()
    was_a_party = select(InteractionParty.interaction_id).where(
        InteractionParty.agent_id == user.id
    )
    return or_(
        Interaction.agent_id == user.id,
        Interaction.id.in_(was_a_party),
        Interaction.external_key.in_(serving.calls),
    )


def cases_visible(user: User, name: str = "case.read") -> ColumnElement[bool] | None:
    """The filter of the complaint cases ``user`` may ``name`` (None: every case)."""
    if every_row(user.role, name):
        return None
    if not allows(user.role, name):
        return false()
    return ComplaintCase.owner_id == user.id


def may_touch_case(user: User, case: ComplaintCase, name: str = "case.read") -> bool:
    return every_row(user.role, name) or (allows(user.role, name) and case.owner_id == user.id)


def follow_ups_visible(user: User, name: str = "followup.read") -> ColumnElement[bool] | None:
    """The filter of the follow-ups ``user`` may ``name`` (None: every one)."""
    if every_row(user.role, name):
        return None
    if not allows(user.role, name):
        return false()
    return or_(FollowUp.owner_id == user.id, FollowUp.owner_id.is_(None))


def may_touch_follow_up(user: User, task: FollowUp, name: str = "followup.done") -> bool:
    return every_row(user.role, name) or (
        allows(user.role, name) and task.owner_id in (None, user.id)
    )


def _routes_of(name: str, edge: dict[str, str | None], prefix: str) -> Iterable[str]:
    for route, rule in edge.items():
        if rule == name:
            method, _, path = route.partition(" ")
            yield f"`{method} {prefix}{path}`"


def markdown_table() -> str:
    """The matrix as ``docs/roles.md`` (and the README) show it."""
    lines = ["| Rule | What | Who | API | UI |", "|---|---|---|---|---|"]
    for rule in RULES:
        who = f"{rule.least} and above"
        if rule.every_row is not None:
            who += f"; below {rule.every_row}, only {rule.rows}"
        api = (
            ", ".join(
                _routes_of(rule.name, {**API_OPERATIONS, **API_EVENTS, **API_STAFFING}, "/api")
            )
            or "-"
        )
        ui = ", ".join(_routes_of(rule.name, UI_ROUTES, "/ui")) or "-"
        lines.append(f"| `{rule.name}` | {rule.what} | {who} | {api} | {ui} |")
    return "\n".join(lines) + "\n"

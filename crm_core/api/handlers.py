"""The CRM's REST endpoints. Preconditions live in the services; roles are checked at the route."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import cases, customers, followups, interactions, merge, people, valuation
from crm_core.api import serialize
from crm_core.api.http import (
    SESSIONS,
    RouteTable,
    current_user,
    json_response,
    path_id,
    query_int,
    query_text,
    read_body,
    role_rank,
)
from crm_core.errors import Forbidden
from crm_core.models import MergeAudit, User
from crm_core.schemas import (
    CustomerIn,
    CustomerPatch,
    Id,
    InteractionIn,
    Name,
    Note,
    PhoneIn,
    TransactionIn,
)
from crm_core.settings import CrmSettings

CRM_SETTINGS = web.AppKey("crm_settings", CrmSettings)
routes = RouteTable()

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TokenRequest(_Body):
    username: Username
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class MergeRequest(_Body):
    merged_id: Id


class CaseIn(_Body):
    customer_id: Id
    category: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]
    severity: Literal["low", "medium", "high", "critical"]
    summary: Note = ""
    interaction_ids: list[Id] = Field(default_factory=list, max_length=100)


class AssignIn(_Body):
    owner_id: Id


class FollowUpIn(_Body):
    customer_id: Id
    due_at: AwareDatetime
    owner_id: Id | None = None
    kind: Literal["callback", "reminder"] = "callback"
    note: Note = ""
    interaction_id: Id | None = None


class UserIn(_Body):
    username: Username
    password: Annotated[str, StringConstraints(min_length=8, max_length=256)]
    role: Literal["agent", "supervisor", "manager", "admin"]
    display_name: Name | None = None
    team: Name | None = None
    extension: Annotated[str, StringConstraints(pattern=r"^[0-9]{2,10}$")] | None = None
    languages: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]] = Field(
        default_factory=list, max_length=10
    )


class SkillIn(_Body):
    level: int = Field(ge=1, le=10)


def _session(request: web.Request) -> AsyncSession:
    return request.app[SESSIONS]()


def _settings(request: web.Request) -> CrmSettings:
    return request.app[CRM_SETTINGS]


def _page(request: web.Request) -> tuple[int, int]:
    return query_int(request, "limit", 25, 1, 200), query_int(request, "offset", 0, 0, 10**9)


def _require(request: web.Request, role: str, what: str) -> None:
    if role_rank(current_user(request).role) < role_rank(role):
        raise Forbidden(f"{what} needs the role {role} or higher")


@routes.route(
    "POST",
    "/tokens",
    "Sign in: trade a username and password for a bearer token",
    min_role=None,
    body=TokenRequest,
)
async def create_token(request: web.Request) -> web.Response:
    data = await read_body(request, TokenRequest)
    async with _session(request) as session, session.begin():
        user = await people.authenticate(session, data.username, data.password)
        if user is None:
            return json_response({"error": "unauthorized", "message": "wrong credentials"}, 401)
        token = await people.issue_token(session, user)
    return json_response({"token": token, "user": serialize.user(user)}, 201)


@routes.route(
    "GET",
    "/customers",
    "Search customers by name, account, e-mail or phone",
    query={"q": "text to search for", "limit": "page size", "offset": "skip"},
)
async def search_customers(request: web.Request) -> web.Response:
    limit, offset = _page(request)
    query = query_text(request, "q", 200)
    async with _session(request) as session:
        found = await customers.search_customers(
            session, query, _settings(request).default_region, limit, offset
        )
    return json_response(
        {"items": [serialize.customer(c) for c in found], "limit": limit, "offset": offset}
    )


@routes.route(
    "GET",
    "/customers/lookup",
    "Who is calling: look a caller ID up",
    query={"number": "the caller ID as Asterisk delivers it"},
)
async def lookup(request: web.Request) -> web.Response:
    number = query_text(request, "number", 64)
    async with _session(request) as session:
        result = await customers.lookup_by_caller_id(
            session, number, _settings(request).default_region
        )
        full = await customers.customers_by_ids(session, [m.id for m in result.customers])
        return json_response(
            {
                "status": result.status,
                "number": result.number,
                "customers": [serialize.customer(c) for c in full],
            }
        )


@routes.route("POST", "/customers", "Create a customer", body=CustomerIn)
async def create_customer(request: web.Request) -> web.Response:
    data = await read_body(request, CustomerIn)
    if data.tier_override is not None:
        _require(request, "manager", "setting a tier override")
    async with _session(request) as session, session.begin():
        customer = await customers.create_customer(session, data, _settings(request).default_region)
        await valuation.recompute_value(session, customer.id, _settings(request).value)
        body = serialize.customer(customer)
    return json_response(body, 201)


@routes.route("GET", "/customers/{id}", "A customer's record")
async def get_customer(request: web.Request) -> web.Response:
    async with _session(request) as session:
        customer = await customers.get_customer(session, path_id(request))
        return json_response(serialize.customer(customer))


@routes.route("PATCH", "/customers/{id}", "Change a customer's fields", body=CustomerPatch)
async def patch_customer(request: web.Request) -> web.Response:
    patch = await read_body(request, CustomerPatch)
    if "tier_override" in patch.model_fields_set:
        _require(request, "manager", "changing a tier override")
    async with _session(request) as session, session.begin():
        customer = await customers.update_customer(session, path_id(request), patch)
        if "tier_override" in patch.model_fields_set:
            await valuation.recompute_value(session, customer.id, _settings(request).value)
        body = serialize.customer(customer)
    return json_response(body)


@routes.route(
    "DELETE",
    "/customers/{id}",
    "Delete a customer: no longer found, its interactions and cases kept",
    min_role="manager",
)
async def delete_customer(request: web.Request) -> web.Response:
    async with _session(request) as session, session.begin():
        customer = await customers.delete_customer(session, path_id(request))
        body = {"id": customer.id, "deleted_at": customer.deleted_at}
    return json_response(body)


@routes.route("POST", "/customers/{id}/phones", "Add a phone number", body=PhoneIn)
async def add_phone(request: web.Request) -> web.Response:
    data = await read_body(request, PhoneIn)
    async with _session(request) as session, session.begin():
        phone = await customers.add_phone(
            session, path_id(request), data, _settings(request).default_region
        )
        body = {"id": phone.id, "number": phone.e164, "label": phone.label}
    return json_response(body, 201)


@routes.route(
    "GET",
    "/customers/{id}/interactions",
    "The customer's timeline, newest first",
    query={"limit": "page size", "offset": "skip"},
)
async def customer_timeline(request: web.Request) -> web.Response:
    limit, offset = _page(request)
    async with _session(request) as session:
        customer = await customers.get_customer(session, path_id(request))
        rows = await interactions.timeline(session, customer.id, limit, offset)
    return json_response(
        {"items": [serialize.interaction(r) for r in rows], "limit": limit, "offset": offset}
    )


@routes.route("GET", "/customers/{id}/value", "The customer's value scores and tier")
async def customer_value(request: web.Request) -> web.Response:
    async with _session(request) as session:
        customer = await customers.get_customer(session, path_id(request))
        return json_response(serialize.value(customer))


@routes.route(
    "POST",
    "/customers/{id}/transactions",
    "Record an order, payment or refund",
    min_role="manager",
    body=TransactionIn,
)
async def add_transaction(request: web.Request) -> web.Response:
    data = await read_body(request, TransactionIn)
    async with _session(request) as session, session.begin():
        customer_id = path_id(request)
        transaction = await valuation.add_transaction(
            session, customer_id, data, _settings(request).value
        )
        customer = await customers.get_customer(session, customer_id)
        body = {"id": transaction.id, "value": serialize.value(customer)}
    return json_response(body, 201)


@routes.route(
    "GET",
    "/customers/{id}/duplicates",
    "Probable duplicates of this customer",
    min_role="supervisor",
)
async def customer_duplicates(request: web.Request) -> web.Response:
    async with _session(request) as session:
        customer = await customers.get_customer(session, path_id(request))
        found = await customers.probable_duplicates(session, customer)
    return json_response(
        {
            "items": [
                {
                    "customer_id": d.second if d.first == customer.id else d.first,
                    "score": d.score,
                    "reasons": list(d.reasons),
                }
                for d in found
            ]
        }
    )


@routes.route(
    "POST",
    "/customers/{id}/merge",
    "Merge another customer into this one",
    min_role="manager",
    body=MergeRequest,
)
async def merge_customer(request: web.Request) -> web.Response:
    data = await read_body(request, MergeRequest)
    policy = _settings(request).value
    async with _session(request) as session, session.begin():
        audit = await merge.merge_customers(
            session, path_id(request), data.merged_id, current_user(request).id
        )
        await valuation.recompute_value(session, audit.survivor_id, policy)
        body = serialize.merge(audit)
    return json_response(body, 201)


@routes.route(
    "POST", "/merges/{id}/undo", "Undo a merge: both records as before", min_role="manager"
)
async def undo_merge(request: web.Request) -> web.Response:
    policy = _settings(request).value
    async with _session(request) as session, session.begin():
        audit = await merge.undo_merge(session, path_id(request))
        await valuation.recompute_value(session, audit.survivor_id, policy)
        await valuation.recompute_value(session, audit.merged_id, policy)
        body = serialize.merge(audit)
    return json_response(body)


@routes.route("GET", "/merges/{id}", "A merge's audit record", min_role="manager")
async def get_merge(request: web.Request) -> web.Response:
    async with _session(request) as session:
        audit = await session.get(MergeAudit, path_id(request))
        if audit is None:
            return json_response({"error": "not_found", "message": "no such merge"}, 404)
        return json_response(serialize.merge(audit))


@routes.route(
    "POST",
    "/interactions",
    "Write an interaction by (node, linkedid): idempotent",
    min_role="supervisor",
    body=InteractionIn,
)
async def write_interaction(request: web.Request) -> web.Response:
    data = await read_body(request, InteractionIn)
    async with _session(request) as session, session.begin():
        row = await interactions.record_interaction(session, data, policy=_settings(request).value)
        body = serialize.interaction(row)
    return json_response(body)


@routes.route("GET", "/interactions/{id}", "One interaction with its transcript")
async def get_interaction(request: web.Request) -> web.Response:
    async with _session(request) as session:
        row = await interactions.get_interaction(session, path_id(request))
        segments = await interactions.segments_of(session, row.id)
        return json_response(
            {**serialize.interaction(row), "segments": [serialize.segment(s) for s in segments]}
        )


@routes.route(
    "GET",
    "/cases",
    "Complaint cases (agents: only their own)",
    query={"status": "open|assigned|resolved|closed", "limit": "page size", "offset": "skip"},
)
async def list_cases(request: web.Request) -> web.Response:
    limit, offset = _page(request)
    status = request.query.get("status")
    if status is not None and status not in cases.TRANSITIONS:
        return json_response(
            {
                "error": "invalid",
                "message": "status: unknown",
                "fields": [{"field": "status", "message": "unknown status"}],
            },
            422,
        )
    async with _session(request) as session:
        rows = await cases.cases_for(
            session, current_user(request), status=status, limit=limit, offset=offset
        )
    return json_response(
        {"items": [serialize.case(r) for r in rows], "limit": limit, "offset": offset}
    )


@routes.route("POST", "/cases", "Open a complaint case by hand", body=CaseIn)
async def open_case(request: web.Request) -> web.Response:
    data = await read_body(request, CaseIn)
    async with _session(request) as session, session.begin():
        case = await cases.open_case(
            session,
            customer_id=data.customer_id,
            category=data.category,
            severity=data.severity,
            summary=data.summary,
            interaction_ids=data.interaction_ids,
            sla=_settings(request).case_sla,
        )
        body = serialize.case(case)
    return json_response(body, 201)


@routes.route("GET", "/cases/{id}", "One case (agents: only their own)")
async def get_case(request: web.Request) -> web.Response:
    async with _session(request) as session:
        case = await cases.get_case(session, path_id(request), current_user(request))
        return json_response(serialize.case(case))


@routes.route(
    "POST", "/cases/{id}/assign", "Assign a case to an owner", min_role="supervisor", body=AssignIn
)
async def assign_case(request: web.Request) -> web.Response:
    data = await read_body(request, AssignIn)
    async with _session(request) as session, session.begin():
        case = await cases.get_case(session, path_id(request), current_user(request))
        await cases.assign_case(session, case, data.owner_id)
        body = serialize.case(case)
    return json_response(body)


@routes.route("POST", "/cases/{id}/resolve", "Mark a case resolved (its owner or a supervisor)")
async def resolve_case(request: web.Request) -> web.Response:
    async with _session(request) as session, session.begin():
        case = await cases.get_case(session, path_id(request), current_user(request))
        await cases.resolve_case(session, case)
        body = serialize.case(case)
    return json_response(body)


@routes.route("POST", "/cases/{id}/close", "Close a resolved case", min_role="manager")
async def close_case(request: web.Request) -> web.Response:
    async with _session(request) as session, session.begin():
        case = await cases.get_case(session, path_id(request), current_user(request))
        await cases.close_case(session, case)
        body = serialize.case(case)
    return json_response(body)


@routes.route(
    "GET",
    "/follow-ups",
    "Open follow-ups (agents: theirs and unowned ones)",
    query={"limit": "page size", "offset": "skip"},
)
async def list_follow_ups(request: web.Request) -> web.Response:
    limit, offset = _page(request)
    async with _session(request) as session:
        rows = await followups.follow_ups_for(
            session, current_user(request), limit=limit, offset=offset
        )
    return json_response(
        {"items": [serialize.follow_up(r) for r in rows], "limit": limit, "offset": offset}
    )


@routes.route("POST", "/follow-ups", "Create a callback or reminder", body=FollowUpIn)
async def create_follow_up(request: web.Request) -> web.Response:
    data = await read_body(request, FollowUpIn)
    async with _session(request) as session, session.begin():
        task = await followups.create_follow_up(session, **data.model_dump())
        body = serialize.follow_up(task)
    return json_response(body, 201)


@routes.route("POST", "/follow-ups/{id}/done", "Mark a follow-up done")
async def complete_follow_up(request: web.Request) -> web.Response:
    async with _session(request) as session, session.begin():
        task = await followups.complete_follow_up(session, path_id(request), current_user(request))
        body = serialize.follow_up(task)
    return json_response(body)


@routes.route("GET", "/agents", "Everyone who signs in, with skills", min_role="supervisor")
async def list_agents(request: web.Request) -> web.Response:
    async with _session(request) as session:
        rows = await session.scalars(select(User).order_by(User.username))
        return json_response({"items": [serialize.user(u) for u in rows]})


@routes.route(
    "POST",
    "/agents",
    "Create a user (agent, supervisor, manager, admin)",
    min_role="admin",
    body=UserIn,
)
async def create_agent(request: web.Request) -> web.Response:
    data = await read_body(request, UserIn)
    async with _session(request) as session, session.begin():
        user = await people.create_user(session, **data.model_dump())
        body = serialize.user(user)
    return json_response(body, 201)


@routes.route(
    "PUT",
    "/agents/{id}/skills/{skill}",
    "Set an agent's skill level (1-10)",
    min_role="supervisor",
    body=SkillIn,
)
async def set_skill(request: web.Request) -> web.Response:
    data = await read_body(request, SkillIn)
    skill = request.match_info["skill"]
    if not skill.replace("_", "").replace("-", "").isalnum() or len(skill) > 64:
        return json_response(
            {
                "error": "invalid",
                "message": "skill: letters, digits, - and _",
                "fields": [{"field": "skill", "message": "bad name"}],
            },
            422,
        )
    async with _session(request) as session, session.begin():
        await people.set_skill(session, path_id(request), skill, data.level)
        user = await session.get(User, path_id(request))
        assert user is not None
        await session.refresh(user, ["skills"])
        body = serialize.user(user)
    return json_response(body)

"""The CRM's REST endpoints. Preconditions live in the services; roles are checked at the route."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import cases, customers, followups, interactions, merge, people, valuation
from crm_core.access import (
    Serving,
    ServingLookup,
    every_row,
    interactions_visible,
    least,
    may_edit_customer,
    may_read_interaction,
)
from crm_core.api import serialize
from crm_core.api.http import (
    SESSIONS,
    RouteTable,
    Unauthorized,
    current_user,
    path_id,
    query_of,
    read_body,
    role_rank,
)
from crm_core.errors import Forbidden, NotFound
from crm_core.login_throttle import LoginGuard, client_address
from crm_core.models import ApiToken, MergeAudit, User
from crm_core.schemas import (
    CaseOut,
    CasePage,
    CaseQuery,
    CustomerIn,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
    DeletedOut,
    DuplicateList,
    DuplicateOut,
    FollowUpOut,
    FollowUpPage,
    Id,
    InteractionDetailOut,
    InteractionIn,
    InteractionOut,
    InteractionPage,
    LookupOut,
    LookupQuery,
    MergeOut,
    Name,
    Note,
    PageQuery,
    PhoneIn,
    PhoneOut,
    SearchQuery,
    TokenInfoOut,
    TokenList,
    TokenOut,
    TransactionIn,
    TransactionOut,
    UserList,
    UserOut,
    ValueOut,
)
from crm_core.settings import CrmSettings

CRM_SETTINGS = web.AppKey("crm_settings", CrmSettings)
SERVING: web.AppKey[ServingLookup] = web.AppKey("crm_serving")
LOGINS = web.AppKey("crm_logins", LoginGuard)  # shared with the desktop's sign-in
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


class SkillPath(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    skill: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _session(request: web.Request) -> AsyncSession:
    return request.app[SESSIONS]()


def _settings(request: web.Request) -> CrmSettings:
    return request.app[CRM_SETTINGS]


def _require(request: web.Request, role: str, what: str) -> None:
    if role_rank(current_user(request).role) < role_rank(role):
        raise Forbidden(f"{what} needs the role {role} or higher")


def _serving(request: web.Request) -> Serving:
    """The customers and calls the caller's desk serves now (row rules: crm_core.access)."""
    return request.app[SERVING](current_user(request))


def _may_edit(request: web.Request, customer_id: int) -> None:
    if not may_edit_customer(current_user(request), customer_id, _serving(request)):
        raise Forbidden("agents change only the customers they are serving")


@routes.route(
    "POST",
    "/tokens",
    "Sign in: trade a username and password for a bearer token",
    response=TokenOut,
    status=201,
    min_role=None,
    body=TokenRequest,
    errors=[401],
)
async def create_token(request: web.Request) -> TokenOut:
    """Throttled as the desktop's sign-in is (:mod:`crm_core.login_throttle`)."""
    data = await read_body(request, TokenRequest)
    guard = request.app[LOGINS]
    address = client_address(
        request.remote, request.headers.get("X-Forwarded-For"), guard.settings.trusted_proxies
    )
    signed_in = await guard.sign_in(data.username, data.password, address)
    if signed_in is None:
        raise Unauthorized("wrong credentials")
    lifetime = timedelta(days=_settings(request).token_days)
    async with _session(request) as session, session.begin():
        user = await session.get_one(User, signed_in.id)
        token, row = await people.issue_token_row(session, user, lifetime)
        assert row.expires_at is not None
        return TokenOut(
            token=token, id=row.id, expires_at=row.expires_at, user=serialize.user(user)
        )


def _token_info(request: web.Request, row: ApiToken) -> TokenInfoOut:
    _, _, bearer = request.headers.get("Authorization", "").partition(" ")
    return TokenInfoOut(
        id=row.id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked=row.revoked,
        current=row.token_hash == people.token_digest(bearer.strip()),
    )


class TokensQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: Id | None = Field(None, description="an admin: this user's tokens (default: yours)")


@routes.route(
    "GET",
    "/tokens",
    "Your tokens that still open the API (an admin: anyone's, to revoke one)",
    response=TokenList,
    min_role=least("session.own"),
    query=TokensQuery,
    errors=[403],
)
async def list_tokens(request: web.Request) -> TokenList:
    caller = current_user(request)
    owner = query_of(request, TokensQuery).user_id or caller.id
    if owner != caller.id and not every_row(caller.role, "session.own"):
        raise Forbidden("only an admin lists another user's tokens")
    async with _session(request) as session:
        rows = await people.live_tokens(session, owner)
    return TokenList(items=[_token_info(request, row) for row in rows])


@routes.route(
    "DELETE",
    "/tokens/{id}",
    "Revoke a token: your own (an admin: anyone's); it answers 401 from now on",
    response=TokenInfoOut,
    min_role=least("session.own"),
)
async def revoke_token(request: web.Request) -> TokenInfoOut:
    async with _session(request) as session, session.begin():
        row = await people.revoke_token(session, path_id(request), by=current_user(request))
        return _token_info(request, row)


@routes.route(
    "GET",
    "/customers",
    "Search customers by name, account, e-mail or phone",
    response=CustomerPage,
    query=SearchQuery,
    min_role=least("customer.search"),
)
async def search_customers(request: web.Request) -> CustomerPage:
    query = query_of(request, SearchQuery)
    async with _session(request) as session:
        found = await customers.search_customers(
            session, query.q, _settings(request).default_region, query.limit, query.offset
        )
    return CustomerPage(
        items=[serialize.customer(c) for c in found], limit=query.limit, offset=query.offset
    )


@routes.route(
    "GET",
    "/customers/lookup",
    "Who is calling: look a caller ID up",
    response=LookupOut,
    query=LookupQuery,
    min_role=least("customer.search"),
)
async def lookup(request: web.Request) -> LookupOut:
    number = query_of(request, LookupQuery).number
    async with _session(request) as session:
        result = await customers.lookup_by_caller_id(
            session, number, _settings(request).default_region
        )
        full = await customers.customers_by_ids(session, [m.id for m in result.customers])
        return LookupOut(
            status=result.status,
            number=result.number,
            customers=[serialize.customer(c) for c in full],
        )


@routes.route(
    "POST",
    "/customers",
    "Create a customer",
    response=CustomerOut,
    status=201,
    body=CustomerIn,
    errors=[403, 404, 409],
    min_role=least("customer.create"),
)
async def create_customer(request: web.Request) -> CustomerOut:
    data = await read_body(request, CustomerIn)
    if data.tier_override is not None:
        _require(request, least("customer.tier"), "setting a tier override")
    async with _session(request) as session, session.begin():
        customer = await customers.create_customer(session, data, _settings(request).default_region)
        await valuation.recompute_value(session, customer.id, _settings(request).value)
        return serialize.customer(customer)


@routes.route(
    "GET",
    "/customers/{id}",
    "A customer's record",
    response=CustomerOut,
    min_role=least("customer.read"),
)
async def get_customer(request: web.Request) -> CustomerOut:
    async with _session(request) as session:
        customer = await customers.get_customer(session, path_id(request))
        return serialize.customer(customer)


@routes.route(
    "PATCH",
    "/customers/{id}",
    "Change a customer's fields (agents: a customer they are serving)",
    response=CustomerOut,
    body=CustomerPatch,
    errors=[403],
    min_role=least("customer.edit"),
)
async def patch_customer(request: web.Request) -> CustomerOut:
    patch = await read_body(request, CustomerPatch)
    if "tier_override" in patch.model_fields_set:
        _require(request, least("customer.tier"), "changing a tier override")
    _may_edit(request, path_id(request))
    async with _session(request) as session, session.begin():
        customer = await customers.update_customer(session, path_id(request), patch)
        if "tier_override" in patch.model_fields_set:
            await valuation.recompute_value(session, customer.id, _settings(request).value)
        return serialize.customer(customer)


@routes.route(
    "DELETE",
    "/customers/{id}",
    "Delete a customer: no longer found, its interactions and cases kept",
    response=DeletedOut,
    min_role=least("customer.delete"),
)
async def delete_customer(request: web.Request) -> DeletedOut:
    async with _session(request) as session, session.begin():
        customer = await customers.delete_customer(session, path_id(request))
        assert customer.deleted_at is not None
        return DeletedOut(id=customer.id, deleted_at=customer.deleted_at)


@routes.route(
    "POST",
    "/customers/{id}/phones",
    "Add a phone number (adding one the customer has answers that one; agents: a customer "
    "they are serving)",
    response=PhoneOut,
    status=201,
    body=PhoneIn,
    min_role=least("customer.edit"),
    errors=[403],
)
async def add_phone(request: web.Request) -> PhoneOut:
    data = await read_body(request, PhoneIn)
    _may_edit(request, path_id(request))
    async with _session(request) as session, session.begin():
        phone = await customers.add_phone(
            session, path_id(request), data, _settings(request).default_region
        )
        return serialize.phone(phone)


@routes.route(
    "GET",
    "/customers/{id}/interactions",
    "The customer's timeline, newest first (agents: every call of a customer they are "
    "serving, else only their own calls)",
    response=InteractionPage,
    query=PageQuery,
    min_role=least("interaction.read"),
)
async def customer_timeline(request: web.Request) -> InteractionPage:
    page = query_of(request, PageQuery)
    async with _session(request) as session:
        customer = await customers.get_customer(session, path_id(request))
        visible = interactions_visible(current_user(request), _serving(request), customer.id)
        rows = await interactions.timeline(
            session, customer.id, page.limit, page.offset, where=visible
        )
        chains = await interactions.parties_of(session, [r.id for r in rows])
    return InteractionPage(
        items=[serialize.interaction(r, chains[r.id]) for r in rows],
        limit=page.limit,
        offset=page.offset,
    )


@routes.route(
    "GET",
    "/customers/{id}/value",
    "The customer's value scores and tier",
    response=ValueOut,
    min_role=least("customer.read"),
)
async def customer_value(request: web.Request) -> ValueOut:
    async with _session(request) as session:
        customer = await customers.get_customer(session, path_id(request))
        return serialize.value(customer)


@routes.route(
    "POST",
    "/customers/{id}/transactions",
    "Record an order, payment or refund",
    response=TransactionOut,
    status=201,
    min_role=least("transaction.write"),
    body=TransactionIn,
    errors=[409],
)
async def add_transaction(request: web.Request) -> TransactionOut:
    data = await read_body(request, TransactionIn)
    async with _session(request) as session, session.begin():
        customer_id = path_id(request)
        transaction = await valuation.add_transaction(
            session, customer_id, data, _settings(request).value
        )
        customer = await customers.get_customer(session, customer_id)
        return TransactionOut(id=transaction.id, value=serialize.value(customer))


@routes.route(
    "GET",
    "/customers/{id}/duplicates",
    "Probable duplicates of this customer",
    response=DuplicateList,
    min_role=least("customer.duplicates"),
)
async def customer_duplicates(request: web.Request) -> DuplicateList:
    async with _session(request) as session:
        customer = await customers.get_customer(session, path_id(request))
        found = await customers.probable_duplicates(session, customer)
    return DuplicateList(
        items=[
            DuplicateOut(
                customer_id=d.second if d.first == customer.id else d.first,
                score=d.score,
                reasons=list(d.reasons),
            )
            for d in found
        ]
    )


@routes.route(
    "POST",
    "/customers/{id}/merge",
    "Merge another customer into this one",
    response=MergeOut,
    status=201,
    min_role=least("customer.merge"),
    body=MergeRequest,
    errors=[409],
)
async def merge_customer(request: web.Request) -> MergeOut:
    data = await read_body(request, MergeRequest)
    policy = _settings(request).value
    async with _session(request) as session, session.begin():
        audit = await merge.merge_customers(
            session, path_id(request), data.merged_id, current_user(request).id
        )
        await valuation.recompute_value(session, audit.survivor_id, policy)
        return serialize.merge(audit)


@routes.route(
    "POST",
    "/merges/{id}/undo",
    "Undo a merge: both records as before",
    response=MergeOut,
    min_role=least("customer.merge"),
    errors=[409],
)
async def undo_merge(request: web.Request) -> MergeOut:
    policy = _settings(request).value
    async with _session(request) as session, session.begin():
        audit = await merge.undo_merge(session, path_id(request))
        await valuation.recompute_value(session, audit.survivor_id, policy)
        await valuation.recompute_value(session, audit.merged_id, policy)
        return serialize.merge(audit)


@routes.route(
    "GET",
    "/merges/{id}",
    "A merge's audit record",
    response=MergeOut,
    min_role=least("customer.merge"),
)
async def get_merge(request: web.Request) -> MergeOut:
    async with _session(request) as session:
        audit = await session.get(MergeAudit, path_id(request))
        if audit is None:
            raise NotFound("no such merge")
        return serialize.merge(audit)


@routes.route(
    "POST",
    "/interactions",
    "Write an interaction by (node, linkedid): idempotent",
    response=InteractionOut,
    min_role=least("interaction.write"),
    body=InteractionIn,
    errors=[404, 409],
)
async def write_interaction(request: web.Request) -> InteractionOut:
    data = await read_body(request, InteractionIn)
    async with _session(request) as session, session.begin():
        row = await interactions.record_interaction(session, data, policy=_settings(request).value)
        chains = await interactions.parties_of(session, [row.id])
        return serialize.interaction(row, chains[row.id])


@routes.route(
    "GET",
    "/interactions/{id}",
    "One interaction with its transcript (agents: their own calls and those of customers "
    "they are serving)",
    response=InteractionDetailOut,
    min_role=least("interaction.read"),
    errors=[403],
)
async def get_interaction(request: web.Request) -> InteractionDetailOut:
    async with _session(request) as session:
        row = await interactions.get_interaction(session, path_id(request))
        chain = (await interactions.parties_of(session, [row.id]))[row.id]
        if not may_read_interaction(current_user(request), row, _serving(request), chain):
            raise Forbidden(
                "agents read only their own calls and those of the customers they are serving"
            )
        segments = await interactions.segments_of(session, row.id)
        return serialize.interaction_detail(row, chain, segments)


@routes.route(
    "GET",
    "/cases",
    "Complaint cases (below manager: those assigned to them)",
    response=CasePage,
    query=CaseQuery,
    min_role=least("case.read"),
)
async def list_cases(request: web.Request) -> CasePage:
    query = query_of(request, CaseQuery)
    async with _session(request) as session:
        rows = await cases.cases_for(
            session,
            current_user(request),
            status=query.status,
            limit=query.limit,
            offset=query.offset,
        )
    return CasePage(items=[serialize.case(r) for r in rows], limit=query.limit, offset=query.offset)


@routes.route(
    "POST",
    "/cases",
    "Open a complaint case by hand",
    response=CaseOut,
    status=201,
    body=CaseIn,
    errors=[404],
    min_role=least("case.open"),
)
async def open_case(request: web.Request) -> CaseOut:
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
        return serialize.case(case)


@routes.route(
    "GET",
    "/cases/{id}",
    "One case (below manager: one assigned to them)",
    response=CaseOut,
    errors=[403],
    min_role=least("case.read"),
)
async def get_case(request: web.Request) -> CaseOut:
    async with _session(request) as session:
        case = await cases.get_case(session, path_id(request), current_user(request))
        return serialize.case(case)


@routes.route(
    "POST",
    "/cases/{id}/assign",
    "Assign a case to an owner",
    response=CaseOut,
    min_role=least("case.assign"),
    body=AssignIn,
    errors=[409],
)
async def assign_case(request: web.Request) -> CaseOut:
    data = await read_body(request, AssignIn)
    async with _session(request) as session, session.begin():
        case = await cases.get_case(session, path_id(request), current_user(request))
        await cases.assign_case(session, case, data.owner_id)
        return serialize.case(case)


@routes.route(
    "POST",
    "/cases/{id}/resolve",
    "Mark a case resolved (its owner or a manager)",
    response=CaseOut,
    errors=[403, 409],
    min_role=least("case.resolve"),
)
async def resolve_case(request: web.Request) -> CaseOut:
    async with _session(request) as session, session.begin():
        case = await cases.get_case(session, path_id(request), current_user(request))
        await cases.resolve_case(session, case)
        return serialize.case(case)


@routes.route(
    "POST",
    "/cases/{id}/close",
    "Close a resolved case",
    response=CaseOut,
    min_role=least("case.close"),
    errors=[409],
)
async def close_case(request: web.Request) -> CaseOut:
    async with _session(request) as session, session.begin():
        case = await cases.get_case(session, path_id(request), current_user(request))
        await cases.close_case(session, case)
        return serialize.case(case)


@routes.route(
    "GET",
    "/follow-ups",
    "Open follow-ups (agents: theirs and unowned ones)",
    response=FollowUpPage,
    query=PageQuery,
    min_role=least("followup.read"),
)
async def list_follow_ups(request: web.Request) -> FollowUpPage:
    page = query_of(request, PageQuery)
    async with _session(request) as session:
        rows = await followups.follow_ups_for(
            session, current_user(request), limit=page.limit, offset=page.offset
        )
    return FollowUpPage(
        items=[serialize.follow_up(r) for r in rows], limit=page.limit, offset=page.offset
    )


@routes.route(
    "POST",
    "/follow-ups",
    "Create a callback or reminder",
    response=FollowUpOut,
    status=201,
    body=FollowUpIn,
    errors=[404],
    min_role=least("followup.create"),
)
async def create_follow_up(request: web.Request) -> FollowUpOut:
    data = await read_body(request, FollowUpIn)
    async with _session(request) as session, session.begin():
        task = await followups.create_follow_up(session, **data.model_dump())
        return serialize.follow_up(task)


@routes.route(
    "POST",
    "/follow-ups/{id}/done",
    "Mark a follow-up done",
    response=FollowUpOut,
    errors=[403, 409],
    min_role=least("followup.done"),
)
async def complete_follow_up(request: web.Request) -> FollowUpOut:
    async with _session(request) as session, session.begin():
        task = await followups.complete_follow_up(session, path_id(request), current_user(request))
        return serialize.follow_up(task)


@routes.route(
    "GET",
    "/agents",
    "Everyone who signs in, with skills",
    response=UserList,
    min_role=least("people.read"),
)
async def list_agents(request: web.Request) -> UserList:
    async with _session(request) as session:
        rows = await session.scalars(select(User).order_by(User.username))
        return UserList(items=[serialize.user(u) for u in rows])


@routes.route(
    "POST",
    "/agents",
    "Create a user (agent, supervisor, manager, admin)",
    response=UserOut,
    status=201,
    min_role=least("users.admin"),
    body=UserIn,
    errors=[409],
)
async def create_agent(request: web.Request) -> UserOut:
    data = await read_body(request, UserIn)
    async with _session(request) as session, session.begin():
        by = people.api_actor(current_user(request))
        user = await people.create_user(session, **data.model_dump(), by=by)
        return serialize.user(user)


@routes.route(
    "PUT",
    "/agents/{id}/skills/{skill}",
    "Set an agent's skill level (1-10)",
    response=UserOut,
    min_role=least("people.skills"),
    body=SkillIn,
    path_params=SkillPath,
)
async def set_skill(request: web.Request) -> UserOut:
    data = await read_body(request, SkillIn)
    skill = request.match_info["skill"]
    user_id = path_id(request)
    async with _session(request) as session, session.begin():
        await people.set_skill(session, user_id, skill, data.level)
        user = await session.get(User, user_id)
        assert user is not None
        await session.refresh(user, ["skills"])
        return serialize.user(user)

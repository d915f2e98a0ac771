"""Customer pages: search, the profile with its timeline, and the forms the pop leads to
(create the unknown caller, click-to-dial a number)."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from agent_ui.auth import UI_SESSION, pages, render
from agent_ui.call_chain import chains_of
from agent_ui.deps import DEPS
from agent_ui.desktop import DESKS
from agent_ui.ws import UiError
from crm_core.access import interactions_visible, least
from crm_core.cases import cases_for
from crm_core.customers import create_customer, get_customer, search_customers
from crm_core.errors import CrmError, NotFound
from crm_core.interactions import timeline
from crm_core.models import Customer, User
from crm_core.pins import pin_locked
from crm_core.schemas import CustomerIn
from cti_server.control import ControlError


@pages.route("GET", "/customers", least("customer.search"), name="customers")
async def search_page(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "").strip()[:100]
    found = []
    if query:
        async with request.app[DEPS].db() as db:
            found = await search_customers(db, query, request.app[DEPS].region)
    return render(request, "customers.html", query=query, customers=found)


@pages.route("GET", "/customers/{id:[0-9]{1,12}}", least("customer.read"), name="customer")
async def profile_page(request: web.Request) -> web.StreamResponse:
    """The record, with the calls and cases the role matrix lets this user see (an agent: their
    own calls, or every call of a customer they are serving; the cases assigned to them)."""
    customer_id = int(request.match_info["id"])
    session = request[UI_SESSION]
    serving = request.app[DESKS].serving(session.extension)
    async with request.app[DEPS].db() as db:
        try:
            customer = await get_customer(db, customer_id)
        except NotFound as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        viewer = await db.get(User, session.user_id)
        history, complaints, visible, chains = [], [], None, {}
        if viewer is not None:
            visible = interactions_visible(viewer, serving, customer_id)
            history = await timeline(db, customer_id, limit=100, where=visible)
            chains = await chains_of(db, history)
            complaints = await cases_for(db, viewer, customer_id=customer_id, limit=100)
    return render(
        request,
        "customer.html",
        customer=customer,
        ivr_pin=_ivr_pin(customer),
        history=history,
        chains=chains,
        own_calls_only=visible is not None,
        complaints=complaints,
        message=request.query.get("message", "")[:200],
    )


def _ivr_pin(customer: Customer) -> str:
    """What the desk needs of the IVR PIN: whether callers can prove who they are with one, and
    a lock the customer may be calling about (the PIN itself is never shown: only its hash is
    kept)."""
    if customer.pin_hash is None:
        return "none: callers are named by caller ID only"
    if pin_locked(customer):
        assert customer.pin_locked_until is not None
        until = customer.pin_locked_until.strftime("%Y-%m-%d %H:%M UTC")
        return f"locked until {until} after {customer.pin_failures} wrong tries"
    if customer.pin_failures:
        return f"set ({customer.pin_failures} wrong since the last right one)"
    return "set"


@pages.route("POST", "/customers/new", least("customer.create"), name="new_customer")
async def create_from_pop(request: web.Request) -> web.StreamResponse:
    """The pop's create-customer form: the unknown caller becomes a customer of this call."""
    form = await request.post()
    deps = request.app[DEPS]
    phone = str(form.get("phone", "")).strip()
    try:
        data = CustomerIn.model_validate(
            {
                "name": str(form.get("name", "")),
                "phones": [{"number": phone}] if phone else [],
                "account_number": str(form.get("account_number", "")).strip() or None,
                "language": str(form.get("language", "")).strip() or None,
            }
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise web.HTTPBadRequest(text=f"{where}: {error['msg']}") from None
    try:
        async with deps.db() as db, db.begin():
            customer = await create_customer(db, data, deps.region)
    except CrmError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    extension = request[UI_SESSION].extension
    linkedid = str(form.get("linkedid", ""))
    if extension and linkedid:
        desk = request.app[DESKS].desk(extension)
        if desk.pop is not None and desk.pop["call"]["linkedid"] == linkedid:
            await request.app[DESKS].link_customer(desk, customer.id)
            raise web.HTTPSeeOther(request.app.router["desktop"].url_for())
    raise web.HTTPSeeOther(request.app.router["customer"].url_for(id=str(customer.id)))


@pages.route("POST", "/dial", least("desk.use"), name="dial")
async def dial(request: web.Request) -> web.StreamResponse:
    """Click-to-dial from a profile: the agent's phone rings, then the customer's."""
    form = await request.post()
    customer_id = str(form.get("customer_id", ""))
    extension = request[UI_SESSION].extension
    target = request.app.router["customer"].url_for(
        id=customer_id if customer_id.isdigit() else "0"
    )
    try:
        if not extension:
            raise UiError("your user has no extension")
        await request.app[DEPS].control.click_to_dial(extension, str(form.get("number", "")))
        message = "Your phone rings; the customer is called when you answer."
    except (UiError, ControlError) as exc:
        message = str(exc)
    raise web.HTTPSeeOther(target.with_query(message=message))

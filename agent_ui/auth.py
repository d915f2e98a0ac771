"""Sign-in, sign-out, and the checks every page passes: session, role, CSRF.

Each page is declared with the least role it needs (:class:`Pages`), so no route can be added
without saying who may open it. Forms carry the session's CSRF token. The sign-in form, before
any session exists, carries a field bound to its cookie by an HMAC with this process's key and
a time: a cookie and field that a site able to set cookies plants together do not pass (a plain
double-submit would let it sign the victim in as the attacker), nor does a post from another
site's page (its Origin) or an hour-old form. The key is made at start, so a restart makes open
sign-in forms stale ("please try again"), nothing more. Sign-in is throttled and logged with
``POST /api/tokens`` by one :class:`~crm_core.login_throttle.LoginGuard`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from agent_ui.deps import DEPS, TEMPLATES
from agent_ui.sessions import SessionStore, UiSession
from crm_core.access import least
from crm_core.login_throttle import LoginGuard, client_address
from crm_core.models import User
from crm_core.settings import LoginSettings

log = logging.getLogger(__name__)

SESSION_COOKIE = "cti_session"
LOGIN_COOKIE = "cti_login"
COOKIE_PATH = "/ui"
STORE = web.AppKey("ui_store", SessionStore)
LOGINS = web.AppKey("ui_logins", LoginGuard)
LOGIN_KEY = web.AppKey("ui_login_key", bytes)  # binds a sign-in form's field to its cookie
LOGIN_FORM_SECONDS = 3600  # a sign-in form older than this is stale
UI_SESSION = web.RequestKey("ui_session", UiSession)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    """A page from ``templates/`` (autoescaped), with the session and its CSRF token."""
    session = request.get(UI_SESSION)
    template = request.app[TEMPLATES].get_template(name)
    body = template.render(session=session, csrf=session.csrf if session else "", **context)
    return web.Response(text=body, status=status, content_type="text/html")


class Pages:
    """The UI's routes, each with the least role that may open it (None: anyone)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str | None, Handler, str | None]] = []

    def route(
        self, method: str, path: str, role: str | None, name: str | None = None
    ) -> Callable[[Handler], Handler]:
        def _register(handler: Handler) -> Handler:
            self.entries.append((method, path, role, handler, name))
            return handler

        return _register

    def add_to(self, app: web.Application) -> None:
        for method, path, role, handler, name in self.entries:
            app.router.add_route(method, path, checked(role, handler), name=name)


def checked(role: str | None, handler: Handler) -> Handler:
    """Session, role and (on POST) CSRF checked before ``handler`` runs."""

    async def _checked(request: web.Request) -> web.StreamResponse:
        if role is None:
            return await handler(request)
        session = await _session_of(request)
        if session is None:
            if request.method == "GET":
                raise web.HTTPSeeOther(request.app.router["login"].url_for())
            raise web.HTTPUnauthorized(text="sign in first")
        request[UI_SESSION] = session
        if not session.at_least(role):
            return render(request, "forbidden.html", status=403, needed=role)
        if request.method == "POST":
            form = await request.post()
            if not _same(str(form.get("csrf", "")), session.csrf):
                raise web.HTTPForbidden(text="the form is stale or forged (CSRF)")
        request.app[STORE].touch(session)
        return await handler(request)

    return _checked


async def _session_of(request: web.Request) -> UiSession | None:
    """The request's live session: None when idle, revoked, or its user changed. Sessions are
    in the database, so while it cannot answer nobody can be let in: a 503 that says so."""
    try:
        async with request.app[DEPS].db() as db:
            return await request.app[STORE].open(db, request.cookies.get(SESSION_COOKIE))
    except (SQLAlchemyError, OSError) as exc:
        raise _database_down("check a session", exc) from None


def _database_down(doing: str, exc: Exception) -> web.HTTPServiceUnavailable:
    log.warning("cannot %s: the database does not answer: %s", doing, exc)
    return web.HTTPServiceUnavailable(
        text="The database cannot answer now; please try again in a moment."
    )


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.app[DEPS].settings.cookie_secure,
    )


def add_sign_in(app: web.Application, logins: LoginGuard | None) -> None:
    """The sign-in's parts: the server's one guard (else one of its own) and a fresh form key."""
    app[LOGINS] = logins or LoginGuard(app[DEPS].db, LoginSettings())
    app[LOGIN_KEY] = secrets.token_bytes(32)


def _form_mac(key: bytes, nonce: str, issued: int) -> str:
    return hmac.new(key, f"{nonce}.{issued}".encode(), hashlib.sha256).hexdigest()


def _login_field(request: web.Request, nonce: str) -> str:
    issued = int(time.time())
    return f"{issued}.{_form_mac(request.app[LOGIN_KEY], nonce, issued)}"


def _login_form_valid(request: web.Request, field: str) -> bool:
    """The field was made by this server for this cookie, within the hour, on a page of ours."""
    origin = request.headers.get("Origin")
    if origin is not None and origin not in (
        f"{request.scheme}://{request.host}",
        *request.app[DEPS].settings.allowed_origins,
    ):
        return False
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    issued_text, _, mac = field.partition(".")
    if not (nonce and issued_text.isdigit() and len(issued_text) < 12):
        return False
    issued = int(issued_text)
    if not 0 <= time.time() - issued <= LOGIN_FORM_SECONDS:
        return False
    return _same(mac, _form_mac(request.app[LOGIN_KEY], nonce, issued))


pages = Pages()


@pages.route("GET", "/login", None, name="login")
async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_page(request, "", 200)


def _login_page(request: web.Request, error: str, status: int) -> web.Response:
    nonce = secrets.token_urlsafe(24)
    field = _login_field(request, nonce)
    response = render(request, "login.html", status=status, login_csrf=field, error=error)
    set_cookie(response, request, LOGIN_COOKIE, nonce)
    return response


@pages.route("POST", "/login", None)
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if not _login_form_valid(request, str(form.get("csrf", ""))):
        return _login_page(request, "The sign-in form expired; please try again.", 403)
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:256]
    guard = request.app[LOGINS]
    address = client_address(
        request.remote, request.headers.get("X-Forwarded-For"), guard.settings.trusted_proxies
    )
    try:
        signed_in = await guard.sign_in(username, password, address)
        if signed_in is None:
            return _login_page(request, "Wrong user name or password.", 401)
        async with request.app[DEPS].db() as db:
            user = await db.get_one(User, signed_in.id)
            session = await request.app[STORE].create(db, user)
    except (SQLAlchemyError, OSError) as exc:
        raise _database_down("sign in", exc) from None
    target = "wallboard" if session.at_least("supervisor") else "desktop"
    response = web.HTTPSeeOther(request.app.router[target].url_for())
    set_cookie(response, request, SESSION_COOKIE, session.id)
    response.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    raise response


@pages.route("POST", "/logout", least("session.own"))
async def logout(request: web.Request) -> web.StreamResponse:
    async with request.app[DEPS].db() as db:
        await request.app[STORE].revoke(db, request[UI_SESSION].id)
    response = web.HTTPSeeOther(request.app.router["login"].url_for())
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise response


@pages.route("GET", "/", None)
async def home(request: web.Request) -> web.StreamResponse:
    session = await _session_of(request)
    target = "login"
    if session is not None:
        target = "wallboard" if session.at_least("supervisor") else "desktop"
    raise web.HTTPSeeOther(request.app.router[target].url_for())

"""The HTTP edge of the CRM API: authentication, roles, JSON in and out, errors translated once.

Every handler is declared with :func:`route`, which records what the OpenAPI document says about
it (roles, request model, summary), so the document and the code cannot drift apart.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.errors import CrmError
from crm_core.models import ROLES, User
from crm_core.people import user_for_token
from crm_core.schemas import MAX_ID, has_control

log = logging.getLogger(__name__)

SESSIONS = web.AppKey("crm_sessions", async_sessionmaker[AsyncSession])
USER = web.RequestKey("crm_user", User)
MAX_BODY = 1024 * 1024
M = TypeVar("M", bound=BaseModel)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else -1


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    summary: str
    min_role: str | None  # None: no sign-in needed
    body: type[BaseModel] | None = None
    query: dict[str, str] = field(default_factory=dict)


class RouteTable:
    """Handlers with what the OpenAPI document says about them (like aiohttp's RouteTableDef)."""

    def __init__(self) -> None:
        self.entries: list[tuple[RouteInfo, Handler]] = []

    def route(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        min_role: str | None = "agent",
        body: type[BaseModel] | None = None,
        query: dict[str, str] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a handler; ``min_role`` is checked before it runs."""

        def _register(handler: Handler) -> Handler:
            info = RouteInfo(method, path, summary, min_role, body, query or {})
            self.entries.append((info, _role_checked(info, handler)))
            return handler

        return _register


def _role_checked(info: RouteInfo, handler: Handler) -> Handler:
    async def _checked(request: web.Request) -> web.StreamResponse:
        if info.min_role is not None:
            user = request.get(USER)
            if user is None:
                raise web.HTTPUnauthorized(
                    text=_error_text("unauthorized", "a valid bearer token is required"),
                    content_type="application/json",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if role_rank(user.role) < role_rank(info.min_role):
                raise CrmForbiddenRole(info.min_role)
        return await handler(request)

    return _checked


class CrmForbiddenRole(CrmError):
    status = 403
    code = "forbidden"

    def __init__(self, role: str) -> None:
        super().__init__(f"this needs the role {role} or higher")


def _error_text(code: str, message: str, **extra: Any) -> str:
    return json.dumps({"error": code, "message": message, **extra}, ensure_ascii=False)


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.Response(
        status=status, text=_error_text(code, message, **extra), content_type="application/json"
    )


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request body validated by ``model``; bad bytes or JSON raise a 400, bad fields a 422."""
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid UTF-8") from None
    try:
        payload = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc.msg} at {exc.pos}") from None
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    return model.model_validate(payload)


class BadRequest(CrmError):
    status = 400
    code = "bad_request"


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidQuery(name, "must be a whole number") from None
    if not low <= value <= high:
        raise InvalidQuery(name, f"must be from {low} to {high}")
    return value


def query_text(request: web.Request, name: str, limit: int) -> str:
    """A query parameter's text, cut to ``limit`` characters; control characters (a NUL that
    PostgreSQL refuses, an escape sequence for a log) are a 422, never sent to the database."""
    value = request.query.get(name, "")[:limit]
    if has_control(value):
        raise InvalidQuery(name, "control characters are not allowed")
    return value


class InvalidQuery(CrmError):
    status = 422
    code = "invalid"

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.fields = [{"field": name, "message": message}]


def path_id(request: web.Request, name: str = "id") -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound(
            text=_error_text("not_found", f"{name} must be a number"),
            content_type="application/json",
        ) from None
    if value < 1 or value > MAX_ID:
        raise web.HTTPNotFound(
            text=_error_text("not_found", f"no such {name}"), content_type="application/json"
        )
    return value


def current_user(request: web.Request) -> User:
    user: User = request[USER]
    return user


@web.middleware
async def errors_middleware(  # noqa: PLR0911 - one return per kind of error
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Library and domain errors become JSON answers here, and nowhere else; anything
    unforeseen is logged with its traceback and answered with a JSON 500 that says nothing of
    the internals (no exception text, no SQL)."""
    try:
        return await handler(request)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        return error_response(422, "invalid", "the request has invalid fields", fields=fields)
    except InvalidQuery as exc:
        return error_response(exc.status, exc.code, str(exc), fields=exc.fields)
    except CrmError as exc:
        return error_response(exc.status, exc.code, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
    except IntegrityError:
        log.info("integrity error on %s %s", request.method, request.path)
        return error_response(409, "conflict", "that conflicts with existing data")
    except (DBAPIError, OSError):
        log.warning("database error on %s %s", request.method, request.path, exc_info=True)
        return error_response(503, "database_unavailable", "the database cannot answer now")
    except web.HTTPException:
        raise  # aiohttp's own answers (404 of the router, 401 with its header)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal", "an unexpected error; it has been logged")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is asking, from ``Authorization: Bearer <token>``; handlers check the role."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip() and len(token) < 200:
        async with request.app[SESSIONS]() as session:
            user = await user_for_token(session, token.strip())
        if user is not None:
            request[USER] = user
    return await handler(request)

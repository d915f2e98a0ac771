"""The HTTP edge of the CRM API: authentication, roles, JSON in and out, errors translated once.

Every handler is declared with :func:`route`, which records what the OpenAPI document says about
it (roles, request model, summary), so the document and the code cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import ErrorDetails
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.errors import CrmError
from crm_core.models import ROLES, User
from crm_core.people import user_for_token
from crm_core.schemas import ErrorOut, Id

log = logging.getLogger(__name__)

SESSIONS = web.AppKey("crm_sessions", async_sessionmaker[AsyncSession])
USER = web.RequestKey("crm_user", User)
MAX_BODY = 1024 * 1024
M = TypeVar("M", bound=BaseModel)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
R = TypeVar("R", bound=BaseModel)
ModelHandler = Callable[[web.Request], Awaitable[R]]

TOKEN_PROBLEM = web.RequestKey("crm_token_problem", str)
"""Why the request's bearer token was not even looked up (the 401 says it)."""
QUERY = web.RequestKey("crm_query", BaseModel)
PATH = web.RequestKey("crm_path", BaseModel)
BODY = web.RequestKey("crm_body", BaseModel)
_PARAM = re.compile(r"\{(\w+)\}")


def role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else -1


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoQuery(_Params):
    """The query of an operation that takes no parameters: any parameter is a 422."""


@dataclass(frozen=True)
class RouteInfo:
    """What the OpenAPI document says about one operation; the route checks the same."""

    method: str
    path: str
    summary: str
    min_role: str | None  # None: no sign-in needed
    response: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] = NoQuery
    path_params: type[BaseModel] = _Params
    errors: frozenset[int] = frozenset()
    """Status codes the operation answers beyond those its shape implies (409, a 404 for an id
    in the body, the 401 of a sign-in)."""


class RouteTable:
    """Handlers with what the OpenAPI document says about them (like aiohttp's RouteTableDef).

    A handler returns an instance of its ``response`` model (mypy checks it); the route turns it
    into JSON with ``status``, so the document and the output cannot drift. Errors are raised
    (:class:`~crm_core.errors.CrmError` and its kin) and answered once, by the middleware.
    """

    def __init__(self) -> None:
        self.entries: list[tuple[RouteInfo, Handler]] = []

    def route(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        response: type[R],
        status: int = 200,
        min_role: str | None = "agent",
        body: type[BaseModel] | None = None,
        query: type[BaseModel] = NoQuery,
        path_params: type[BaseModel] | None = None,
        errors: Iterable[int] = (),
    ) -> Callable[[ModelHandler[R]], ModelHandler[R]]:
        """Register a handler; ``min_role``, the path and the query are checked before it runs.

        Path parameters are ids (integers from 1 to ``MAX_ID``) unless ``path_params`` says
        otherwise; ``query`` is a model of the query parameters (unknown ones are refused).
        """
        info = RouteInfo(
            method,
            path,
            summary,
            min_role,
            response,
            status,
            body,
            query,
            path_params or _id_params(path),
            frozenset(errors),
        )

        def _register(handler: ModelHandler[R]) -> ModelHandler[R]:
            self.entries.append((info, _checked(info, handler)))
            return handler

        return _register


def _id_params(path: str) -> type[BaseModel]:
    names = _PARAM.findall(path)
    fields: dict[str, Any] = {name: (Id, ...) for name in names}
    words = "".join(w.capitalize() for w in re.findall(r"[a-z]+", path)) or "Root"
    return create_model(f"{words}Path", __base__=_Params, **fields)


def _params(model: type[BaseModel], values: Mapping[str, str]) -> BaseModel:
    return model.model_validate(dict(values))


def _query_values(request: web.Request) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in request.query.items():
        if name in values:
            raise InvalidQuery(name, "given more than once")
        values[name] = value
    return values


def _checked(info: RouteInfo, handler: ModelHandler[R]) -> Handler:
    async def _run(request: web.Request) -> web.StreamResponse:
        if info.min_role is not None:
            user = request.get(USER)
            if user is None:
                problem = request.get(TOKEN_PROBLEM, "a valid bearer token is required")
                raise web.HTTPUnauthorized(
                    text=_error_text("unauthorized", problem),
                    content_type="application/json",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if role_rank(user.role) < role_rank(info.min_role):
                raise CrmForbiddenRole(info.min_role)
        # what the client sent is validated here, so that a ValidationError later (a row that
        # does not fit its response model) is the server's fault: a 500, never a 422
        try:
            request[PATH] = _params(info.path_params, request.match_info)
            request[QUERY] = _params(info.query, _query_values(request))
            if info.body is not None:
                request[BODY] = await read_body(request, info.body)
        except ValidationError as exc:
            raise InvalidFields.of(exc) from None
        result = await handler(request)
        return model_response(result, info.status)

    return _run


def model_response(model: BaseModel, status: int = 200) -> web.Response:
    """``model`` as JSON (its serializers decide every representation: times, money)."""
    return web.Response(
        status=status, text=model.model_dump_json(), content_type="application/json"
    )


def query_of(request: web.Request, model: type[M]) -> M:
    """The request's query, validated by the route with ``model``."""
    query = request[QUERY]
    if not isinstance(query, model):
        raise TypeError(f"the route validates its query with {type(query).__name__}")
    return query


class CrmForbiddenRole(CrmError):
    status = 403
    code = "forbidden"

    def __init__(self, role: str) -> None:
        super().__init__(f"this needs the role {role} or higher")


def _error_text(code: str, message: str, fields: list[dict[str, str]] | None = None) -> str:
    error = ErrorOut.model_validate({"error": code, "message": message, "fields": fields})
    return error.model_dump_json(exclude_none=True)


def error_response(
    status: int, code: str, message: str, fields: list[dict[str, str]] | None = None
) -> web.Response:
    """An error answer as the OpenAPI document describes every one (``ErrorOut``)."""
    return web.Response(
        status=status, text=_error_text(code, message, fields), content_type="application/json"
    )


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request body validated by ``model``; bad bytes or JSON raise a 400, bad fields a
    ValidationError (a 422 in a route of the table, which reads the body before the handler)."""
    read = request.get(BODY)
    if isinstance(read, model):
        return read
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
    except ValueError:  # Python's limit on the digits of an int (sys.get_int_max_str_digits)
        raise BadRequest("the body holds a number with too many digits") from None
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        escape = f"\\u{ord(exc.object[exc.start]):04x}"
        raise BadRequest(f"the body holds {escape}, a lone surrogate: not a character") from None
    return model.model_validate(payload)


class BadRequest(CrmError):
    status = 400
    code = "bad_request"


class Unauthorized(CrmError):
    status = 401
    code = "unauthorized"


class InvalidFields(CrmError):
    """What the client sent (body, path or query) does not validate: a 422 naming each field."""

    status = 422
    code = "invalid"

    def __init__(self, message: str, fields: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.fields = fields

    @staticmethod
    def of(error: ValidationError) -> InvalidFields:
        fields = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": _message(err)}
            for err in error.errors(include_url=False, include_input=False)
        ]
        return InvalidFields("the request has invalid fields", fields)


class InvalidQuery(InvalidFields):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}", [{"field": name, "message": message}])


def path_id(request: web.Request, name: str = "id") -> int:
    """A path id, validated by the route (an integer from 1 to ``MAX_ID``, else a 422)."""
    value = getattr(request[PATH], name)
    if not isinstance(value, int):
        raise TypeError(f"the path parameter {name} is not an id")
    return value


def current_user(request: web.Request) -> User:
    user: User = request[USER]
    return user


@web.middleware
async def errors_middleware(  # noqa: PLR0911 - one return per kind of error
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Library and domain errors become JSON answers here, and nowhere else; anything
    unforeseen (a ValidationError of a response model included) is logged with its traceback
    and answered with a JSON 500 that says nothing of the internals (no exception text, no SQL)."""
    try:
        return await handler(request)
    except InvalidFields as exc:
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


def _message(error: ErrorDetails) -> str:
    """Pydantic's message, without the "Value error, " it puts before our validators' words."""
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    return error["msg"]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is asking, from ``Authorization: Bearer <token>``; handlers check the role.

    A token is printable ASCII (RFC 6750's ``b64token``); any other byte (one that is not
    UTF-8 reaches us as a lone surrogate) is not looked up, and the 401 says why."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return await handler(request)
    if len(token) >= 200 or not (token.isascii() and token.isprintable()):
        request[TOKEN_PROBLEM] = "the bearer token is malformed: printable ASCII, under 200 long"
        return await handler(request)
    async with request.app[SESSIONS]() as session:
        user = await user_for_token(session, token)
    if user is not None:
        request[USER] = user
    return await handler(request)

"""User administration over the REST API (admins only): list, create, change role, extension,
display name or active state, set a password, and read the audit of all of it.

Every change is audited as ``api:<the admin's username>`` and signs the user out where it
matters (:func:`crm_core.people.change_user`). The routes join the CRM's one route table, so
they are in the OpenAPI document like every other.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from crm_core import people
from crm_core.access import least
from crm_core.api import serialize
from crm_core.api.handlers import UserIn, Username, routes
from crm_core.api.http import SESSIONS, current_user, path_id, query_of, read_body
from crm_core.errors import NotFound
from crm_core.models import User
from crm_core.schemas import Limit, Name, Role, UserList, UserOut

Extension = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,10}$")]
Password = Annotated[str, StringConstraints(min_length=people.MIN_PASSWORD, max_length=256)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserPatch(_Body):
    """The fields to change; those left out stay as they are (``extension: null`` removes it)."""

    role: Role | None = None
    extension: Extension | None = None
    display_name: Name | None = None
    active: bool | None = Field(None, description="false: disabled (cannot sign in)")


class PasswordIn(_Body):
    password: Password


class AuditQuery(_Body):
    username: Username | None = Field(None, description="only this user's changes")
    limit: Limit = 50


class AuditOut(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    id: int
    at: AwareDatetime
    actor: str = Field(description="api:<username>, cli:<system user> or system")
    username: str = Field(description="the user changed")
    action: str = Field(description="created, changed, disabled or enabled")
    changes: dict[str, object] = Field(
        description='each field as {"from": old, "to": new}; a password only as "changed"'
    )


class AuditList(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    items: list[AuditOut]


def _actor(request: web.Request) -> people.Actor:
    return people.api_actor(current_user(request))


async def _username(request: web.Request, user_id: int) -> str:
    async with request.app[SESSIONS]() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user.username


async def _change(request: web.Request, changes: people.UserChanges) -> UserOut:
    username = await _username(request, path_id(request))
    async with request.app[SESSIONS]() as session, session.begin():
        user = await people.change_user(session, username, changes, by=_actor(request))
        return serialize.user(user)


@routes.route(
    "GET",
    "/users/audit",
    "Who created or changed users, when, and what changed (newest first)",
    response=AuditList,
    min_role=least("users.admin"),
    query=AuditQuery,
    errors=[404],
)
async def user_audit(request: web.Request) -> AuditList:
    query = query_of(request, AuditQuery)
    async with request.app[SESSIONS]() as session:
        entries = await people.user_audit(session, query.username, query.limit)
    return AuditList(
        items=[
            AuditOut(
                id=e.id,
                at=e.at,
                actor=e.actor,
                username=e.username,
                action=e.action,
                changes=e.changes,
            )
            for e in entries
        ]
    )


@routes.route(
    "GET",
    "/users",
    "Every user, disabled ones too",
    response=UserList,
    min_role=least("users.admin"),
)
async def list_users(request: web.Request) -> UserList:
    async with request.app[SESSIONS]() as session:
        return UserList(items=[serialize.user(u) for u in await people.list_users(session)])


@routes.route(
    "POST",
    "/users",
    "Create a user (audited)",
    response=UserOut,
    status=201,
    min_role=least("users.admin"),
    body=UserIn,
    errors=[409],
)
async def create_user(request: web.Request) -> UserOut:
    data = await read_body(request, UserIn)
    async with request.app[SESSIONS]() as session, session.begin():
        user = await people.create_user(session, **data.model_dump(), by=_actor(request))
        return serialize.user(user)


@routes.route(
    "PATCH",
    "/users/{id}",
    "Change a user's role, extension, display name or active state; signs them out",
    response=UserOut,
    min_role=least("users.admin"),
    body=UserPatch,
    errors=[404, 409],
)
async def patch_user(request: web.Request) -> UserOut:
    data = await read_body(request, UserPatch)
    given = data.model_fields_set
    extension = (data.extension or "") if "extension" in given else None
    return await _change(
        request,
        people.UserChanges(
            role=data.role,
            extension=extension,
            display_name=data.display_name,
            active=data.active,
        ),
    )


@routes.route(
    "PUT",
    "/users/{id}/password",
    "Set a user's password; signs them out and revokes their API tokens",
    response=UserOut,
    min_role=least("users.admin"),
    body=PasswordIn,
    errors=[404],
)
async def set_password(request: web.Request) -> UserOut:
    data = await read_body(request, PasswordIn)
    return await _change(request, people.UserChanges(password=data.password))

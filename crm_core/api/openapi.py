"""The OpenAPI 3.1 document, built from the route table and the pydantic models.

Each operation lists only the answers it can give: its success (200, or 201 when it creates)
with the response model; 400 and 413 when it reads a body; 401 when it needs a sign-in, 403 when
it needs more than an agent or its rules may refuse (declared by the route); 404 when its path
names a record; 409 where a conflict is possible (declared by the route); 422 always (a bad body,
path or query parameter, or a query parameter the operation does not take); 500 and 503 always
(an unforeseen error, the database unreachable). Every error answer has one schema, ``ErrorOut``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from crm_core.api.http import RouteInfo
from crm_core.schemas import ErrorOut

_REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "Malformed body: not UTF-8, not JSON, not an object",
    401: "No valid bearer token",
    403: "The role is not enough",
    404: "No such record",
    409: "Conflicts with the current state or existing data",
    413: "Body larger than 1 MiB",
    422: "Invalid fields or parameters: the answer lists them",
    500: "An unforeseen error; it has been logged",
    503: "The database cannot answer now",
}


class _Schemas:
    """The ``components/schemas`` being collected: each model once, by its name."""

    def __init__(self) -> None:
        self.found: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        self.found.update(schema.pop("$defs", {}))
        self.found[model.__name__] = schema
        return {"$ref": _REF.format(model=model.__name__)}

    def inline(self, model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=_REF, mode="validation")
        self.found.update(schema.pop("$defs", {}))
        return schema


def codes(info: RouteInfo) -> list[int]:
    """The status codes an operation can answer, in order."""
    found = {info.status, 422, 500, 503, *info.errors}  # 422: any unknown query parameter
    if info.body is not None:
        found |= {400, 413}
    if info.min_role is not None:
        found.add(401)
    if info.min_role not in (None, "agent"):
        found.add(403)  # below that, a route declares the 403s its rules give
    if info.path_params.model_fields:
        found.add(404)
    return sorted(found)


def build_openapi(entries: list[RouteInfo], prefix: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas = _Schemas()
    error = schemas.ref(ErrorOut, "serialization")
    for info in entries:
        operation: dict[str, Any] = {
            "summary": info.summary,
            "operationId": _operation_id(info),
            "parameters": _parameters(info, schemas),
            "responses": _responses(info, schemas, error),
        }
        if info.min_role is not None:
            operation["security"] = [{"bearer": []}]
            operation["description"] = f"Needs the role {info.min_role} or higher."
        else:
            operation["security"] = []
        if info.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas.ref(info.body, "validation")}},
            }
        paths.setdefault(prefix + info.path, {})[info.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "CTI server CRM API", "version": version},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.found.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _responses(info: RouteInfo, schemas: _Schemas, error: dict[str, str]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code in codes(info):
        if code == info.status:
            schema = schemas.ref(info.response, "serialization")
            description = "Created" if code == 201 else "OK"
        else:
            schema, description = error, _ERRORS[code]
        answer: dict[str, Any] = {
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
        if code == 401 and info.min_role is not None:
            answer["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
            }
        responses[str(code)] = answer
    return responses


def _parameters(info: RouteInfo, schemas: _Schemas) -> list[dict[str, Any]]:
    found = []
    for where, model in (("path", info.path_params), ("query", info.query)):
        schema = schemas.inline(model)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameter = {
                "name": name,
                "in": where,
                "required": where == "path" or name in required,
                "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
            }
            if "description" in prop:
                parameter["description"] = prop["description"]
            found.append(parameter)
    return found


def _operation_id(info: RouteInfo) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", info.path.lower()).strip("_")
    return f"{info.method.lower()}_{words}"

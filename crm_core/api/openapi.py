"""The OpenAPI 3.1 document, built from the route table and the pydantic request models."""

from __future__ import annotations

import re
from typing import Any

from crm_core.api.http import RouteInfo

_PARAM = re.compile(r"\{(\w+)\}")


def build_openapi(entries: list[RouteInfo], prefix: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for info in entries:
        operation: dict[str, Any] = {
            "summary": info.summary,
            "operationId": _operation_id(info),
            "responses": {
                "200": {"description": "OK"},
                "201": {"description": "Created"},
                "400": {"description": "Malformed body (not JSON, not UTF-8)"},
                "404": {"description": "Not found"},
                "409": {"description": "Conflict with the current state"},
                "413": {"description": "Body larger than 1 MiB"},
                "422": {"description": "Invalid fields: the answer lists them"},
            },
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PARAM.findall(info.path)
            ]
            + [
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": text,
                    "schema": {"type": "string"},
                }
                for name, text in info.query.items()
            ],
        }
        if info.min_role is not None:
            operation["security"] = [{"bearer": []}]
            operation["description"] = f"Needs the role {info.min_role} or higher."
            operation["responses"]["401"] = {"description": "No valid bearer token"}
            operation["responses"]["403"] = {"description": "The role is not enough"}
        if info.body is not None:
            name = info.body.__name__
            schema = info.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[name] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            }
        paths.setdefault(prefix + info.path, {})[info.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "CTI server CRM API", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation_id(info: RouteInfo) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", info.path.lower()).strip("_")
    return f"{info.method.lower()}_{words}"

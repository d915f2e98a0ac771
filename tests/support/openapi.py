"""Every answer of the CRM API checked against its OpenAPI document, as a server middleware.

Mounted in front of the API in a test, :class:`ResponseChecker` looks at each answer on its way
out (those a handler returns and the HTTP errors raised on the way), finds the operation the
request matched in the document, and records a problem when the status code is not one the
operation lists, when the body does not match the listed schema (JSON Schema 2020-12 with the
document's ``components`` and format checks), or when a 401 lacks its ``WWW-Authenticate``. The
fixture that mounts it fails the test on any problem, so every API test checks the document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_DOCUMENT = "urn:crm-openapi"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ResponseChecker:
    """Checks answers against ``document``; ``problems`` lists what did not match."""

    document: dict[str, Any]
    prefix: str = "/api/"
    """Answers to paths outside it (pages of the desktop mounted beside the API) are not checked."""
    ignore: frozenset[str] = frozenset({"/api/openapi.json"})
    """Paths not described by the document (the document itself)."""
    problems: list[str] = field(default_factory=list)
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    """(method, path template, status) of every checked answer."""

    def __post_init__(self) -> None:
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_DOCUMENT, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        templates = sorted(self.document["paths"], key=lambda path: path.count("{"))
        self._paths = [(_pattern(path), path) for path in templates]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The path template and operation ``method path`` matches (fixed paths first)."""
        for pattern, template in self._paths:
            if pattern.fullmatch(path):
                found = self.document["paths"][template].get(method.lower())
                return (template, found) if found is not None else None
        return None

    def check(
        self, method: str, path: str, status: int, text: str, headers: dict[str, str]
    ) -> None:
        """Record a problem for each way the answer differs from the document."""
        if path in self.ignore or not path.startswith(self.prefix):
            return
        matched = self.operation(method, path)
        if matched is None:
            self.problems.append(f"{method} {path}: no such operation in the document")
            return
        template, operation = matched
        where = f"{method} {template} -> {status}"
        self.seen.add((method, template, status))
        response = operation["responses"].get(str(status))
        if response is None:
            listed = ", ".join(operation["responses"])
            self.problems.append(f"{where}: status not listed (listed: {listed})")
            return
        for name, header in response.get("headers", {}).items():
            if header.get("required") and name not in headers:
                self.problems.append(f"{where}: header {name} missing")
        schema = response["content"]["application/json"]["schema"]
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            self.problems.append(f"{where}: body is not JSON: {text[:80]!r}")
            return
        for error in self.errors(schema, body):
            self.problems.append(f"{where}: {error}")

    def errors(self, schema: dict[str, Any], body: Any) -> list[str]:
        """Where ``body`` does not match ``schema`` (a schema of the document, refs and all)."""
        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            anchored = {"$ref": _DOCUMENT + schema["$ref"]} if "$ref" in schema else schema
            validator = Draft202012Validator(
                anchored, registry=self._registry, format_checker=FormatChecker()
            )
            self._validators[key] = validator
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or 'body'}: {error.message}"
            for error in validator.iter_errors(body)
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Check the answer to ``request``, whether returned or raised."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.check(request.method, request.path, exc.status, exc.text or "", dict(exc.headers))
            raise
        if isinstance(response, web.Response):
            text = response.text or ""
            self.check(request.method, request.path, response.status, text, dict(response.headers))
        else:
            self.problems.append(f"{request.method} {request.path}: a streamed answer")
        return response


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))

"""The CRM API's OpenAPI document: valid 3.1, each operation's own answers, typed parameters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from openapi_spec_validator import validate

from crm_core.api.app import openapi_document
from crm_core.schemas import MAX_ID, MONEY_PATTERN, ValueOut
from tests.support.openapi import ResponseChecker

DOCUMENT = openapi_document()
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]


def _codes(method: str, path: str) -> list[int]:
    return sorted(int(code) for code in DOCUMENT["paths"][path][method.lower()]["responses"])


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT)


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_every_answer_of_every_operation_has_a_schema(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    for code, response in operation["responses"].items():
        assert response["content"]["application/json"]["schema"], (method, path, code)


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("GET", "/api/customers", [200, 401, 422, 500, 503]),
        ("GET", "/api/customers/{id}", [200, 401, 404, 422, 500, 503]),
        ("GET", "/api/agents", [200, 401, 403, 422, 500, 503]),
        ("POST", "/api/tokens", [201, 400, 401, 413, 422, 500, 503]),
        ("POST", "/api/customers", [201, 400, 401, 403, 404, 409, 413, 422, 500, 503]),
        ("POST", "/api/interactions", [200, 400, 401, 403, 404, 409, 413, 422, 500, 503]),
        ("DELETE", "/api/customers/{id}", [200, 401, 403, 404, 422, 500, 503]),
        ("POST", "/api/merges/{id}/undo", [200, 401, 403, 404, 409, 422, 500, 503]),
    ],
)
def test_an_operation_lists_only_what_it_can_answer(
    method: str, path: str, codes: list[int]
) -> None:
    assert _codes(method, path) == codes


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_the_shape_of_an_operation_decides_its_codes(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    codes = _codes(method, path)
    has_body = "requestBody" in operation
    assert (400 in codes, 413 in codes) == (has_body, has_body)
    if method == "GET":
        assert 201 not in codes
    assert (401 in codes) == bool(operation["security"]) or path == "/api/tokens"
    assert (404 in codes) >= ("{id}" in path)


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_path_ids_are_integers_within_the_database_bounds(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    for parameter in operation["parameters"]:
        if parameter["in"] == "path" and parameter["name"] == "id":
            assert parameter["required"] is True
            assert parameter["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def test_query_parameters_are_typed() -> None:
    parameters = {p["name"]: p for p in DOCUMENT["paths"]["/api/cases"]["get"]["parameters"]}
    assert parameters["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 200,
        "default": 25,
    }
    assert parameters["limit"]["required"] is False
    status = parameters["status"]["schema"]["anyOf"][0]
    assert status == {"type": "string", "enum": ["open", "assigned", "resolved", "closed"]}
    lookup = DOCUMENT["paths"]["/api/customers/lookup"]["get"]["parameters"]
    assert [(p["name"], p["required"]) for p in lookup] == [("number", True)]


@pytest.mark.parametrize(
    ("stored", "shown"),
    [(Decimal("0"), "0.00"), (0.0, "0.00"), (Decimal("3600"), "3600.00"), (12.345, "12.35")],
)
def test_money_is_always_a_string_with_two_places(stored: Any, shown: str) -> None:
    value = ValueOut.model_validate(
        {
            "tier": "standard",
            "tier_override": None,
            "reason": "",
            "recency": 1,
            "frequency": 1,
            "monetary": 1,
            "lifetime_value": stored,
        }
    )
    assert value.model_dump(mode="json")["lifetime_value"] == shown
    schema = DOCUMENT["components"]["schemas"]["ValueOut"]["properties"]["lifetime_value"]
    assert (schema["type"], schema["pattern"]) == ("string", MONEY_PATTERN)


# -- the checker every API test runs its answers through: it must be able to fail ------------

CUSTOMER = "/api/customers/7"


def _problems(status: int, body: str, headers: dict[str, str] | None = None) -> list[str]:
    checker = ResponseChecker(DOCUMENT)
    checker.check("GET", CUSTOMER, status, body, headers or {})
    return checker.problems


def test_the_checker_passes_an_answer_the_document_describes() -> None:
    assert _problems(404, '{"error": "not_found", "message": "customer 7 does not exist"}') == []


@pytest.mark.parametrize(
    ("status", "body", "headers", "problem"),
    [
        (201, "{}", {}, "status not listed"),
        (409, '{"error": "conflict", "message": "x"}', {}, "status not listed"),
        (200, '{"id": 7}', {}, "'kind' is a required property"),
        (404, '{"error": "not_found"}', {}, "'message' is a required property"),
        (401, '{"error": "unauthorized", "message": "x"}', {}, "header WWW-Authenticate"),
        (500, "Internal Server Error", {}, "not JSON"),
    ],
)
def test_the_checker_names_what_the_document_does_not_say(
    status: int, body: str, headers: dict[str, str], problem: str
) -> None:
    problems = _problems(status, body, headers)
    assert any(problem in found for found in problems), problems


def test_the_checker_refuses_an_operation_the_document_lacks() -> None:
    checker = ResponseChecker(DOCUMENT)
    checker.check("DELETE", "/api/cases/1", 200, "{}", {})
    assert checker.problems == ["DELETE /api/cases/1: no such operation in the document"]


def test_the_checker_leaves_pages_beside_the_api_alone() -> None:
    checker = ResponseChecker(DOCUMENT)
    checker.check("GET", "/ui/desk", 200, "<html></html>", {})
    assert checker.problems == []

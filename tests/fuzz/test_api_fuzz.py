"""Every operation of the CRM API, fuzzed from its OpenAPI document by schemathesis: requests that
fit the document and requests that break it (wrong types, missing fields, odd strings, huge
numbers) get no 5xx and leave no traceback in the log.

Bounded and repeatable for CI: a fixed number of examples per operation and mode, derandomized
(the same requests on every run), no example database. Requests are sent from a worker thread
(schemathesis calls with ``requests``) while the server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.api.app import openapi_document
from crm_core.settings import CrmSettings, LoginSettings
from tests.support.crm_api import crm_api, tracebacks

Operation = APIOperation[Any, Any, Any, Any]
EXAMPLES = 40
"""Per operation and mode: about 4,000 requests, under a minute on two cores."""
LAST = ("/api/users", "/api/tokens")
"""Operations that may end the fuzzing admin's token (a password, role or token change): last."""


def _fuzz(base_url: str, token: str) -> list[str]:
    """Each operation's examples sent to ``base_url``; what answered 5xx."""
    schema = schemathesis.openapi.from_dict(openapi_document())
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document loads whole
        operations.append(result.ok())
    operations.sort(key=lambda op: op.path.startswith(LAST))
    found: list[str] = []
    with requests.Session() as session:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                found += _examples(operation, mode, session, base_url, token)
    return found


def _examples(
    operation: Operation,
    mode: GenerationMode,
    session: requests.Session,
    base_url: str,
    token: str,
) -> list[str]:
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: schemathesis.Case[Any]) -> None:
        response = case.call(
            base_url=base_url,
            session=session,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        if response.status_code >= 500:
            found.append(f"{case.method} {case.formatted_path} ({mode.value}): {response.text}")

    send()
    return found


@pytest.mark.asyncio
async def test_no_fuzzed_request_to_any_api_operation_gets_a_5xx_or_logs_a_traceback(
    sqlite_db: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # wrong passwords are part of the fuzz: their answers are delayed a hundredth of a second
    quick = LoginSettings(first_delay_seconds=0.01, max_delay_seconds=0.01)
    async with crm_api(sqlite_db, CrmSettings(login=quick)) as api:
        base_url = str(api.client.make_url("")).rstrip("/")
        failures = await asyncio.to_thread(_fuzz, base_url, api.tokens["admin"])
        seen = {(method, path) for method, path, _ in api.checker.seen}
    assert failures == []
    assert api.checker.problems == []  # every answer is one the document describes
    assert tracebacks(caplog.records) == []
    document = openapi_document()["paths"]
    every = {(m.upper(), path) for path, ops in document.items() for m in ops}
    assert every - seen - {("GET", "/api/openapi.json")} == set()  # each one answered

"""Every operation of the CRM API, fuzzed from its OpenAPI document by schemathesis: requests that
fit the document and requests that break it (wrong types, missing fields, odd strings, huge
numbers) get no 5xx and leave no traceback in the log.

Bounded and repeatable for CI, and chosen rather than many. Each operation gets, first, the
schema's edges: schemathesis's coverage cases of requests that fit the document (each number and
length at its bounds, each enum value, each optional field absent and present, the largest
lists), a fixed list of about 550 requests in all. Then derandomized Hypothesis examples (the
same requests on every run, no example database) for what no edge names: odd characters, values
between the bounds; more of them fit the document than break it, since a request that breaks it
stops at the one validation layer every operation shares, and one that fits reaches the
operation's own code. Requests are sent from a worker thread (schemathesis calls with
``requests``) while the server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override
from schemathesis.schemas import APIOperation
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.api.app import openapi_document
from crm_core.settings import CrmSettings, LoginSettings
from tests.support.crm_api import crm_api, tracebacks

Operation = APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Any]
EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 6}
"""Random examples per operation beside its edges: about 1,500 requests in all with the edges,
under 30 s of CPU. Of 12 server bugs planted to weigh it (a bound, a length, an empty patch, a
character, a value), these find 7; 40 examples of each mode without the edges (3,000 requests)
found 5 of the 11 tried: the edges find what random draws rarely reach."""
LAST = ("/api/users", "/api/tokens")
"""Operations that may end the fuzzing admin's token (a password, role or token change): last."""


def _fuzz(base_url: str, token: str) -> list[str]:
    """Each operation's edges and examples sent to ``base_url``; what answered 5xx."""
    schema = schemathesis.openapi.from_dict(openapi_document())
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document loads whole
        operations.append(result.ok())
    operations.sort(key=lambda op: op.path.startswith(LAST))
    found: list[str] = []
    with requests.Session() as session:

        def send(case: Case, what: str) -> None:
            response = case.call(
                base_url=base_url,
                session=session,
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            if response.status_code >= 500:
                found.append(f"{case.method} {case.formatted_path} ({what}): {response.text}")

        for operation in operations:
            edges = _edges(operation)
            assert edges, f"{operation.method} {operation.path}: no coverage cases"
            for case in edges:
                send(case, "edge")
            for mode, count in EXAMPLES.items():
                _examples(operation, mode, count, send)
    return found


def _edges(operation: Operation) -> list[Case]:
    """Schemathesis's coverage cases of ``operation`` that fit its document (deterministic)."""
    generator = CoverageGenerator(
        operation=operation,
        generation_modes=[GenerationMode.POSITIVE],
        generation_config=operation.schema.config.generation_for(
            operation=operation, phase="coverage"
        ),
        auth_storage=None,
        override=Override(),
        feedback=FeedbackSources(),
    )
    return list(generator)


def _examples(
    operation: Operation, mode: GenerationMode, count: int, send: Callable[[Case, str], None]
) -> None:
    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def example(case: Case) -> None:
        send(case, mode.value)

    example()


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

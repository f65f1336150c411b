"""Property-based tests of the service from its own OpenAPI document (schemathesis).

Generated requests go to a real server over a real journal: with an admin key no
request may cause a server error (5xx), and every response must match the schema;
without a key, no request may be accepted, reads and writes alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from api_helpers import Keys, auth, backtest_journal, make_keys, serving
from tradepilot.api.app import ServiceSettings

KEYS: Keys = make_keys()
ALL = list(HealthCheck)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    journal = backtest_journal(tmp_path_factory.mktemp("schema") / "bt.db")
    with serving(journal, KEYS, settings=ServiceSettings(rate_per_key=0)) as (url, _):
        yield url


def _operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    return operations


def test_no_server_error_and_responses_match_the_schema(served: str) -> None:
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance]
    for operation in _operations(served):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(headers=auth(KEYS.admin))
            case.validate_response(response, checks=checks)

        run()


def test_nothing_is_accepted_without_a_key(served: str) -> None:
    for operation in _operations(served):
        if operation.path == "/healthz":  # liveness is public and carries no session data
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call()
            assert response.status_code in (401, 422), (
                case.method,
                case.formatted_path,
                response.text,
            )
            if case.method.upper() != "GET":
                assert response.status_code == 401

        run()

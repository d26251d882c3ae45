"""Property-based tests of the live API against its own ``/openapi.json``.

schemathesis generates requests (valid and invalid) for every operation
and checks each answer: never a 5xx, and status, content type, headers and
body as the document declares. Requests go only to the test API on
127.0.0.1, with the API key, except for a start whose repository the farm
would accept: that one is sent without the key (and must be refused), so
no generated request starts a real build.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from common.config import get_config
from common.errors import BadRepoSource
from tests.integration.conftest import API_KEY
from tests.support.farm import ApiClient
from workers.sources import parse_repository

MIN_CASES = 500
EXAMPLES_PER_OPERATION = 60

cases_sent: list[str] = []


@pytest.fixture(scope="module")
def api_schema(api: ApiClient) -> Any:
    assert api.url.startswith("http://127.0.0.1:")
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


def would_start_a_build(case: schemathesis.Case) -> bool:
    """True when ``case`` is a start the farm would accept (so a real build)."""
    body = case.body
    if case.method.upper() != "POST" or not isinstance(body, dict):
        return False
    repository = body.get("repository")
    if not isinstance(repository, str):
        return False
    try:
        parse_repository(repository, get_config())
    except BadRepoSource:
        return False
    return True


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    starts_build = would_start_a_build(case)
    headers = {} if starts_build else {"Authorization": API_KEY}
    response = case.call(headers=headers, timeout=30)
    cases_sent.append(f"{case.method} {case.path}")
    if starts_build:
        assert response.status_code in (403, 422), response.text
    case.validate_response(response, headers=headers)


def test_enough_cases_were_generated() -> None:
    assert len(cases_sent) >= MIN_CASES, (len(cases_sent), sorted(set(cases_sent)))

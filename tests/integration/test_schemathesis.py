"""Property-based tests of the live API against its own ``/openapi.json``.

schemathesis generates requests, valid and invalid, for every operation of
the document the running API serves, and checks each answer: never a 5xx,
and status, content type, headers and body as the document declares.

Requests go only to the test API on 127.0.0.1, with the API key, except a
start whose repository the farm would accept: that one is sent without the
key (and must be refused), so no generated request starts a real build.

schemathesis' own pytest plugin (``schema.parametrize()``) fails on this
pytest (it reads ``Function._nodeid``), so each operation's strategy is
driven with Hypothesis directly, one test per operation and mode.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from api.binderhub_specs import farm_spec
from api.docs import build_spec
from common.config import get_config
from common.errors import BadRepoSource
from tests.integration.conftest import API_KEY
from tests.support.api_cases import plain_repo
from tests.support.farm import ApiClient, Farm
from tests.support.git_server import GitServer
from workers.providers import parse_spec

MIN_CASES = 500
#: Examples per operation: valid and invalid requests, and valid ones naming
#: a build that exists (so success answers are checked against the document).
EXAMPLES = {"positive": 100, "negative": 60, "existing": 40}



def can_be_invalid(parameter: dict[str, Any]) -> bool:
    """Whether a request can carry an invalid value of this parameter. A path
    segment whose only rule is "not empty" cannot: an empty segment is another URL."""
    schema = parameter.get("schema", {})
    if parameter.get("in") == "path" and schema.get("type") == "string":
        return bool(set(schema) - {"type", "minLength", "description"})
    return True


def _runs() -> list[tuple[str, str, str]]:
    """(method, path, mode) for every operation of the document, known without a
    server; "existing" only where a path names a build, "negative" only where
    there is something (parameters, a body) to make invalid."""
    runs = []
    for path, item in build_spec().to_dict()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
            has_input = bool(any(map(can_be_invalid, parameters))
                             or operation.get("requestBody"))
            for mode in EXAMPLES:
                if mode == "existing" and "{name}" not in path:
                    continue
                if mode == "negative" and not has_input:
                    continue
                runs.append((method.upper(), path, mode))
    return runs


RUNS = _runs()

cases_sent: list[str] = []


#: Every built-in check, with two adjustments: a start with a well-formed but
#: unusable repository (most generated strings) is refused 422 badRepoSource,
#: so "valid data is accepted" cannot hold; and gunicorn refuses an over-long
#: URL with 414, a rejection like any 4xx.
CHECKS = {
    "positive_data_acceptance": {"enabled": False},
    "negative_data_rejection": {"expected-statuses": [
        "400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429"]},
}


@pytest.fixture(scope="module")
def built(api: ApiClient, git_server: GitServer) -> str:
    """The name of a completed build (with a template and a log)."""
    response = api.start(plain_repo(git_server, f"{git_server.url}/github", owner="fuzz"))
    assert response.status_code == 200, response.text
    name = str(response.json()["name"])
    assert api.wait(name, timeout=300)["status"] == "completed"
    return name


@pytest.fixture(scope="module")
def api_schema(api: ApiClient) -> Any:
    assert api.url.startswith("http://127.0.0.1:")
    # The key is added to each request by ``check``, not generated.
    config = schemathesis.Config.from_dict({
        "checks": CHECKS, "generation": {"with-security-parameters": False}})
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json", config=config)


def would_start_a_build(case: schemathesis.Case) -> bool:
    """True when ``case`` is a start the farm would accept (so a real build)."""
    if case.path.startswith("/build/"):  # BinderHub's build stream
        prefix, spec = (case.path_parameters or {}).get("prefix"), \
            (case.path_parameters or {}).get("spec")
        try:
            farm_spec(str(prefix), str(spec), get_config())
        except BadRepoSource:
            return False
        return True
    body = case.body
    if case.method.upper() != "POST" or not isinstance(body, dict):
        return False
    repository = body.get("repository")
    if not isinstance(repository, str):
        return False
    try:
        parse_spec(repository, get_config())
    except BadRepoSource:
        return False
    return True


def check(case: schemathesis.Case) -> None:
    starts_build = would_start_a_build(case)
    headers = {} if starts_build else {"Authorization": API_KEY}
    response = case.call(headers=headers, timeout=30)
    cases_sent.append(f"{case.method} {case.path}")
    if case.operation.path == "/build/{prefix}/{spec}" and response.status_code == 200:
        # BinderHub's protocol: a refusal is a `failed` event of a 200 answer (so the
        # no-auth check does not apply) and each event is JSON in a `data:` line, which the
        # document's text/event-stream string cannot describe: check those here instead.
        assert not starts_build or '"status_code": 403' in response.text, response.text
        content_type = {key.lower(): value for key, value in response.headers.items()}
        assert "text/event-stream" in str(content_type.get("content-type")), response.headers
        events = [json.loads(line[len("data:"):]) for line in response.text.splitlines()
                  if line.startswith("data:")]
        assert events and all("phase" in event for event in events), response.text
        return
    assert not starts_build or response.status_code in (403, 422), response.text
    case.validate_response(response, headers=headers)


@pytest.mark.parametrize(("method", "path", "mode"), RUNS)
def test_operation_conforms_to_the_document(api_schema: Any, built: str, method: str,
                                            path: str, mode: str) -> None:
    operation = api_schema[path][method]
    fixed: dict[str, Any] = {}
    if mode == "existing":
        fixed["path_parameters"] = {"name": built}
    generation = GenerationMode.NEGATIVE if mode == "negative" else GenerationMode.POSITIVE

    @given(case=operation.as_strategy(generation_mode=generation, **fixed))
    @settings(max_examples=EXAMPLES[mode], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        check(case)

    run()


def test_enough_cases_were_sent() -> None:
    assert len(cases_sent) >= MIN_CASES, (len(cases_sent), sorted(set(cases_sent)))


def test_no_request_raised_in_the_api(farm: Farm) -> None:
    log = next(p for p in farm.processes if p.name == "api").log_path.read_text(errors="replace")
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]

"""The commands suggest their own options for the farm's errors, not the HTTP API's fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from common import build_store
from common.errors import AlreadyBuilding, BinderError, DoesNotExist, NoBuildInfo, Unauthorized
from workers.cli import main
from workers.cli.farm_client import ApiError, FarmClient
from workers.cli.hints import EVERY_COMMAND, ONE_COMMAND, in_command_terms

#: What only an HTTP client can do; a command's suggestion names its options instead.
HTTP_WORDS = ("GET ", "POST ", "DELETE ", "force: true", "header", "Retry-After", "/builds",
              "/templates", "/hosts", "send the request")


def answer(error: BinderError) -> requests.Response:
    """The farm's HTTP answer for ``error``, as the API sends it."""
    response = requests.Response()
    response.status_code = error.status
    response._content = json.dumps(error.to_body()).encode()
    return response


def refused_start() -> AlreadyBuilding:
    """What the farm refuses a start of a running build with (its own words)."""
    running = {"name": "o-r", "status": "running", "phase": "building",
               "repository": "https://h/o/r", "ref": None}
    with pytest.raises(AlreadyBuilding) as refused:
        build_store._refuse_start(running, "o-r", {}, force=False)  # type: ignore[arg-type]
    return refused.value


def run(monkeypatch: pytest.MonkeyPatch, error: BinderError, *args: str) -> Any:
    """Run ``binder-build ARGS`` against a farm whose every request answers ``error``."""
    def refuse(self: FarmClient, *request: Any, **kwargs: Any) -> requests.Response:
        raise self._error(answer(error))

    monkeypatch.setattr(FarmClient, "_request", refuse)
    return CliRunner().invoke(main, [*args, "--url", "http://127.0.0.1:9", "--api-key", "k"])


def test_a_start_of_a_running_build_suggests_force_not_the_api_field(
        monkeypatch: pytest.MonkeyPatch) -> None:
    error = refused_start()
    assert any("force: true" in text for text in error.suggestions)  # the API's words stay
    done = run(monkeypatch, error, "build", "start", "https://h/o/r")
    assert done.exit_code == 1
    assert "error: Already building the image o-r" in done.stderr, done.stderr
    assert "--force" in done.stderr and "force: true" not in done.stderr, done.stderr
    assert "binder-build build logs o-r --follow" in done.stderr, done.stderr


def test_a_missing_template_and_a_missing_build_point_at_the_list_commands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    no_template = DoesNotExist("No template named o-r.", ["List them with GET /templates/."])
    shown = run(monkeypatch, no_template, "templates", "show", "o-r").stderr
    assert "binder-build templates list" in shown and "GET" not in shown, shown
    no_build = NoBuildInfo("No build named o-r.", ["List builds with GET /builds/."])
    shown = run(monkeypatch, no_build, "build", "status", "o-r").stderr
    assert "binder-build build list" in shown and "GET" not in shown, shown
    shown = run(monkeypatch, no_build, "build", "logs", "o-r", "--build-id", "b1").stderr
    assert "binder-build build history o-r" in shown, shown


@pytest.mark.parametrize("hint", [*EVERY_COMMAND.values(), *ONE_COMMAND.values()])
def test_no_suggestion_of_a_command_is_worded_for_http(hint: Any) -> None:
    for text in hint(ApiError("refused", name="o-r"), {"name": "o-r", "build_id": "b1"}):
        assert not any(word in text for word in HTTP_WORDS), text


def test_a_type_without_hints_of_its_own_keeps_the_farms_suggestions() -> None:
    error = ApiError("Bad YAML.", ["Fix the YAML syntax."], type="badRepoSource", status=422)
    assert in_command_terms(error, "build start", {}) is error


def test_a_request_refused_for_want_of_a_key_says_none_was_sent_and_where_it_is(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run outside the folder ``make up`` ran in, a command finds no saved key of the
    local farm: it says it sent none and where that key is, not only "give a key"."""
    def refuse(self: FarmClient, *request: Any, **kwargs: Any) -> requests.Response:
        raise self._error(answer(Unauthorized("Unauthorized request", ["Send a key."])))

    monkeypatch.setattr(FarmClient, "_request", refuse)
    monkeypatch.chdir(tmp_path)
    env = {"BINDER_API_KEY": None, "BINDER_URL": None, "BINDER_CLIENT_CONFIG": None,
           "BINDER_CONFIG": None, "BINDER_DATA_DIR": None,
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    start = ["build", "start", "https://h/o/r", "--url", "http://127.0.0.1:9"]
    shown = CliRunner().invoke(main, start, env=env).stderr
    assert "No API key was sent: give a key of the farm with --api-key" in shown, shown
    assert ("A farm on this machine (binder-build up) keeps its key in .binder-data/api-key of the "
            "folder it runs in (BINDER_DATA_DIR): run the command there, or give that key."
            ) in shown, shown
    shown = CliRunner().invoke(main, [*start, "--api-key", "wrong"], env=env).stderr
    assert "No API key was sent" not in shown and "binder-build up" not in shown, shown
    assert "The farm does not know the key given with --api-key" in shown, shown


@pytest.mark.parametrize("command", [["build", "status"], ["build", "history"],
                                     ["build", "logs"], ["build", "cancel"],
                                     ["templates", "show"]])
def test_a_repository_given_for_a_name_is_answered_before_any_request(
        monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """Sent, a URL is a path the API does not have, and the answer would blame --url."""
    def no_request(self: FarmClient, *request: Any, **kwargs: Any) -> requests.Response:
        raise AssertionError(f"requested {request}")

    monkeypatch.setattr(FarmClient, "_request", no_request)
    url = "https://github.com/Owner/Repo"
    done = CliRunner().invoke(main, [*command, url, "--url", "http://127.0.0.1:9"])
    assert done.exit_code == 2, done.output
    assert (f"{url} is a repository, not a build's name (such as owner-repo): binder-build "
            f"build list --repository {url} lists its builds with their names."
            ) in " ".join(done.stderr.split()), done.stderr
    done = CliRunner().invoke(main, [*command, "Owner-Repo", "--url", "http://127.0.0.1:9"])
    assert done.exit_code == 2, done.output
    assert ("'Owner-Repo' is not a build's name: names are lower-case letters, digits, "
            "'.', '_' and '-'") in " ".join(done.stderr.split()), done.stderr


@pytest.mark.parametrize("command", ["drain", "undrain"])
def test_a_host_id_that_cannot_be_one_is_answered_before_any_request(
        monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    def no_request(self: FarmClient, *request: Any, **kwargs: Any) -> requests.Response:
        raise AssertionError(f"requested {request}")

    monkeypatch.setattr(FarmClient, "_request", no_request)
    done = CliRunner().invoke(main, ["worker", command, "box/1", "--url", "http://127.0.0.1:9"])
    assert done.exit_code == 2, done.output
    assert ("'box/1' is not a host id: host ids are letters, digits, '.', '-' and '_' "
            "(binder-build worker hosts lists them).") in " ".join(done.stderr.split())


@pytest.mark.parametrize("ref", ["", "  "])
def test_an_empty_ref_is_refused_before_any_request(monkeypatch: pytest.MonkeyPatch,
                                                    ref: str) -> None:
    """An empty --ref would otherwise build the default branch without a word."""
    def no_request(self: FarmClient, *request: Any, **kwargs: Any) -> requests.Response:
        raise AssertionError(f"requested {request}")

    monkeypatch.setattr(FarmClient, "_request", no_request)
    done = CliRunner().invoke(main, ["build", "start", "https://github.com/o/r", "--ref", ref,
                                     "--url", "http://127.0.0.1:9"])
    assert done.exit_code == 2, done.output
    assert ("'--ref': an empty ref names nothing: name a branch, tag or commit, or leave "
            "--ref out to build the default branch.") in " ".join(done.stderr.split()), done.stderr


def test_the_client_sends_an_empty_ref_for_the_farm_to_refuse(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(FarmClient, "_json",
                        lambda self, *request, **kwargs: sent.append(kwargs["json"]) or {})
    FarmClient("http://127.0.0.1:9", "k").start("https://github.com/o/r", ref="")
    FarmClient("http://127.0.0.1:9", "k").start("https://github.com/o/r")
    assert [body.get("ref", "absent") for body in sent] == ["", "absent"]


def test_an_unreachable_farm_names_the_command_that_runs_one() -> None:
    """The program's own command: a person who installed it has no Makefile."""
    shown = CliRunner().invoke(main, ["build", "list", "--url", "http://127.0.0.1:9",
                                      "--api-key", "k"]).stderr
    assert "error: Cannot reach the farm at http://127.0.0.1:9" in shown, shown
    assert "is the farm running (binder-build up)?" in shown and "make" not in shown, shown


def test_a_key_the_farm_does_not_know_is_named_by_where_it_came_from(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A key was sent and refused: the user is told which key (the option's, the
    config file's) to replace, not only to give one."""
    def refuse(self: FarmClient, *request: Any, **kwargs: Any) -> requests.Response:
        raise self._error(answer(Unauthorized("Unauthorized request", ["Send a key."])))

    monkeypatch.setattr(FarmClient, "_request", refuse)
    config = tmp_path / "client.toml"
    config.write_text('api_key = "stale"\n')
    env = {"BINDER_API_KEY": None, "BINDER_URL": None, "BINDER_CLIENT_CONFIG": None}
    start = ["build", "start", "https://h/o/r", "--url", "http://127.0.0.1:9"]
    shown = CliRunner().invoke(main, [*start, "--api-key", "wrong"], env=env).stderr
    assert ("The farm does not know the key given with --api-key or BINDER_API_KEY: give "
            "one of its keys") in shown, shown
    shown = CliRunner().invoke(main, [*start, "--client-config", str(config)], env=env).stderr
    assert f"The farm does not know the key in {config}: give one of its keys" in shown, shown

"""Flower's command keeps its password off the command line; tasks show their build."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import workers.cli.server as server
from common.config import load_config
from common.models import STEPS
from workers.pipeline import send_next
from workers.queues import SHARED_QUEUE, build_name_shown, host_queue, shown_name


def run_flower(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(server.os, "execvpe", lambda file, argv, environ: calls.append(
        (argv, environ)))
    for name in ("BINDER_FLOWER_PASSWORD", "BINDER_FLOWER_USER", "BINDER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(server.flower, [], env={
        "BINDER_DATA_DIR": str(tmp_path), "BINDER_API_KEY": "admin-key-0123456789",
        "BINDER_CREDENTIALS_FILE": str(tmp_path / "none.json"), **env})
    return result, calls


def test_flower_gets_basic_auth_from_settings(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    result, calls = run_flower(tmp_path, monkeypatch, BINDER_FLOWER_USER="ops",
                               BINDER_FLOWER_PASSWORD="s3cret-pass")
    assert result.exit_code == 0, result.output
    [(argv, environ)] = calls
    assert environ["FLOWER_BASIC_AUTH"] == "ops:s3cret-pass"
    assert not any("s3cret-pass" in arg for arg in argv)  # not visible in ps
    assert "flower" in argv
    assert argv[1:3] == ["-m", "workers.flower_main"]  # logfmt lines (process_logs)


def test_flower_password_is_generated_once_and_private(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_flower(tmp_path, monkeypatch)[1][0][1]["FLOWER_BASIC_AUTH"]
    second = run_flower(tmp_path, monkeypatch)[1][0][1]["FLOWER_BASIC_AUTH"]
    user, _, password = first.partition(":")
    assert user == "binder" and len(password) >= 32 and first == second
    saved = tmp_path / "flower-password"
    assert saved.read_text().strip() == password
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_flower_refuses_a_password_it_would_split(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    result, calls = run_flower(tmp_path, monkeypatch, BINDER_FLOWER_PASSWORD="a,b")
    assert result.exit_code != 0 and not calls
    assert "comma" in result.output


def test_every_step_after_fetch_is_shown_with_the_build_name() -> None:
    config = load_config(environ={"BINDER_WORKER_ID": "host-a"})
    sent: list[tuple[str, tuple[object, ...], dict[str, Any]]] = []

    class App:
        def send_task(self, name: str, args: tuple[object, ...], **options: Any) -> None:
            sent.append((name, args, options))

    record: Any = {"build_id": "build-id", "attempt": 2, "name": "owner-repo"}
    for step in STEPS[:-1]:
        send_next(App(), config, step, record)  # type: ignore[arg-type]
    assert [options["shadow"] for _, _, options in sent] == [
        f"binder.{step.name}:owner-repo" for step in STEPS[1:]]
    assert [name for name, _, _ in sent] == [f"binder.{step.name}" for step in STEPS[1:]]
    assert all(args == ("build-id", 2) for _, args, _ in sent)
    assert [options["queue"] for _, _, options in sent] == [
        host_queue("host-a") if step.same_host else SHARED_QUEUE for step in STEPS[1:]]


def test_the_build_name_is_read_back_from_the_shown_name() -> None:
    assert build_name_shown(shown_name(STEPS[0], "owner-repo-main")) == "owner-repo-main"
    assert build_name_shown(None) == ""
    assert build_name_shown("binder.fetch") == ""

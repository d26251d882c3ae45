"""The engine describes a built image once per build: the phases after the build take
its facts from the record, also when one of them runs again after its worker died."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from common.config import Config
from common.models import Phase
from workers import built_image, verification_reuse
from workers.buildpacks.compose import default_command, repo_copy
from workers.phase_runner import PhaseRun
from workers.phases import build, push, template

IMAGE = "registry.example/first:c0ffee"


class Engine:
    """A Docker client whose images are the one just built; it counts descriptions."""

    def __init__(self, config: Config) -> None:
        self.described: list[str] = []
        attrs = {"RootFS": {"Layers": ["sha256:base", "sha256:code"]},
                 "Config": {"Cmd": default_command(), "User": "jovyan",
                            "Labels": {built_image.INTERFACES_LABEL: "lab"}}}
        history = [{"CreatedBy": repo_copy(config), "Size": 47}]

        def get(name: str) -> Any:
            self.described.append(f"inspect {name}")
            return SimpleNamespace(
                attrs=attrs, history=lambda: self.described.append("history") or history)
        self.images = SimpleNamespace(get=get)

    def close(self) -> None:
        pass


@pytest.fixture
def farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One host's engine, registry and stores, each doing nothing but being counted."""
    config = Config(data_dir=str(tmp_path / "data"), limit_build_cgroup=False)
    engine = Engine(config)
    for module in (built_image, push):
        monkeypatch.setattr(module, "docker_client", lambda *args, **kwargs: engine)
    monkeypatch.setattr(build, "run_build", lambda *args: "sha256:built")
    monkeypatch.setattr(build, "watching", lambda *args: contextlib.nullcontext())
    monkeypatch.setattr(build.template_store, "find_template", lambda name: None)
    monkeypatch.setattr(push, "watching", lambda *args: contextlib.nullcontext())
    monkeypatch.setattr(push, "push_image", lambda *args, **kwargs: 2048)
    monkeypatch.setattr(push, "predecessor", lambda *args: None)
    monkeypatch.setattr(push.build_store, "set_running", lambda *args: None)
    started: list[str] = []
    monkeypatch.setattr(push, "verify_image", lambda config, image, *rest: started.append(image))
    monkeypatch.setattr(verification_reuse.verification_store, "find_verification",
                        lambda key: None)
    monkeypatch.setattr(verification_reuse.verification_store, "remember_verification",
                        lambda *args: None)
    templates: list[dict[str, Any]] = []
    monkeypatch.setattr(template.template_store, "save_template", templates.append)
    record = {"build_id": "b-1", "attempt": 1, "name": "first", "repository": "https://x/y",
              "ref": "main", "content_id": "c0ffee", "image_name": IMAGE, "buildpack": "pip",
              "binder_yml": {}}
    checkout = config.work_root / "b-1-1" / "repo"
    checkout.mkdir(parents=True)
    (checkout / "requirements.txt").write_text("numpy\n")
    return {"config": config, "engine": engine, "record": record, "started": started,
            "templates": templates}


def run(farm: dict[str, Any], phase: Any, state: Phase) -> None:
    """Run ``phase`` as the phase runner does: on the stored record, storing its changes."""
    guard = SimpleNamespace(reason=None, on_abort=lambda close: None,
                            raise_if_stopped=lambda: None)
    lines = SimpleNamespace(write=lambda line: None)
    result = phase.run(PhaseRun(farm["config"], dict(farm["record"]), guard, lines,  # type: ignore[arg-type]
                                state))
    farm["record"].update(result.changes)


def test_one_build_describes_its_image_once(farm: dict[str, Any]) -> None:
    run(farm, build, Phase.BUILDING)
    run(farm, push, Phase.PUSHING)
    run(farm, template, Phase.REGISTERING)
    assert farm["engine"].described == ["inspect sha256:built", "history"]
    assert farm["started"] == [IMAGE]
    [saved] = farm["templates"]
    assert (saved["command"], saved["interfaces"]) == (shlex.join(default_command(8888)),
                                                       ["lab"])


def test_phases_run_again_take_the_facts_from_the_record(farm: dict[str, Any]) -> None:
    """A push or template phase whose worker died runs again on the stored record."""
    run(farm, build, Phase.BUILDING)
    for _ in range(2):
        run(farm, push, Phase.PUSHING)
    for _ in range(2):
        run(farm, template, Phase.REGISTERING)
    assert farm["engine"].described == ["inspect sha256:built", "history"]
    assert len(farm["started"]) == 2 and len(farm["templates"]) == 2


def test_a_record_without_the_facts_has_them_read_again(farm: dict[str, Any]) -> None:
    """A build phase that ran before the record kept them left none."""
    run(farm, build, Phase.BUILDING)
    del farm["record"]["image_facts"]
    run(farm, push, Phase.PUSHING)
    assert farm["engine"].described == ["inspect sha256:built", "history", f"inspect {IMAGE}",
                                        "history"]
    assert farm["started"] == [IMAGE]


def test_without_verification_the_history_is_not_read(farm: dict[str, Any]) -> None:
    farm["config"] = farm["config"].replace(verify=False)
    run(farm, build, Phase.BUILDING)
    run(farm, push, Phase.PUSHING)
    run(farm, template, Phase.REGISTERING)
    assert farm["engine"].described == ["inspect sha256:built"]
    assert farm["record"]["image_facts"]["reuse_shape"] is None

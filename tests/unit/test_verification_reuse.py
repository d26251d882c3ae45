"""When a verification stands for a later image, and when the image must be started."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from common.config import Config
from common.errors import NoDatabase
from workers import built_image, verification_reuse
from workers.buildpacks.compose import default_command
from workers.phases import push
from workers.verification_reuse import EMPTY_LAYER, image_shape, inert_files, shaped_key

CONFIG = Config()
COMMAND = "jupyter lab"
ENVIRONMENT = ["sha256:base", "sha256:deps"]


def history(*created_by: str) -> list[dict[str, Any]]:
    """An engine's image history, newest first, as BuildKit writes it."""
    return [{"CreatedBy": text, "Size": 0 if text.startswith(("CMD", "WORKDIR")) else 47}
            for text in created_by]


BUILT = history('CMD ["jupyter" "lab"]', "WORKDIR /home/jovyan",
                "COPY repo/ /home/jovyan/ # buildkit", "RUN /bin/sh -c uv pip install")


def attrs(layers: list[str], **config: Any) -> dict[str, Any]:
    return {"RootFS": {"Layers": layers},
            "Config": {"Cmd": default_command(), "User": "jovyan", **config}}


def key(layers: list[str], steps: list[dict[str, Any]] = BUILT, config: Config = CONFIG,
        port: int = 8888, command: str = COMMAND, **image_config: Any) -> str | None:
    shape = image_shape(config, attrs(layers, **image_config), steps)
    return None if shape is None else shaped_key(config, shape, port, command)


def test_only_the_repository_layer_may_differ() -> None:
    first = key([*ENVIRONMENT, "sha256:code-1"])
    assert first is not None
    assert key([*ENVIRONMENT, "sha256:code-2"]) == first
    # the empty layers of the WORKDIRs after it
    assert key([*ENVIRONMENT, "sha256:code-3", EMPTY_LAYER, EMPTY_LAYER]) == first
    assert key(["sha256:base", "sha256:other-deps", "sha256:code-1"]) != first


@pytest.mark.parametrize("change", [
    {"port": 9000}, {"command": "voila"}, {"Env": ["PATH=/opt/bin"]}, {"User": "root"},
    {"Entrypoint": ["tini", "--", "/home/jovyan/start"]},
    {"config": Config(build_memory="1G")}, {"config": Config(verify_timeout=5)},
    {"config": Config(worker_id="host-b")},
])
def test_what_shapes_the_start_is_in_the_key(change: dict[str, Any]) -> None:
    layers = [*ENVIRONMENT, "sha256:code"]
    assert key(layers, **change) != key(layers)


@pytest.mark.parametrize("steps", [
    history("RUN /bin/sh -c bash /opt/binder/run-script postBuild",
            "COPY repo/ /home/jovyan/ # buildkit"),
    history("RUN /bin/sh -c chmod +x /home/jovyan/start", "COPY repo/ /home/jovyan/ # buildkit"),
    history("COPY repo/ /srv/elsewhere/ # buildkit"),
    history('CMD ["jupyter" "lab"]'),
    [],
])
def test_no_key_unless_the_newest_layer_is_the_repository(steps: list[dict[str, Any]]) -> None:
    assert key([*ENVIRONMENT, "sha256:last"], steps) is None


def test_the_repository_copy_is_recognised_with_its_flags() -> None:
    """The generated instruction carries ``--chown``; BuildKit's history leaves it out."""
    steps = history("COPY --chown=1000:1000 repo/ /home/jovyan/")
    assert key([*ENVIRONMENT, "sha256:code"], steps) is not None


def make(root: Path, *names: str) -> Path:
    for name in names:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True)
        else:
            path.write_text("x")
    return root


@pytest.mark.parametrize("names", [
    ("README.md", "analysis.ipynb", "requirements.txt"),
    (".git/", ".github/", ".gitignore", ".binder/", "binder/", "data/", ".binder.yml"),
])
def test_plain_repository_files_are_inert(tmp_path: Path, names: tuple[str, ...]) -> None:
    assert inert_files(make(tmp_path, *names)) is None


@pytest.mark.parametrize("name", [
    ".jupyter/", ".local/", ".local", ".config/", ".bashrc", ".ipython/",
    "jupyter_server_config.py", "jupyter_notebook_config.json", "Jupyter_lab_config.py",
    "start",
])
def test_files_read_at_start_are_not(tmp_path: Path, name: str) -> None:
    reason = inert_files(make(tmp_path, "README.md", name))
    assert reason == (f"the repository holds {name.rstrip('/')}, which may change how the "
                      "image starts")


# The push phase: a standing verification, or a start


class Phase(SimpleNamespace):
    def say(self, line: str) -> None:
        self.lines.append(line)


def phase(checkout: Path, **record: Any) -> Any:
    return Phase(record={"build_id": "b-2", "name": "second", **record}, config=CONFIG,
                 image="reg/second:tag", checkout=checkout, guard=None, lines=[])


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The engine's image (its repository layer newest) and what verification did."""
    image = SimpleNamespace(attrs=attrs([*ENVIRONMENT, "sha256:code"]), history=lambda: BUILT)
    monkeypatch.setattr(built_image, "docker_client", lambda config, timeout: SimpleNamespace(
        images=SimpleNamespace(get=lambda name: image)))
    done: list[tuple[str, ...]] = []
    monkeypatch.setattr(push, "verify_image",
                        lambda config, image, port, command, build_id, *rest:
                        done.append(("started", build_id)))
    monkeypatch.setattr(verification_reuse.verification_store, "remember_verification",
                        lambda key, build, image: done.append(("remembered", build)))
    return done


def test_a_standing_verification_skips_the_start(
        tmp_path: Path, engine: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification_reuse.verification_store, "find_verification",
                        lambda key: {"build": "first", "image": "reg/first:tag"})
    run = phase(make(tmp_path, "README.md"))
    push.verify(run)
    assert engine == []
    assert run.lines == ["verified: the image serves on port 8888, as the image of build first "
                         "did: it has the same layers but the repository's files, which cannot "
                         "change how it starts, and the same command"]


def test_without_one_the_image_starts_and_its_verification_is_recorded(
        tmp_path: Path, engine: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification_reuse.verification_store, "find_verification",
                        lambda key: None)
    push.verify(phase(make(tmp_path, "README.md")))
    assert engine == [("started", "b-2"), ("remembered", "second")]


def test_an_unreachable_store_means_a_start(
        tmp_path: Path, engine: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: Any) -> None:
        raise NoDatabase("The build database (MongoDB) cannot be reached.")
    monkeypatch.setattr(verification_reuse.verification_store, "find_verification", unreachable)
    monkeypatch.setattr(verification_reuse.verification_store, "remember_verification",
                        unreachable)
    push.verify(phase(make(tmp_path, "README.md")))
    assert engine == [("started", "b-2")]


@pytest.mark.parametrize(("files", "record", "config"), [
    (("README.md", ".jupyter/"), {}, CONFIG),
    (("README.md",), {"buildpack": "Dockerfile"}, CONFIG),
    (("README.md",), {}, Config(verify_reuse=False)),
])
def test_images_that_must_start_do_not_look_for_one(
        tmp_path: Path, engine: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch,
        files: tuple[str, ...], record: dict[str, Any], config: Config) -> None:
    def looked(key: str) -> None:
        raise AssertionError("looked for a standing verification")
    monkeypatch.setattr(verification_reuse.verification_store, "find_verification", looked)
    run = phase(make(tmp_path, *files), **record)
    run.config = config
    push.verify(run)
    assert engine == [("started", "b-2")]

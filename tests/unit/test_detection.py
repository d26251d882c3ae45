"""``workers/buildpacks`` ``detect()``: which config file decides the build."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from common.config import Config, load_config
from common.errors import BuildFailure
from workers.buildpacks import DEFAULT_BUILDPACK, BuildPack, check, detect, notices
from workers.buildpacks.conda import CondaBuildPack
from workers.buildpacks.default import DefaultBuildPack
from workers.buildpacks.dockerfile import DockerfileBuildPack
from workers.buildpacks.requirements import RequirementsBuildPack
from workers.config_files import cap_for

CONFIG = load_config(environ={})

ALL_CONFIG_FILES = ("requirements.txt", "environment.yml", "Dockerfile")


def checkout_with(tmp_path: Path, *files: str) -> Path:
    checkout = tmp_path / "checkout"
    checkout.mkdir(exist_ok=True)
    for name in files:
        path = checkout / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("FROM scratch\n" if path.name == "Dockerfile" else "\n")
    return checkout


def pack_and_path(checkout: Path,
                  config: Config = CONFIG) -> tuple[BuildPack, PurePosixPath | None]:
    detection = detect(checkout, config)
    return detection.buildpack, detection.config_path


def detected(checkout: Path, config: Config = CONFIG) -> tuple[str, str | None]:
    pack, path = pack_and_path(checkout, config)
    return pack.id, (str(path) if path is not None else None)


def test_default_precedence_is_requirements_environment_dockerfile(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, *ALL_CONFIG_FILES)
    pack, path = pack_and_path(checkout, CONFIG)
    assert isinstance(pack, RequirementsBuildPack)
    assert path == PurePosixPath("requirements.txt")
    (checkout / "requirements.txt").unlink()
    pack, path = pack_and_path(checkout, CONFIG)
    assert isinstance(pack, CondaBuildPack) and path == PurePosixPath("environment.yml")
    (checkout / "environment.yml").unlink()
    pack, path = pack_and_path(checkout, CONFIG)
    assert isinstance(pack, DockerfileBuildPack) and path == PurePosixPath("Dockerfile")


def test_order_comes_from_config(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, *ALL_CONFIG_FILES)
    config = load_config(environ={"BINDER_CONFIG_ORDER": "Dockerfile,requirements.txt"})
    assert detected(checkout, config) == ("Dockerfile", "Dockerfile")


def test_files_left_out_of_the_order_are_not_built(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "Dockerfile")
    config = CONFIG.replace(config_order=("requirements.txt",))
    pack, path = pack_and_path(checkout, config)
    assert pack is DEFAULT_BUILDPACK and path is None


def test_no_config_file_means_the_default_buildpack(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "README.md", "src/app.py")
    pack, path = pack_and_path(checkout, CONFIG)
    assert isinstance(pack, DefaultBuildPack)
    assert path is None


@pytest.mark.parametrize("folder", ["binder", ".binder"])
def test_binder_folder_is_where_config_files_are_looked_for(tmp_path: Path, folder: str) -> None:
    checkout = checkout_with(tmp_path, "requirements.txt", f"{folder}/environment.yml")
    assert detected(checkout) == ("environment.yml", f"{folder}/environment.yml")


def test_binder_wins_over_dot_binder_and_dot_binder_is_named_as_ignored(
        tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "binder/Dockerfile", ".binder/requirements.txt")
    assert detected(checkout) == ("Dockerfile", "binder/Dockerfile")
    ignored = [(str(path), reason) for path, reason in detect(checkout, CONFIG).ignored]
    assert ignored[0] == (".binder", "the files are read from binder/")


def test_one_config_folder_ignores_no_folder(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, ".binder/requirements.txt")
    assert detect(checkout, CONFIG).ignored == []


def test_empty_binder_folder_hides_root_config_files(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "requirements.txt")
    (checkout / "binder").mkdir()
    assert detected(checkout) == ("default", None)


@pytest.mark.parametrize("folder", ["binder", ".binder"])
def test_root_config_files_hidden_by_a_config_folder_are_named(tmp_path: Path,
                                                               folder: str) -> None:
    """As in repo2docker, only the folder's files count; the log says which were left."""
    checkout = checkout_with(tmp_path, "requirements.txt", "apt.txt", "setup.py", "README.md",
                             f"{folder}/postBuild")
    os.symlink("/nonexistent", checkout / "start")  # named, never followed
    detection = detect(checkout, CONFIG)
    assert [str(path) for path in detection.applied] == [f"{folder}/postBuild"]
    assert sorted((str(path), reason) for path, reason in detection.ignored) == [
        (name, f"the files are read from {folder}/")
        for name in ("apt.txt", "requirements.txt", "setup.py", "start")]


def test_binder_folder_that_is_a_link_is_ignored(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "requirements.txt", "elsewhere/Dockerfile")
    os.symlink("elsewhere", checkout / "binder")
    assert detected(checkout) == ("requirements.txt", "requirements.txt")
    assert [(str(path), reason) for path, reason in detect(checkout, CONFIG).ignored] == [
        ("binder", "it is a link, and a config folder must be a folder of the repository")]


def test_directory_named_like_a_config_file_is_skipped(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "requirements.txt/inner", "Dockerfile")
    assert detected(checkout) == ("Dockerfile", "Dockerfile")


def test_link_to_a_file_inside_the_checkout_is_accepted(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "deps/base.txt")
    os.symlink("deps/base.txt", checkout / "requirements.txt")
    assert detected(checkout) == ("requirements.txt", "requirements.txt")


@pytest.mark.parametrize("where", ["requirements.txt", "binder/requirements.txt"])
def test_link_leading_outside_the_checkout_is_refused(tmp_path: Path, where: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("numpy\n")
    checkout = checkout_with(tmp_path, "README.md")
    (checkout / where).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(secret, checkout / where)
    with pytest.raises(BuildFailure) as caught:
        detect(checkout, CONFIG)
    assert where in caught.value.message
    assert "outside" in caught.value.message


@pytest.mark.parametrize("target", [".git/config", "./.git/HEAD"])
def test_a_link_into_the_clones_git_folder_is_refused(tmp_path: Path, target: str) -> None:
    """.git never enters a build: a build file leading there would be copied into it."""
    checkout = checkout_with(tmp_path, ".git/config", ".git/HEAD")
    os.symlink(target, checkout / "requirements.txt")
    with pytest.raises(BuildFailure, match="^requirements.txt is a link that leads outside "
                                           "the repository"):
        detect(checkout, CONFIG)


def test_relative_link_climbing_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM evil\n")
    checkout = checkout_with(tmp_path, "README.md")
    os.symlink("../Dockerfile", checkout / "Dockerfile")
    with pytest.raises(BuildFailure):
        detect(checkout, CONFIG)


@pytest.mark.parametrize("target", ["missing.txt", ".", "deps"])
def test_a_link_to_no_file_of_the_repository_is_refused_saying_so(
        tmp_path: Path, target: str) -> None:
    """Not "outside the repository": the link stays inside, but leads to no file."""
    checkout = checkout_with(tmp_path, "deps/README.md")
    os.symlink(target, checkout / "requirements.txt")
    with pytest.raises(BuildFailure) as caught:
        detect(checkout, CONFIG)
    assert caught.value.message == ("requirements.txt is a link to nothing or to a folder, "
                                    "not to a file.")


@pytest.mark.parametrize("name", ["requirements.txt", "postBuild", "binder/start"])
def test_a_link_loop_is_refused_with_a_sentence(tmp_path: Path, name: str) -> None:
    # a repository's mistake, not the farm's: a BuildFailure naming the file
    checkout = checkout_with(tmp_path, "README.md")
    (checkout / name).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(PurePosixPath(name).name, checkout / name)
    with pytest.raises(BuildFailure) as caught:
        detect(checkout, CONFIG)
    assert caught.value.message.startswith(f"{name} is a link")


@pytest.mark.parametrize("name", ["requirements.txt", "apt.txt", "runtime.txt", "postBuild",
                                  "start", "Dockerfile", "pyproject.toml", "Pipfile",
                                  "DESCRIPTION", "binder/apt.txt"])
def test_a_config_file_over_the_cap_is_refused_unread(tmp_path: Path, name: str) -> None:
    """A comment line of a few MiB packs into a few KiB: every file detect reads is capped."""
    checkout = checkout_with(tmp_path, name)
    (checkout / name).write_text("# " + "x" * 2 * 1024 * 1024 + "\n")
    with pytest.raises(BuildFailure) as caught:
        detection = detect(checkout, CONFIG)  # the phase's reads, in its order
        check(detection, checkout, CONFIG)
        notices(detection, checkout, CONFIG)
        detection.buildpack.render(detection.inputs(checkout, CONFIG))
    assert caught.value.message == (f"{name} is 2.0 MiB; this farm reads config files of at "
                                    "most 1.0 MiB.")
    assert caught.value.suggestions == [cap_for(name).advice.format(name=name)]


def test_a_config_file_at_the_cap_is_read(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "apt.txt")
    cap = cap_for("apt.txt").max_bytes
    (checkout / "apt.txt").write_text("curl\n" + "#" * (cap - 6) + "\n")
    detection = detect(checkout, CONFIG)
    check(detection, checkout, CONFIG)
    assert "curl" in detection.buildpack.render(detection.inputs(checkout, CONFIG))


@pytest.mark.parametrize("network", ["none", "default"])
def test_an_add_of_a_url_is_refused_off_the_host_network(tmp_path: Path, network: str) -> None:
    """The engine downloads it itself, from the host's network, whatever the builds' is."""
    checkout = checkout_with(tmp_path)
    (checkout / "Dockerfile").write_text("FROM scratch\nADD http://169.254.169.254/x /x\n")
    config = CONFIG.replace(build_network=network)
    detection = detect(checkout, config)
    with pytest.raises(BuildFailure) as caught:
        check(detection, checkout, config)
    assert caught.value.message == (
        "The Dockerfile's ADD on line 2 downloads http://169.254.169.254/x; the Docker engine "
        f"would fetch it from its own network, not the builds' ({network}), so this farm does "
        "not allow it.")
    check(detection, checkout, CONFIG.replace(build_network="host"))  # where a step reaches too


def test_unknown_file_in_config_order_is_refused(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "requirements.txt")
    config = CONFIG.replace(config_order=("requirements.txt", "Cargo.toml"))
    with pytest.raises(BuildFailure) as caught:
        detect(checkout, config)
    assert "Cargo.toml" in caught.value.message
    assert "BINDER_CONFIG_ORDER" in caught.value.message
    assert "requirements.txt" in caught.value.suggestions[0]


@pytest.mark.parametrize("order", [("default",), ("repo2docker",),
                                   ("requirements.txt", "Dockerfile")])
def test_a_containerfile_builds_as_the_repositorys_dockerfile(tmp_path: Path,
                                                             order: tuple[str, ...]) -> None:
    """Podman's name for a Dockerfile: the Dockerfile buildpack builds it, in the Dockerfile's
    place of any order."""
    checkout = checkout_with(tmp_path, "binder/Containerfile")
    pack, path = pack_and_path(checkout, CONFIG.replace(config_order=order))
    assert isinstance(pack, DockerfileBuildPack) and pack.id == "Dockerfile"
    assert path == PurePosixPath("binder/Containerfile")


def test_a_dockerfile_wins_over_a_containerfile_which_is_named_as_ignored(
        tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "Dockerfile", "Containerfile")
    detection = detect(checkout, CONFIG)
    assert detection.config_path == PurePosixPath("Dockerfile")
    assert [(str(path), reason) for path, reason in detection.ignored] == [
        ("Containerfile", "the environment comes from Dockerfile")]


def test_a_containerfile_gets_the_dockerfiles_checks(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path)
    (checkout / "Containerfile").write_text("FROM scratch\nADD http://169.254.169.254/x /x\n")
    config = CONFIG.replace(build_network="none")
    with pytest.raises(BuildFailure) as caught:
        check(detect(checkout, config), checkout, config)
    assert caught.value.message.startswith(
        "The Containerfile's ADD on line 2 downloads http://169.254.169.254/x")


def test_a_containerfiles_refusals_name_the_containerfile(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path)
    config = CONFIG.replace(allowed_base_images=("debian:12",))
    (checkout / "Containerfile").write_text("FROM alpine:3\n")
    with pytest.raises(BuildFailure) as pulled:
        check(detect(checkout, config), checkout, config)
    assert pulled.value.message.startswith("The Containerfile's FROM on line 1 would pull")
    (checkout / "Containerfile").write_text("# syntax=example.org/frontend:1\nFROM debian:12\n")
    with pytest.raises(BuildFailure) as frontend:
        check(detect(checkout, config), checkout, config)
    assert frontend.value.message.startswith("The Containerfile's # syntax")


@pytest.mark.parametrize("folder", ["", "binder/"])
def test_a_requirements_file_the_environment_installs_is_not_named_as_ignored(
        tmp_path: Path, folder: str) -> None:
    """mybinder.org's common pair: environment.yml whose pip section reads requirements.txt
    (`-r requirements.txt`); the log may not say the file it installs is ignored."""
    checkout = checkout_with(tmp_path, f"{folder}requirements.txt", f"{folder}setup.py")
    (checkout / f"{folder}environment.yml").write_text(
        "dependencies:\n  - pip\n  - pip:\n    - -r requirements.txt\n")
    config = load_config(environ={"BINDER_CONFIG_ORDER": "repo2docker"})
    detection = detect(checkout, config)
    assert detection.config_path == PurePosixPath(f"{folder}environment.yml")
    assert [str(path) for path, _ in detection.ignored] == [f"{folder}setup.py"]


def test_an_environment_file_that_cannot_be_read_leaves_its_sentence_to_check(
        tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, "requirements.txt")
    (checkout / "environment.yml").write_text("dependencies: [\n")
    config = load_config(environ={"BINDER_CONFIG_ORDER": "repo2docker"})
    detection = detect(checkout, config)
    assert [str(path) for path, _ in detection.ignored] == ["requirements.txt"]
    with pytest.raises(BuildFailure, match="environment.yml"):
        check(detection, checkout, config)


@pytest.mark.parametrize("folder", ["binder", ".binder"])
@pytest.mark.parametrize(("files", "chosen", "left_out"), [
    # repo2docker installs setup.py and an R package (DESCRIPTION) only from the root of a
    # repository without a config folder: in the folder they are not environment files
    (("setup.py",), None, ["setup.py"]),
    (("setup.py", "requirements.txt"), "requirements.txt", ["setup.py"]),
    (("DESCRIPTION",), None, ["DESCRIPTION"]),
    (("DESCRIPTION", "requirements.txt"), "requirements.txt", ["DESCRIPTION"]),
])
def test_a_config_folder_makes_no_package(tmp_path: Path, folder: str, files: tuple[str, ...],
                                          chosen: str | None, left_out: list[str]) -> None:
    checkout = checkout_with(tmp_path, *(f"{folder}/{name}" for name in files))
    for order in ("default", "repo2docker"):
        detection = detect(checkout, load_config(environ={"BINDER_CONFIG_ORDER": order}))
        assert detection.config_path == (PurePosixPath(f"{folder}/{chosen}") if chosen else None)
        assert [(str(path), reason) for path, reason in detection.ignored] == [
            (f"{folder}/{name}", "repo2docker installs it only from the root of a repository "
                                 "without a binder/ or .binder/ folder")
            for name in left_out]

"""``workers/docker_context.write_context``: the Docker build context of a checkout."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

import pytest
from docker.utils.build import PatternMatcher, exclude_paths

from common.config import load_config
from common.errors import BuildFailure
from workers import dockerignore
from workers.buildpacks.base import BuildInputs, BuildPack
from workers.buildpacks.conda import CondaBuildPack
from workers.buildpacks.default import DefaultBuildPack
from workers.buildpacks.dockerfile import DockerfileBuildPack
from workers.buildpacks.requirements import RequirementsBuildPack
from workers.docker_context import repository_copy, write_context
from workers.dockerignore import check_ignore_files, kept_paths

CONFIG = load_config(environ={})


class ExtraFilesBuildPack(DefaultBuildPack):
    """A generated build that ships helper files."""

    def extra_files(self, inputs: BuildInputs) -> dict[str, bytes]:
        return {"install.sh": b"#!/bin/sh\necho hi\n", "env/lock.json": b"{}"}


def make_checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    (checkout / ".git" / "objects").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / "src").mkdir()
    (checkout / "src" / "app.py").write_text("print('hi')\n")
    (checkout / "README.md").write_text("# demo\n")
    (checkout / "notes.git").write_text("not a git dir\n")
    return checkout


def members(tar_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar_path) as tar:
        return {info.name: info for info in tar.getmembers()}


def read(tar_path: Path, name: str) -> bytes:
    with tarfile.open(tar_path) as tar:
        file = tar.extractfile(name)
        assert file is not None
        return file.read()


def build(tmp_path: Path, pack: BuildPack, checkout: Path, config_path: str | None,
          dockerfile: str = "FROM base\n") -> tuple[str, dict[str, tarfile.TarInfo], Path]:
    target = tmp_path / "context.tar"
    inputs = BuildInputs(checkout, PurePosixPath(config_path) if config_path else None, CONFIG)
    path = write_context(target, pack, inputs, dockerfile)
    return path, members(target), target


# generated Dockerfiles


def test_generated_context_puts_the_repository_under_repo(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path)
    path, names, target = build(tmp_path, DefaultBuildPack(), checkout, None, "FROM x\nRUN y\n")
    assert path == "Dockerfile"
    assert {"repo", "repo/src", "repo/src/app.py", "repo/README.md", "repo/notes.git",
            "Dockerfile"} <= set(names)
    assert read(target, "Dockerfile") == b"FROM x\nRUN y\n"
    assert read(target, "repo/src/app.py") == b"print('hi')\n"
    assert "src/app.py" not in names  # nothing of the repository at the root


def test_generated_context_leaves_out_git_metadata(tmp_path: Path) -> None:
    _, names, _ = build(tmp_path, DefaultBuildPack(), make_checkout(tmp_path), None)
    assert not [name for name in names if name == "repo/.git" or name.startswith("repo/.git/")]


def test_extra_files_go_under_binder_build(tmp_path: Path) -> None:
    _, names, target = build(tmp_path, ExtraFilesBuildPack(), make_checkout(tmp_path), None)
    assert read(target, ".binder-build/install.sh") == b"#!/bin/sh\necho hi\n"
    assert read(target, ".binder-build/env/lock.json") == b"{}"
    assert names[".binder-build/install.sh"].mode == 0o644


@pytest.mark.parametrize(("pack", "config_path", "prefix"), [
    (DefaultBuildPack(), None, "repo/"),  # a generated Dockerfile: the repository under repo/
    (DockerfileBuildPack(), "Dockerfile", ""),  # the repository's own context
])
def test_context_stores_links_as_links(tmp_path: Path, pack: BuildPack,
                                       config_path: str | None, prefix: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    outside_dir = tmp_path / "outside"
    outside_dir.mkdir()
    (outside_dir / "key").write_text("key\n")
    checkout = make_checkout(tmp_path)
    (checkout / "Dockerfile").write_text("FROM python:3.12\n")
    os.symlink(secret, checkout / "leak.txt")
    os.symlink(outside_dir, checkout / "leakdir")
    _, names, target = build(tmp_path, pack, checkout, config_path)
    assert names[f"{prefix}leak.txt"].issym()
    assert names[f"{prefix}leak.txt"].linkname == str(secret)
    assert names[f"{prefix}leakdir"].issym()
    assert f"{prefix}leakdir/key" not in names
    with tarfile.open(target) as tar:
        assert b"top secret" not in b"".join(
            f.read() for m in tar.getmembers() if m.isfile()
            for f in [tar.extractfile(m)] if f is not None)


def ignoring_checkout(tmp_path: Path, patterns: str) -> Path:
    checkout = make_checkout(tmp_path)
    (checkout / "big").mkdir()
    (checkout / "big" / "data.bin").write_bytes(b"0" * 10)
    (checkout / "big" / "keep.txt").write_text("keep\n")
    (checkout / "secret.txt").write_text("secret\n")
    (checkout / "table.csv").write_text("a,b\n")
    (checkout / "Dockerfile").write_text("FROM elsewhere\n")  # not the one being built
    (checkout / ".dockerignore").write_text(patterns)
    return checkout


def test_generated_context_honours_dockerignore(tmp_path: Path) -> None:
    checkout = ignoring_checkout(tmp_path, "secret.txt\n*.csv\nbig/\n!big/keep.txt\nDockerfile\n")
    _, names, target = build(tmp_path, DefaultBuildPack(), checkout, None)
    assert not {"repo/secret.txt", "repo/table.csv", "repo/big/data.bin",
                "repo/Dockerfile"} & set(names)
    assert {"repo", "repo/src/app.py", "repo/README.md", "repo/big", "repo/big/keep.txt",
            "repo/.dockerignore"} <= set(names)
    assert names["repo/big"].isdir()
    assert read(target, "Dockerfile") == b"FROM base\n"  # the generated one


def test_containerignore_applies_without_a_dockerignore(tmp_path: Path) -> None:
    checkout = ignoring_checkout(tmp_path, "")
    (checkout / ".dockerignore").unlink()
    (checkout / ".containerignore").write_text("secret.txt\n")
    _, names, _ = build(tmp_path, DefaultBuildPack(), checkout, None)
    assert "repo/secret.txt" not in names
    assert "repo/table.csv" in names


def test_ignored_build_files_are_copied_all_the_same(tmp_path: Path) -> None:
    checkout = ignoring_checkout(tmp_path, "binder\n*.txt\n")
    (checkout / "binder").mkdir()
    (checkout / "binder" / "requirements.txt").write_text("six\n")
    (checkout / "binder" / "postBuild").write_text("true\n")
    (checkout / "binder" / "notes.txt").write_text("notes\n")
    inputs = BuildInputs(checkout, PurePosixPath("binder/requirements.txt"), CONFIG,
                         {"postBuild": PurePosixPath("binder/postBuild")})
    heard: list[str] = []
    write_context(tmp_path / "context.tar", DefaultBuildPack(), inputs, "FROM base\n",
                  heard.append)
    names = members(tmp_path / "context.tar")
    assert {"repo/binder", "repo/binder/requirements.txt", "repo/binder/postBuild"} <= set(names)
    assert names["repo/binder"].isdir()
    assert "repo/binder/notes.txt" not in names and "repo/secret.txt" not in names
    assert heard == [f"the ignore file matches binder/{name}, which this build is made from: "
                     "it is copied all the same" for name in ("requirements.txt", "postBuild")]


def test_a_generated_build_refuses_an_ignore_file_link(tmp_path: Path) -> None:
    secret = tmp_path / "environ"
    secret.write_text("REDIS_PASSWORD=hunter2\n")
    checkout = make_checkout(tmp_path)
    os.symlink(secret, checkout / ".containerignore")
    with pytest.raises(BuildFailure, match="^.containerignore is a link"):
        build(tmp_path, DefaultBuildPack(), checkout, None)


# the repository's own Dockerfile


def test_own_context_is_the_repository_root_without_git(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path)
    (checkout / "Dockerfile").write_text("FROM python:3.12\n")
    path, names, _ = build(tmp_path, DockerfileBuildPack(), checkout, "Dockerfile")
    assert path == "Dockerfile"
    assert {"Dockerfile", "src", "src/app.py", "README.md", "notes.git"} <= set(names)
    assert not [name for name in names if name.split("/")[0] == ".git"]
    assert not [name for name in names if name.startswith("repo/")]


def test_own_context_honours_dockerignore(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path)
    (checkout / "Dockerfile").write_text("FROM python:3.12\n")
    (checkout / "data").mkdir()
    (checkout / "data" / "big.bin").write_bytes(b"0" * 10)
    (checkout / "data" / "keep.txt").write_text("keep\n")
    (checkout / ".dockerignore").write_text("# comment\n\ndata\n!data/keep.txt\n*.md\n")
    _, names, _ = build(tmp_path, DockerfileBuildPack(), checkout, "Dockerfile")
    assert "data/big.bin" not in names
    assert "data/keep.txt" in names
    assert "README.md" not in names
    assert {"Dockerfile", "src/app.py"} <= set(names)


def test_own_context_with_dockerfile_in_binder_folder(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path)
    (checkout / "binder").mkdir()
    (checkout / "binder" / "Dockerfile").write_text("FROM python:3.12\n")
    path, names, _ = build(tmp_path, DockerfileBuildPack(), checkout, "binder/Dockerfile")
    assert path == "binder/Dockerfile"
    assert "binder/Dockerfile" in names
    assert "src/app.py" in names


def test_dockerignore_cannot_drop_the_dockerfile_being_built(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path)
    (checkout / "binder").mkdir()
    (checkout / "binder" / "Dockerfile").write_text("FROM python:3.12\n")
    (checkout / ".dockerignore").write_text("binder\n")
    path, names, _ = build(tmp_path, DockerfileBuildPack(), checkout, "binder/Dockerfile")
    assert path in names


@pytest.mark.parametrize("ignore_file", [".dockerignore", "Dockerfile.dockerignore"])
def test_an_ignore_file_that_is_a_link_is_refused(tmp_path: Path, ignore_file: str) -> None:
    secret = tmp_path / "environ"
    secret.write_text("REDIS_PASSWORD=hunter2\n")
    checkout = make_checkout(tmp_path)
    (checkout / "Dockerfile").write_text("FROM python:3.12\n")
    os.symlink(secret, checkout / ignore_file)
    with pytest.raises(BuildFailure, match=f"^{ignore_file} is a link"):
        build(tmp_path, DockerfileBuildPack(), checkout, "Dockerfile")
    inputs = BuildInputs(checkout, PurePosixPath("Dockerfile"), CONFIG)
    with pytest.raises(BuildFailure, match=f"^{ignore_file} is a link"):
        DockerfileBuildPack().check(inputs)  # refused at detect, before any build


@pytest.mark.parametrize(("pack", "config_path"), [(DefaultBuildPack(), None),
                                                    (DockerfileBuildPack(), "Dockerfile")])
def test_a_pattern_that_cannot_be_matched_is_refused_by_its_line(
        tmp_path: Path, pack: BuildPack, config_path: str | None) -> None:
    checkout = ignoring_checkout(tmp_path, "# data\nbig/\n[z-a]*\n")
    (checkout / "Dockerfile").write_text("FROM python:3.12\n")
    message = r"^\.dockerignore line 3: `\[z-a\]\*` is not a pattern"
    with pytest.raises(BuildFailure, match=message):
        build(tmp_path, pack, checkout, config_path)
    inputs = BuildInputs(checkout, PurePosixPath(config_path) if config_path else None, CONFIG)
    with pytest.raises(BuildFailure, match=message):
        pack.check(inputs) if config_path else check_ignore_files(checkout)  # at detect


def test_a_pattern_longer_than_any_path_is_refused_by_its_line(tmp_path: Path) -> None:
    # Each of its steps is one more pass over every path the context's walk meets.
    checkout = ignoring_checkout(tmp_path, "big/\n" + "**/" * 2000 + "b\n")
    with pytest.raises(BuildFailure, match=r"^\.dockerignore line 2: a pattern of 6001 "
                                           r"characters; this farm matches patterns of at "
                                           r"most 4096") as caught:
        check_ignore_files(checkout)
    assert caught.value.suggestions


PATTERNS = ["secret.txt", "*.csv", "big/", "!big/keep.txt", "Dockerfile", "SRC", "**/*.py",
            "src/../README.md", "./notes.git", "big/*", "!big", "[a-c]*", "?EADME.md",
            "**", "!src/**", "nothing/*/deeper", "/src/app.py/", "big/data.bin/x"]


@pytest.mark.parametrize("count", range(1, len(PATTERNS) + 1))
def test_the_farms_matcher_keeps_what_dockers_keeps(tmp_path: Path, count: int) -> None:
    """Each pattern compiled once, the paths kept are docker's, pattern by pattern."""
    checkout = ignoring_checkout(tmp_path, "")
    (checkout / "Src").mkdir()
    (checkout / "Src" / "Upper.PY").write_text("x\n")
    for patterns in (PATTERNS[:count], PATTERNS[count - 1:count]):
        assert kept_paths(checkout, patterns) == set(PatternMatcher(patterns).walk(str(checkout)))
        assert kept_paths(checkout, patterns, keep="Dockerfile") == \
            exclude_paths(str(checkout), list(patterns), "Dockerfile")


@pytest.mark.parametrize(("pack", "config_path"), [(DefaultBuildPack(), None),
                                                    (DockerfileBuildPack(), "Dockerfile")])
def test_patterns_times_paths_past_the_bound_are_refused_at_detect(
        tmp_path: Path, pack: BuildPack, config_path: str | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Packing matches each pattern against each path: a long ignore file over a
    repository of many files would keep a worker busy for hours."""
    checkout = ignoring_checkout(tmp_path, "".join(f"data{i}/*.bin\n" for i in range(7)))
    for i in range(30):
        (checkout / "big" / f"part{i}").write_text("")
    inputs = BuildInputs(checkout, PurePosixPath(config_path) if config_path else None, CONFIG)
    monkeypatch.setattr(dockerignore, "MAX_MATCHES", 1000)
    pack.check(inputs) if config_path else check_ignore_files(checkout)
    monkeypatch.setattr(dockerignore, "MAX_MATCHES", 300)
    with pytest.raises(BuildFailure) as caught:
        pack.check(inputs) if config_path else check_ignore_files(checkout)
    assert caught.value.message == (
        ".dockerignore holds 7 patterns and the repository more than 30 files and folders: "
        "matching each pattern against each path is more work than this farm does for one "
        "build.")
    assert "rather than a line per file" in caught.value.suggestions[0]


def test_a_dockerignore_that_is_no_text_still_reads(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path)
    (checkout / "Dockerfile").write_text("FROM python:3.12\n")
    (checkout / ".dockerignore").write_bytes(b"\xff\xfe*.md\n")
    _, names, _ = build(tmp_path, DockerfileBuildPack(), checkout, "Dockerfile")
    assert "README.md" in names  # the pattern line is garbled, nothing crashed


def test_context_tar_opens_with_one_plain_header(tmp_path: Path) -> None:
    """The Docker client takes stdin for a tar only when its first 512 bytes parse
    as one complete header; a PAX record (fractional mtimes, long names) first
    would make it read the context as a Dockerfile."""
    checkout = make_checkout(tmp_path)
    deep = checkout / ("d" * 90) / ("e" * 90)
    deep.mkdir(parents=True)
    (deep / "data.txt").write_text("x")
    os.utime(checkout / "README.md", (1.5, 1.5))
    for pack, config_path in ((DockerfileBuildPack(), "Dockerfile"), (DefaultBuildPack(), None)):
        (checkout / "Dockerfile").write_text("FROM base\n")
        _, _, target = build(tmp_path, pack, checkout, config_path)
        first = tarfile.TarInfo.frombuf(target.read_bytes()[:512], "utf-8", "surrogateescape")
        assert first.type == tarfile.DIRTYPE and first.name in {".", "./"}


def test_own_dockerfile_is_written_as_rendered(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path)
    (checkout / "Dockerfile").write_text("FROM binder-root\nRUN true\n")
    inputs = BuildInputs(checkout, PurePosixPath("Dockerfile"), CONFIG)
    pack = DockerfileBuildPack()
    path = write_context(tmp_path / "context.tar", pack, inputs, pack.render(inputs))
    assert read(tmp_path / "context.tar", path) == \
        f"FROM {CONFIG.root_image_name}\nRUN true\n".encode()


def test_a_build_file_linking_into_an_ignored_folder_brings_what_it_leads_to(
        tmp_path: Path) -> None:
    """The farm read the link's target to check the build: the engine must get that file,
    not a link that leads nowhere in the context."""
    checkout = ignoring_checkout(tmp_path, "hidden/\n")
    (checkout / "hidden").mkdir()
    (checkout / "hidden" / "reqs.txt").write_text("six\n")
    (checkout / "hidden" / "other.txt").write_text("left out\n")
    os.symlink("hidden/reqs.txt", checkout / "requirements.txt")
    inputs = BuildInputs(checkout, PurePosixPath("requirements.txt"), CONFIG)
    heard: list[str] = []
    write_context(tmp_path / "context.tar", DefaultBuildPack(), inputs, "FROM base\n",
                  heard.append)
    names = members(tmp_path / "context.tar")
    assert names["repo/requirements.txt"].issym()
    assert names["repo/hidden"].isdir()
    assert read(tmp_path / "context.tar", "repo/hidden/reqs.txt") == b"six\n"
    assert "repo/hidden/other.txt" not in names
    assert heard == ["the ignore file matches hidden/reqs.txt, which this build is made "
                     "from: it is copied all the same"]


def test_each_link_a_build_file_leads_through_is_copied(tmp_path: Path) -> None:
    """The engine follows every link of the chain: each must be in the context."""
    checkout = ignoring_checkout(tmp_path, "hidden/\nsecret.txt\n")
    (checkout / "hidden" / "deeper").mkdir(parents=True)
    (checkout / "hidden" / "deeper" / "reqs.txt").write_text("six\n")
    os.symlink("deeper/reqs.txt", checkout / "hidden" / "hop.txt")
    os.symlink("../hidden/hop.txt", checkout / "src" / "hop.txt")
    os.symlink("src/hop.txt", checkout / "requirements.txt")
    inputs = BuildInputs(checkout, PurePosixPath("requirements.txt"), CONFIG)
    write_context(tmp_path / "context.tar", DefaultBuildPack(), inputs, "FROM base\n")
    names = members(tmp_path / "context.tar")
    assert names["repo/src/hop.txt"].issym() and names["repo/hidden/hop.txt"].issym()
    assert read(tmp_path / "context.tar", "repo/hidden/deeper/reqs.txt") == b"six\n"
    assert "repo/secret.txt" not in names


def test_requirements_files_pulled_in_from_an_ignored_folder_are_copied(
        tmp_path: Path) -> None:
    """pip opens ``-r`` files in the copied repository: the ones the farm checked."""
    checkout = ignoring_checkout(tmp_path, "hidden/\nmore.txt\n")
    (checkout / "hidden").mkdir()
    (checkout / "hidden" / "more.txt").write_text("-r extra.txt\n")
    (checkout / "hidden" / "extra.txt").write_text("six\n")
    (checkout / "hidden" / "other.txt").write_text("left out\n")
    os.symlink("hidden/more.txt", checkout / "more.txt")
    (checkout / "requirements.txt").write_text("-r more.txt\n-c hidden/extra.txt\n")
    inputs = BuildInputs(checkout, PurePosixPath("requirements.txt"), CONFIG)
    heard: list[str] = []
    write_context(tmp_path / "context.tar", RequirementsBuildPack(), inputs, "FROM base\n",
                  heard.append)
    names = members(tmp_path / "context.tar")
    assert names["repo/more.txt"].issym()
    assert read(tmp_path / "context.tar", "repo/hidden/extra.txt") == b"six\n"
    assert {"repo/hidden", "repo/hidden/more.txt"} <= set(names)
    assert "repo/hidden/other.txt" not in names
    assert [line.split()[4] for line in heard] == ["more.txt,", "hidden/more.txt,",
                                                   "hidden/extra.txt,"]


def test_files_an_environments_pip_entries_pull_in_are_copied_even_if_ignored(
        tmp_path: Path) -> None:
    checkout = ignoring_checkout(tmp_path, "hidden/\n")
    (checkout / "hidden").mkdir()
    (checkout / "hidden" / "reqs.txt").write_text("six\n")
    (checkout / "hidden" / "other.txt").write_text("left out\n")
    (checkout / "environment.yml").write_text(
        "dependencies:\n  - python=3.12\n  - pip\n  - pip:\n    - -r hidden/reqs.txt\n")
    inputs = BuildInputs(checkout, PurePosixPath("environment.yml"), CONFIG)
    # what the context holds of the repository (its extra files would solve the environment)
    copied, forced = repository_copy(CondaBuildPack(), inputs)
    assert forced == [PurePosixPath("hidden/reqs.txt")]
    assert {"hidden", "hidden/reqs.txt"} <= set(copied)
    assert "hidden/other.txt" not in copied


def test_an_own_dockerfile_linking_into_an_ignored_folder_is_sent_as_read(
        tmp_path: Path) -> None:
    """The engine gets the text the farm checked, as a file, wherever the link leads."""
    checkout = ignoring_checkout(tmp_path, "hidden/\n")
    (checkout / "Dockerfile").unlink()
    (checkout / "hidden").mkdir()
    (checkout / "hidden" / "Dockerfile").write_text("FROM binder-root\n")
    os.symlink("hidden/Dockerfile", checkout / "Dockerfile")
    inputs = BuildInputs(checkout, PurePosixPath("Dockerfile"), CONFIG)
    pack = DockerfileBuildPack()
    path = write_context(tmp_path / "context.tar", pack, inputs, pack.render(inputs))
    names = members(tmp_path / "context.tar")
    assert names[path].isfile() and "hidden/Dockerfile" not in names
    assert read(tmp_path / "context.tar", path) == f"FROM {CONFIG.root_image_name}\n".encode()

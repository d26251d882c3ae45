"""``workers/submodules.py``: submodules are named in the log, never fetched."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from common.config import load_config
from tests.support.git_server import GitServer
from workers.git import check_tree
from workers.providers import parse_spec, provider_for
from workers.providers.base import FetchLimits
from workers.submodules import report_submodules, submodule_notice

SUB_SHA = "1" * 40


def git(args: list[str], cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def repository_with_submodules(tmp_path: Path, paths: list[str]) -> tuple[Path, str]:
    """A commit holding ``paths`` as submodules (gitlinks) beside an ordinary file."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(["init", "-q"], repo)
    (repo / "README.md").write_text("hi\n")
    (repo / ".gitmodules").write_text("".join(
        f'[submodule "{path}"]\n\tpath = {path}\n\turl = https://git.example/{path}.git\n'
        for path in paths))
    git(["add", "README.md", ".gitmodules"], repo)
    for path in paths:
        git(["update-index", "--add", "--cacheinfo", f"160000,{SUB_SHA},{path}"], repo)
    git(["commit", "-q", "-m", "with submodules"], repo)
    return repo, git(["rev-parse", "HEAD"], repo)


def test_submodule_folders_are_read_from_the_tree(tmp_path: Path) -> None:
    repo, commit = repository_with_submodules(tmp_path, ["lib/dep", "vendor"])
    assert check_tree(repo, commit, 30, 10_000).submodules == ["lib/dep", "vendor"]


def test_the_log_names_the_empty_folders(tmp_path: Path) -> None:
    repo, commit = repository_with_submodules(tmp_path, ["vendor"])
    heard: list[str] = []
    report_submodules(check_tree(repo, commit, 30, 10_000).submodules, heard.append)
    assert heard == ["this farm does not fetch Git submodules: vendor is an empty folder "
                     "in the image"]


def test_a_repository_without_submodules_says_nothing(tmp_path: Path) -> None:
    repo, commit = repository_with_submodules(tmp_path, [])
    heard: list[str] = []
    report_submodules(check_tree(repo, commit, 30, 10_000).submodules, heard.append)
    assert heard == []


def test_a_fetch_lists_the_tree_once_for_its_limits_and_its_submodules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = GitServer(tmp_path / "served").start()
    try:
        server.make_repo("o/r", {"README.md": "hi\n"},
                         submodules={"vendor": "https://git.example/vendor.git"})
        config = load_config(environ={"BINDER_ALLOWED_SOURCE_HOSTS": server.host})
        spec = parse_spec(f"{server.url}/o/r", config)
        provider, limits = provider_for(spec, config), FetchLimits.from_config(config)
        resolved = provider.resolve(spec, limits)
        listings: list[list[str]] = []
        popen = subprocess.Popen.__init__

        def started(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
            if "ls-tree" in args:
                listings.append(list(args))
            popen(self, args, *rest, **kwargs)
        monkeypatch.setattr(subprocess.Popen, "__init__", started)
        heard: list[str] = []
        provider.fetch(resolved, tmp_path / "checkout", limits, heard.append)
    finally:
        server.stop()
    assert len(listings) == 1
    assert heard[-1] == ("this farm does not fetch Git submodules: vendor is an empty folder "
                         "in the image")


def test_the_notice_names_a_bounded_count() -> None:
    paths = [f"deps/m{i}" for i in range(8)] + ["x" * 200]
    notice = submodule_notice(paths)
    assert notice is not None
    assert notice.startswith("this farm does not fetch Git submodules: deps/m0, deps/m1, "
                             "deps/m2, deps/m3, deps/m4 and 4 more are empty folders")
    assert "m5" not in notice and "xxxx" not in notice

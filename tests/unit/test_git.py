"""``workers/git.py``: ref resolution and failure reasons, without running git."""

from __future__ import annotations

from pathlib import Path

import pytest

import workers.git as git
from common.errors import BuildFailure

SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_C = "c" * 40
SHA_D = "d" * 40
URL = "https://git.example/o/r.git"

LS_REMOTE = "\n".join([
    f"{SHA_A}\tHEAD",
    f"{SHA_A}\trefs/heads/main",
    f"{SHA_B}\trefs/heads/feature/x",
    f"{SHA_C}\trefs/tags/v1",
    f"{SHA_D}\trefs/tags/v1^{{}}",
    f"{SHA_B}\trefs/tags/light",
]) + "\n"


@pytest.fixture
def no_git(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> str:
        raise AssertionError("git must not run")

    monkeypatch.setattr(git, "run_git", refuse)
    monkeypatch.setattr(git.subprocess, "run", refuse)


@pytest.fixture
def ls_remote(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake(args: list[str], timeout: float, cwd: Path | None = None) -> str:
        calls.append(args)
        return LS_REMOTE

    monkeypatch.setattr(git, "run_git", fake)
    return calls


@pytest.mark.usefixtures("no_git")
def test_full_sha_is_returned_without_running_git() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert git.resolve_ref(URL, sha, timeout=1) == sha


def test_default_branch_is_head(ls_remote: list[list[str]]) -> None:
    assert git.resolve_ref(URL, None, timeout=5) == SHA_A
    assert ls_remote == [["ls-remote", "--", URL]]


@pytest.mark.parametrize(("ref", "sha"), [
    ("main", SHA_A),
    ("feature/x", SHA_B),
    ("v1", SHA_D),  # an annotated tag resolves to its commit, not the tag object
    ("light", SHA_B),
    ("refs/heads/main", SHA_A),
])
def test_named_refs(ls_remote: list[list[str]], ref: str, sha: str) -> None:
    assert git.resolve_ref(URL, ref, timeout=5) == sha


def test_unknown_ref(ls_remote: list[list[str]]) -> None:
    with pytest.raises(BuildFailure, match="No branch or tag named 'nope'"):
        git.resolve_ref(URL, "nope", timeout=5)


def test_short_sha_is_looked_up_not_trusted(ls_remote: list[list[str]]) -> None:
    with pytest.raises(BuildFailure):
        git.resolve_ref(URL, "aaaaaaa", timeout=5)
    assert ls_remote  # git was asked


def test_empty_repository_has_no_default_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(git, "run_git", lambda *a, **k: "")
    with pytest.raises(BuildFailure, match="no default branch"):
        git.resolve_ref(URL, None, timeout=5)


def test_unreadable_repository_gives_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> str:
        raise git.GitError("ls-remote", "remote: Repository not found.\n"
                                        "fatal: repository 'x' not found")

    monkeypatch.setattr(git, "run_git", fail)
    with pytest.raises(BuildFailure) as caught:
        git.resolve_ref(URL, "main", timeout=5)
    assert caught.value.message == \
        f"The repository {URL} could not be read: it does not exist."


@pytest.mark.parametrize(("stderr", "reason"), [
    ("fatal: repository 'https://x/o/r/' not found", "it does not exist"),
    ("fatal: unable to access 'x': The requested URL returned error: 404", "it does not exist"),
    ("ERROR: Project does not exist", "it does not exist"),
    ("fatal: unable to access 'x': Could not resolve host: nowhere.example",
     "its host cannot be reached"),
    ("fatal: unable to access 'x': Failed to connect to h port 1: Connection refused",
     "its host cannot be reached"),
    ("fatal: Authentication failed for 'x'", "it needs credentials"),
    ("fatal: could not read Username for 'x': terminal prompts disabled",
     "it needs credentials"),
    ("warning: something\nfatal: the remote end hung up unexpectedly\n",
     "fatal: the remote end hung up unexpectedly"),
    ("", "git failed"),
    ("   \n", "git failed"),
])
def test_reason(stderr: str, reason: str) -> None:
    assert git._reason(stderr) == reason


def test_git_error_keeps_the_last_line_and_all_of_stderr() -> None:
    error = git.GitError("fetch", "line one\nfatal: last words")
    assert error.message == "git fetch failed: fatal: last words"
    assert error.stderr == "line one\nfatal: last words"
    assert isinstance(error, BuildFailure)
    assert git.GitError("fetch", "").message == "git fetch failed: no output"


def test_git_environment_allows_only_http_protocols_and_no_prompt() -> None:
    env = git.git_env()
    assert env["GIT_ALLOW_PROTOCOL"] == "https:http"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"


def test_tree_size_counts_files_but_not_links(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "big").write_bytes(b"x" * (1024 * 1024))
    (tmp_path / "link").symlink_to(tmp_path / "sub" / "big")
    assert git.tree_size_mb(tmp_path) == pytest.approx(1.0)

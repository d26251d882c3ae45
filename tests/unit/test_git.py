"""``workers/git.py``: ref resolution and failure reasons, without running git."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

import workers.git as git
from common.addresses import CheckedTarget
from common.errors import BuildFailure, ConfigError

SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_C = "c" * 40
SHA_D = "d" * 40
URL = "https://git.example/o/r.git"
TARGET = CheckedTarget(URL, "https", "git.example", 443, ("93.184.216.34",), False)

LS_REMOTE = "\n".join([
    f"{SHA_A}\tHEAD",
    f"{SHA_A}\trefs/heads/main",
    f"{SHA_B}\trefs/heads/feature/x",
    f"{SHA_C}\trefs/tags/v1",
    f"{SHA_D}\trefs/tags/v1^{{}}",
    f"{SHA_B}\trefs/tags/light",
    f"{SHA_C}\trefs/pull/7/head",
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

    def fake(args: list[str], timeout: float, cwd: Path | None = None,
             **kwargs: object) -> str:
        calls.append(args)
        return LS_REMOTE

    monkeypatch.setattr(git, "run_git", fake)
    return calls


@pytest.mark.usefixtures("no_git")
def test_full_sha_is_returned_without_running_git() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert git.resolve_ref(TARGET, sha, timeout=1) == sha


def test_default_branch_is_head(ls_remote: list[list[str]]) -> None:
    assert git.resolve_ref(TARGET, None, timeout=5) == SHA_A
    assert ls_remote == [["ls-remote", "--", URL]]


@pytest.mark.parametrize(("ref", "sha"), [
    ("main", SHA_A),
    ("feature/x", SHA_B),
    ("v1", SHA_D),  # an annotated tag resolves to its commit, not the tag object
    ("light", SHA_B),
    ("refs/heads/main", SHA_A),
])
def test_named_refs(ls_remote: list[list[str]], ref: str, sha: str) -> None:
    assert git.resolve_ref(TARGET, ref, timeout=5) == sha
    # a branch or tag name lists only branches and tags, not every ref the host has
    assert ls_remote == [["ls-remote", "--heads", "--tags", "--", URL]]


@pytest.mark.parametrize(("ref", "sha"), [("HEAD", SHA_A), ("refs/pull/7/head", SHA_C)])
def test_refs_outside_branches_and_tags_get_the_full_listing(
        ls_remote: list[list[str]], ref: str, sha: str) -> None:
    assert git.resolve_ref(TARGET, ref, timeout=5) == sha
    assert ls_remote == [["ls-remote", "--", URL]]


def test_unknown_ref(ls_remote: list[list[str]]) -> None:
    with pytest.raises(BuildFailure, match="No branch or tag named 'nope'"):
        git.resolve_ref(TARGET, "nope", timeout=5)


def test_short_sha_is_looked_up_not_trusted(ls_remote: list[list[str]]) -> None:
    with pytest.raises(BuildFailure) as caught:
        git.resolve_ref(TARGET, "aacb5b1", timeout=5)
    assert ls_remote  # git was asked
    assert str(caught.value) == ("No branch or tag named 'aacb5b1' in the repository, and a "
                                 "commit must be given as its full 40-character SHA.")


def test_a_name_that_is_no_sha_is_only_an_unknown_ref(ls_remote: list[list[str]]) -> None:
    with pytest.raises(BuildFailure) as caught:
        git.resolve_ref(TARGET, "cafe", timeout=5)  # too short to be an abbreviation
    assert str(caught.value) == "No branch or tag named 'cafe' in the repository."


def test_empty_repository_has_no_default_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(git, "run_git", lambda *a, **k: "")
    with pytest.raises(BuildFailure, match="no default branch"):
        git.resolve_ref(TARGET, None, timeout=5)


def test_unreadable_repository_gives_a_fixed_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> str:
        raise git._failure("ls-remote", "remote: Repository not found.\n"
                                        "fatal: repository 'x' not found")

    monkeypatch.setattr(git, "run_git", fail)
    with pytest.raises(BuildFailure) as caught:
        git.resolve_ref(TARGET, "main", timeout=5)
    assert caught.value.message == "The repository does not exist or is not public."


UNREACHABLE = ("git ls-remote could not read the repository from its host (the host is "
               "unreachable, refused the connection, or is not a Git server).")


@pytest.mark.parametrize(("stderr", "sentence"), [
    ("fatal: repository 'https://x/o/r/' not found",
     "The repository does not exist or is not public."),
    ("fatal: unable to access 'x': The requested URL returned error: 404",
     "The repository does not exist or is not public."),
    ("fatal: Authentication failed for 'x'", "The repository does not exist or is not public."),
    ("fatal: could not read Username for 'x': terminal prompts disabled",
     "The repository does not exist or is not public."),
    ("fatal: unable to access 'x': The requested URL returned error: 302",
     "The repository's host answered with a redirect, which this farm does not follow."),
    # an open port and a closed one read alike
    ("fatal: unable to access 'x': Failed to connect to h port 1 after 0 ms: Couldn't connect "
     "to server", UNREACHABLE),
    ("fatal: unable to access 'x': Empty reply from server", UNREACHABLE),
    ("fatal: unable to access 'x': Recv failure: Connection reset by peer", UNREACHABLE),
    ("fatal: unable to access 'x': Could not resolve host: nowhere.example", UNREACHABLE),
    ("fatal: the remote end hung up unexpectedly", UNREACHABLE),
    ("", UNREACHABLE),
])
def test_failures_are_fixed_sentences(stderr: str, sentence: str) -> None:
    error = git._failure("ls-remote", stderr)
    assert error.message == sentence
    assert error.stderr == stderr  # kept for the worker's log only
    assert isinstance(error, BuildFailure)


def test_git_errors_pickle_with_their_details() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(git._failure("fetch", "fatal: x not found")))
    assert (error.message, error.stderr) == ("The repository does not exist or is not public.",
                                             "fatal: x not found")


def test_git_environment_allows_only_the_target_scheme_and_no_prompt() -> None:
    env = git.git_env(TARGET)
    assert env["GIT_ALLOW_PROTOCOL"] == "https"
    assert git.git_env(CheckedTarget("http://h/x", "http", "h", 80, ("10.0.0.1",), True))[
        "GIT_ALLOW_PROTOCOL"] == "http"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"


def test_git_never_follows_redirects_and_connects_to_the_checked_addresses() -> None:
    argv = git.git_argv(["ls-remote", "--", URL], TARGET)
    settings = [argv[i + 1] for i, word in enumerate(argv) if word == "-c"]
    assert "http.followRedirects=false" in settings
    assert "http.curloptResolve=git.example:443:93.184.216.34" in settings
    assert "credential.helper=" in settings
    assert argv[-3:] == ["ls-remote", "--", URL]


def _commit(repo: Path, files: dict[str, bytes]) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    for name, data in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=repo, check=True, env=env)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, env=env,
                          capture_output=True, text=True).stdout.strip()


def test_the_full_history_fetch_is_stopped_at_too_many_refs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that refuses the shallow fetch gets the full one, where each ref it
    advertises becomes a file (an inode and a block no byte limit counts)."""
    from tests.support.git_server import GitServer

    server = GitServer(tmp_path / "served").start()
    try:
        commit = server.make_repo("o/r", {"requirements.txt": "numpy\n"})["main"]
        refs = "".join(f"create refs/heads/copy-{i} {commit}\n" for i in range(300))
        subprocess.run(["git", "update-ref", "--stdin"], input=refs, text=True,
                       cwd=tmp_path / "served" / "o" / "r.git", check=True,
                       env={"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1",
                            "GIT_CONFIG_GLOBAL": "/dev/null"})
        real_run_git = git.run_git

        def refuse_shallow(args: list[str], *rest: object, **kwargs: object) -> str:
            if args[0] == "fetch" and "--depth" in args:
                raise git.GitError("git fetch could not read the repository.")
            return real_run_git(args, *rest, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(git, "run_git", refuse_shallow)
        monkeypatch.setattr(git, "MAX_GIT_ENTRIES", 200)
        target = CheckedTarget(f"{server.url}/o/r.git", "http", "127.0.0.1", server.port,
                               ("127.0.0.1",), True)
        with pytest.raises(BuildFailure, match="made more than 200 files"):
            git.fetch_commit(target, commit, tmp_path / "checkout", 60, 10 * 1024 * 1024,
                             lambda line: None)
        monkeypatch.setattr(git, "MAX_GIT_ENTRIES", 2000)
        git.fetch_commit(target, commit, tmp_path / "checkout", 60, 10 * 1024 * 1024,
                         lambda line: None)
    finally:
        server.stop()
    assert (tmp_path / "checkout" / "requirements.txt").read_text() == "numpy\n"


def test_a_fetch_runs_git_three_times_and_checks_out_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fetch, list the tree, check out: the empty repository the fetch goes into is
    laid out without a git process of its own, and every blob lands byte for byte."""
    from tests.support.git_server import GitServer

    server = GitServer(tmp_path / "served").start()
    try:
        commit = server.make_repo("o/r", {"requirements.txt": "numpy\n",
                                          "crlf.txt": b"a\r\nb\n"})["main"]
        real_run_git = git.run_git
        ran: list[str] = []

        def counted(args: list[str], *rest: object, **kwargs: object) -> str:
            ran.append(args[0])
            return real_run_git(args, *rest, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(git, "run_git", counted)
        target = CheckedTarget(f"{server.url}/o/r.git", "http", "127.0.0.1", server.port,
                               ("127.0.0.1",), True)
        tree = git.fetch_commit(target, commit, tmp_path / "checkout", 60, 10 * 1024 * 1024,
                                lambda line: None)
    finally:
        server.stop()
    assert ran == ["fetch", "ls-tree", "checkout"]
    assert (tmp_path / "checkout" / "requirements.txt").read_text() == "numpy\n"
    assert (tmp_path / "checkout" / "crlf.txt").read_bytes() == b"a\r\nb\n"
    assert tree.size == len("numpy\n") + len(b"a\r\nb\n")
    assert not (tmp_path / "checkout" / ".git" / "hooks").exists()


def test_tree_size_is_read_before_checkout(tmp_path: Path) -> None:
    commit = _commit(tmp_path, {"a/b.bin": b"x" * 3000, "c.txt": b"hello"})
    assert git.check_tree(tmp_path, commit, timeout=30, max_bytes=10_000).size == 3005
    with pytest.raises(BuildFailure, match="The repository is 3005 bytes, over this farm's "
                                           "limit of 3000 bytes; nothing was checked out."):
        git.check_tree(tmp_path, commit, timeout=30, max_bytes=3000)


def test_too_many_tree_entries_are_refused(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    commit = _commit(tmp_path, {f"d/f{i}": b"" for i in range(5)})
    monkeypatch.setattr(git, "MAX_TREE_ENTRIES", 5)  # five files and their folder
    with pytest.raises(BuildFailure, match="has 6 files and folders, over this farm's limit of 5"):
        git.check_tree(tmp_path, commit, timeout=30, max_bytes=10_000)


def test_output_is_capped_while_git_writes(tmp_path: Path) -> None:
    commit = _commit(tmp_path, {f"file-with-a-long-name-{i}": b"" for i in range(200)})
    with pytest.raises(git.SizeExceeded):
        git.run_git(["ls-tree", "-r", commit], 30, cwd=tmp_path,
                    limits=git.GitLimits(max_bytes=1000))


def test_directory_bytes_counts_a_link_as_itself_not_its_target(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "big").write_bytes(b"x" * (1024 * 1024))
    (tmp_path / "link").symlink_to(tmp_path / "sub" / "big")
    assert git.directory_bytes(tmp_path) == 1024 * 1024 + len(str(tmp_path / "sub" / "big"))


def test_git_is_answered_the_moment_it_exits_not_after_a_poll_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolve is one quick ls-remote: waiting out the watch interval after it exits
    would add that interval to every cache answer and every fetch step (the old loop
    slept it; this one waits on the process)."""
    commit = _commit(tmp_path, {"a.txt": b"a"})

    caller, slept = threading.current_thread(), time.sleep

    def no_sleep(seconds: float) -> None:
        # Other threads (a store client's housekeeping) may sleep as they like.
        if threading.current_thread() is caller:
            raise AssertionError(f"run_git slept {seconds} s instead of waiting for git")
        slept(seconds)

    monkeypatch.setattr(git.time, "sleep", no_sleep)
    monkeypatch.setattr(git, "WATCH_INTERVAL", 3600.0)
    assert git.run_git(["rev-parse", "HEAD"], 30, cwd=tmp_path).strip() == commit


@pytest.mark.parametrize("version", ["git version 2.37.0", "git version 2.39.5",
                                     "git version 2.45.1.windows.1", "git version 3.0.0"])
def test_a_git_that_pins_hosts_is_taken(version: str) -> None:
    git.check_git_version(version)


@pytest.mark.parametrize("version", ["git version 2.36.6", "git version 1.9.9", "", "garbage"])
def test_an_older_git_is_refused_saying_what_to_install(version: str) -> None:
    with pytest.raises(ConfigError, match="cannot be held to the addresses") as refused:
        git.check_git_version(version)
    assert refused.value.suggestions == ["Install git 2.37 or newer (Debian 12 has 2.39)."]


def test_this_machines_git_pins_hosts() -> None:
    git.check_git_version()  # the farm's processes refuse to start without it

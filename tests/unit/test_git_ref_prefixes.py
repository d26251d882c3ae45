"""A branch or tag name is resolved without the host sending every ref it has: a
repository with thousands of pull-request refs (as GitHub's are) answers a lookup of
``main`` with its branches and tags alone, over a real Git server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import workers.git as git
from common.addresses import CheckedTarget
from tests.support.git_server import GitServer

#: Pull-request refs the repository has beside its one branch and one tag.
PULL_REFS = 5000


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[tuple[GitServer, CheckedTarget, str]]:
    """A served repository with a branch, a tag and ``PULL_REFS`` pull refs, its commit."""
    server = GitServer(tmp_path / "served").start()
    try:
        commit = server.make_repo("o/r", {"README.md": "hello\n"})["main"]
        bare = tmp_path / "served" / "o" / "r.git"
        refs = sorted([f"refs/pull/{i}/head" for i in range(PULL_REFS)]
                      + ["refs/heads/main", "refs/tags/v1"])
        (bare / "refs" / "heads" / "main").unlink(missing_ok=True)
        (bare / "packed-refs").write_text(
            "# pack-refs with: peeled fully-peeled sorted \n"
            + "".join(f"{commit} {ref}\n" for ref in refs))
        yield (server, CheckedTarget(f"{server.url}/o/r.git", "http", "127.0.0.1",
                                     server.port, ("127.0.0.1",), True), commit)
    finally:
        server.stop()


def _bytes_sent(server: GitServer, target: CheckedTarget, ref: str | None) -> tuple[str, int]:
    before = server.answered_bytes
    commit = git.resolve_ref(target, ref, timeout=60)
    return commit, server.answered_bytes - before


def test_a_branch_or_tag_name_is_answered_without_the_pull_refs(
        busy: tuple[GitServer, CheckedTarget, str]) -> None:
    server, target, commit = busy
    full_commit, full = _bytes_sent(server, target, "refs/pull/4999/head")
    assert full_commit == commit
    for name in ("main", "v1", "refs/heads/main"):
        resolved, named = _bytes_sent(server, target, name)
        assert resolved == commit
        assert named * 20 < full, (name, named, full)


def test_the_default_branch_still_resolves(
        busy: tuple[GitServer, CheckedTarget, str]) -> None:
    server, target, commit = busy
    assert _bytes_sent(server, target, None)[0] == commit

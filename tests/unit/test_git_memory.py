"""Git's memory is bounded (``BINDER_GIT_MEMORY_MB``): a host that advertises more refs
than git may hold ends the resolve or fetch with a sentence naming the limit, instead of
growing the worker's git until the clone timeout."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

import workers.git as git
from common.addresses import CheckedTarget
from common.config import load_config
from common.errors import BuildFailure
from common.models import FailureCause
from tests.support.git_server import GitServer
from workers.git import SHA_RE
from workers.providers.base import FetchLimits

#: Enough refs that git needs several MiB to hold the list it is advertised.
MANY_REFS = 100_000
#: Too little for that list, enough for an ordinary repository's.
TIGHT = 16 * 1024 * 1024
#: Too little for git to start the threads of a fetch (their stacks count too).
TINY = 8 * 1024 * 1024
#: The bound by default.
DEFAULT = FetchLimits.from_config(load_config(environ={})).git_memory


@pytest.fixture
def crowded(tmp_path: Path) -> Iterator[tuple[CheckedTarget, str]]:
    """A repository on a loopback Git server with ``MANY_REFS`` branches, and its commit."""
    server = GitServer(tmp_path / "served").start()
    try:
        server.make_repo("o/plain", {"requirements.txt": "numpy\n"})
        commit = server.make_repo("o/r", {"requirements.txt": "numpy\n"})["main"]
        bare = tmp_path / "served" / "o" / "r.git"
        refs = sorted([f"refs/heads/copy-{i:06d}" for i in range(MANY_REFS)]
                      + ["refs/heads/main"])
        (bare / "refs" / "heads" / "main").unlink(missing_ok=True)
        (bare / "packed-refs").write_text(
            "# pack-refs with: peeled fully-peeled sorted \n"
            + "".join(f"{commit} {ref}\n" for ref in refs))
        yield (CheckedTarget(f"{server.url}/o/r.git", "http", "127.0.0.1", server.port,
                             ("127.0.0.1",), True), commit)
    finally:
        server.stop()


def test_the_bound_by_default_is_a_gibibyte() -> None:
    assert DEFAULT == 1024 * 1024 * 1024
    assert FetchLimits.from_config(
        load_config(environ={"BINDER_GIT_MEMORY_MB": "0"})).git_memory == 0


def test_a_ref_list_past_the_bound_stops_the_resolve_with_a_sentence(
        crowded: tuple[CheckedTarget, str]) -> None:
    target, commit = crowded
    plain = dataclasses.replace(target, url=target.url.replace("/o/r.git", "/o/plain.git"))
    assert SHA_RE.match(git.resolve_ref(plain, "main", timeout=60, max_memory=TIGHT))
    assert git.resolve_ref(target, "main", timeout=60, max_memory=DEFAULT) == commit
    with pytest.raises(git.MemoryExceeded) as raised:
        git.resolve_ref(target, "main", timeout=60, max_memory=TIGHT)
    assert raised.value.message == ("git ls-remote needed more memory than this farm's "
                                    "limit of 16 MiB and was stopped.")
    assert raised.value.cause is FailureCause.RESOURCES
    assert "out of memory" in raised.value.stderr.lower()  # git's words, for operators
    again = pickle.loads(pickle.dumps(raised.value))  # it crosses to the phase runner
    assert (type(again), again.message, again.cause) == (
        git.MemoryExceeded, raised.value.message, FailureCause.RESOURCES)


def test_a_fetch_past_the_bound_is_not_tried_again_in_full(
        crowded: tuple[CheckedTarget, str], tmp_path: Path) -> None:
    """A fetch that cannot even start its threads says so (not that the host is
    unreachable), and the full-history fetch, which would need more, is not tried."""
    target, commit = crowded
    said: list[str] = []
    with pytest.raises(BuildFailure, match="needed more memory than this farm's limit"):
        git.fetch_commit(target, commit, tmp_path / "checkout", 60, 10 * 1024 * 1024,
                         said.append, max_memory=TINY)
    assert said == []
    git.fetch_commit(target, commit, tmp_path / "checkout", 60, 10 * 1024 * 1024,
                     said.append, max_memory=DEFAULT)
    assert (tmp_path / "checkout" / "requirements.txt").read_text() == "numpy\n"

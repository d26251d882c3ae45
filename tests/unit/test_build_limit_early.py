"""The build limits are set once in the worker's main process, before its pool forks."""

from __future__ import annotations

import pytest

from common.config import load_config
from workers import build_cgroup, host_advert

CONFIG = load_config(environ={"BINDER_LIMIT_BUILD_CGROUP": "true",
                              "DOCKER_HOST": "unix:///run/early-test.sock"})


@pytest.fixture
def helper_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Each run of the helper container (its limits), with no limit set yet."""
    runs: list[tuple[int, int]] = []

    def set_limits(config: object, memory: int, pids: int) -> str:
        runs.append((memory, pids))
        return "/memory/docker/buildkit"

    monkeypatch.setattr(build_cgroup, "_set_limits", set_limits)
    monkeypatch.setattr(build_cgroup, "_done", {})
    return runs


def test_a_build_after_the_early_limit_runs_no_helper(helper_runs: list[tuple[int, int]]) -> None:
    host_advert.limit_builds_early(CONFIG)
    assert helper_runs == [(4 * 1024**3, 4096)]
    assert build_cgroup.limit_builds(CONFIG) == "/memory/docker/buildkit"
    assert helper_runs == [(4 * 1024**3, 4096)]


def test_nothing_is_limited_early_when_the_farm_does_not_limit_builds(
        helper_runs: list[tuple[int, int]]) -> None:
    host_advert.limit_builds_early(CONFIG.replace(limit_build_cgroup=False))
    assert helper_runs == []


def test_a_limit_that_fails_early_is_tried_again_by_the_build(
        helper_runs: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(config: object, memory: int, pids: int) -> str:
        raise build_cgroup.LimitNotSet("the engine refused the cgroup helper")

    monkeypatch.setattr(build_cgroup, "_set_limits", refuse)
    host_advert.limit_builds_early(CONFIG)  # logs, does not raise
    with pytest.raises(build_cgroup.LimitNotSet):
        build_cgroup.limit_builds(CONFIG)

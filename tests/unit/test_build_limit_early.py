"""The build memory limit is set once in the worker's main process, before its pool forks."""

from __future__ import annotations

import pytest

from common.config import load_config
from workers import build_cgroup, host_advert

CONFIG = load_config(environ={"BINDER_LIMIT_BUILD_CGROUP": "true",
                              "DOCKER_HOST": "unix:///run/early-test.sock"})


@pytest.fixture
def helper_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each run of the helper container (its limit), with no limit set yet."""
    runs: list[int] = []

    def set_limit(config: object, limit: int) -> str:
        runs.append(limit)
        return "/memory/docker/buildkit"

    monkeypatch.setattr(build_cgroup, "_set_limit", set_limit)
    monkeypatch.setattr(build_cgroup, "_done", {})
    return runs


def test_a_build_after_the_early_limit_runs_no_helper(helper_runs: list[int]) -> None:
    host_advert.limit_build_memory_early(CONFIG)
    assert helper_runs == [4 * 1024**3]
    assert build_cgroup.limit_build_memory(CONFIG) == "/memory/docker/buildkit"
    assert helper_runs == [4 * 1024**3]


def test_nothing_is_limited_early_when_the_farm_does_not_limit_builds(
        helper_runs: list[int]) -> None:
    host_advert.limit_build_memory_early(CONFIG.replace(limit_build_cgroup=False))
    assert helper_runs == []


def test_a_limit_that_fails_early_is_tried_again_by_the_build(
        helper_runs: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(config: object, limit: int) -> str:
        raise build_cgroup.LimitNotSet("the engine refused the cgroup helper")

    monkeypatch.setattr(build_cgroup, "_set_limit", refuse)
    host_advert.limit_build_memory_early(CONFIG)  # logs, does not raise
    with pytest.raises(build_cgroup.LimitNotSet):
        build_cgroup.limit_build_memory(CONFIG)

"""Starts: the ban list and the per-key and per-repository rate limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from limits.storage import MemoryStorage

from api.admission import BanList, StartLimits
from api.keys import parse_entry
from common.config import load_config
from common.errors import ConfigError, RateLimited, RepositoryBanned

LAUNCHER = parse_entry("launcher:build:k1", "test")
OTHER = parse_entry("other:build:k2", "test")
ADMIN = parse_entry("ops:admin:k3", "test")
REPO = "https://github.com/owner/repo"


def limits(tmp_path: Path, per_key: str = "", per_repo: str = "",
           storage: MemoryStorage | None = None) -> StartLimits:
    config = load_config(environ={"BINDER_DATA_DIR": str(tmp_path),
                                  "BINDER_START_RATE_PER_KEY": per_key,
                                  "BINDER_START_RATE_PER_REPO": per_repo})
    return StartLimits(config, storage or MemoryStorage())


def test_banned_patterns_find_the_repository_or_its_ref() -> None:
    bans = BanList((r"github\.com/evil/", r"/tree/do-not-build$"))
    with pytest.raises(RepositoryBanned) as caught:
        bans.check("https://GitHub.com/Evil/thing")
    assert caught.value.message == ("Building https://GitHub.com/Evil/thing is not allowed on "
                                    "this farm: its operators banned it.")
    assert caught.value.status == 403
    with pytest.raises(RepositoryBanned):
        bans.check(REPO, "do-not-build")
    bans.check(REPO)
    bans.check(REPO, "main")
    BanList(()).check("https://github.com/evil/thing")


def test_a_bad_ban_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a regular expression"):
        BanList(("([unclosed",))


def test_per_key_limit_answers_with_the_seconds_to_wait(tmp_path: Path) -> None:
    starts = limits(tmp_path, per_key="2/minute")
    starts.admit(LAUNCHER, REPO)
    starts.admit(LAUNCHER, "https://github.com/owner/other")
    with pytest.raises(RateLimited) as caught:
        starts.admit(LAUNCHER, "https://github.com/owner/third")
    assert caught.value.status == 429
    assert 1 <= caught.value.retry_after <= 60
    assert "for the key 'launcher': at most 2 per minute" in caught.value.message
    starts.admit(OTHER, REPO)  # each key counts alone


def test_per_repository_limit_counts_every_key(tmp_path: Path) -> None:
    starts = limits(tmp_path, per_repo="3/hour")
    starts.admit(LAUNCHER, REPO)
    starts.admit(OTHER, REPO)
    starts.admit(LAUNCHER, REPO)
    with pytest.raises(RateLimited) as caught:
        starts.admit(OTHER, REPO)
    assert f"for {REPO}: at most 3 per hour" in caught.value.message
    assert caught.value.retry_after > 60
    starts.admit(OTHER, "https://github.com/owner/other")


def test_a_refused_start_uses_no_quota(tmp_path: Path) -> None:
    storage = MemoryStorage()
    starts = limits(tmp_path, per_key="2/minute", per_repo="1/minute", storage=storage)
    starts.admit(LAUNCHER, REPO)
    with pytest.raises(RateLimited):
        starts.admit(LAUNCHER, REPO)  # the repository's limit; the key's is not spent
    starts.admit(LAUNCHER, "https://github.com/owner/other")


def test_admin_keys_are_not_limited(tmp_path: Path) -> None:
    starts = limits(tmp_path, per_key="1/minute", per_repo="1/minute")
    for _ in range(5):
        starts.admit(ADMIN, REPO)


def test_no_limit_when_empty(tmp_path: Path) -> None:
    starts = limits(tmp_path)
    for _ in range(50):
        starts.admit(LAUNCHER, REPO)


def test_an_unreachable_redis_admits_the_start(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(environ={"BINDER_DATA_DIR": str(tmp_path),
                                  "REDIS_URL": "redis://127.0.0.1:9/0",
                                  "BINDER_START_RATE_PER_KEY": "1/minute"})
    starts = StartLimits(config)
    starts.admit(LAUNCHER, REPO)
    starts.admit(LAUNCHER, REPO)
    assert "start rate limits not applied" in caplog.text

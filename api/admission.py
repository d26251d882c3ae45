"""Whether a start is admitted: the ban list, then the rate limits.

Checked once the request is valid and its repository parsed, before the
build record is written, so a refused start leaves nothing behind.

- ``BINDER_BANNED_REPOS``: regular expressions (like BinderHub's
  ``banned_specs``), searched case-insensitively in the normalised
  repository URL and in ``URL/tree/REF`` when the start names a ref.
- ``BINDER_START_RATE_PER_KEY`` and ``BINDER_START_RATE_PER_REPO``: moving
  windows counted in Redis under the farm's broker prefix, so every API
  process shares them. Admin keys are not limited. When Redis cannot be
  reached the limits are not applied (and the log says so): the record is
  written first and the reaper enqueues it once the broker is back, so a
  start is never refused for that.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass

from limits import RateLimitItem
from limits.storage import RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from api.keys import ApiKey, Scope
from common.config import Config
from common.errors import ConfigError, RateLimited, RepositoryBanned
from common.rates import parse_rate

log = logging.getLogger(__name__)

#: Where ``create_app`` keeps the app's ``Admission``.
ADMISSION_EXTENSION = "binder_admission"


class BanList:
    """The repositories this farm refuses to build."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = []
        for pattern in patterns:
            try:
                self.patterns.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise ConfigError(f"BINDER_BANNED_REPOS: {pattern[:80]!r} is not a regular "
                                  f"expression: {exc}",
                                  suggestions=["Fix or remove the pattern."]) from exc

    def check(self, repository: str, ref: str | None = None) -> None:
        """Raise ``RepositoryBanned`` when a pattern finds ``repository`` (or its ref)."""
        targets = [repository] + ([f"{repository}/tree/{ref}"] if ref else [])
        if any(pattern.search(target) for pattern in self.patterns for target in targets):
            raise RepositoryBanned(
                f"Building {repository} is not allowed on this farm: its operators banned it.",
                suggestions=["Ask the farm's operators if you think this is a mistake."])


@dataclass(frozen=True)
class _Window:
    limit: RateLimitItem
    kind: str
    identifier: str
    what: str


class StartLimits:
    """Per-key and per-repository limits on starts (see the module docstring)."""

    def __init__(self, config: Config, storage: Storage | None = None) -> None:
        self.per_key = parse_rate(config.start_rate_per_key)
        self.per_repo = parse_rate(config.start_rate_per_repo)
        if storage is None and (self.per_key or self.per_repo):
            storage = RedisStorage(config.redis_url,
                                   key_prefix=f"{config.broker_prefix}binder-start-limits",
                                   socket_timeout=1, socket_connect_timeout=1)
        self.limiter = MovingWindowRateLimiter(storage) if storage is not None else None

    def _windows(self, key: ApiKey, repository: str) -> list[_Window]:
        if key.allows(Scope.ADMIN) or self.limiter is None:
            return []
        windows = []
        if self.per_key is not None:
            windows.append(_Window(self.per_key, "key", key.name, f"the key {key.name!r}"))
        if self.per_repo is not None:
            repo_id = hashlib.sha256(repository.encode()).hexdigest()[:32]
            windows.append(_Window(self.per_repo, "repo", repo_id, repository))
        return windows

    def admit(self, key: ApiKey, repository: str) -> None:
        """Count a start of ``repository`` by ``key``, or raise ``RateLimited``."""
        windows = self._windows(key, repository)
        if not windows or self.limiter is None:
            return
        try:
            for window in windows:
                if not self.limiter.test(window.limit, window.kind, window.identifier):
                    stats = self.limiter.get_window_stats(window.limit, window.kind,
                                                          window.identifier)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
                    raise RateLimited(
                        f"Too many builds started for {window.what}: at most "
                        f"{window.limit.amount} per {_period(window.limit)}. Try again in "
                        f"{wait} s.",
                        suggestions=["Wait for the Retry-After seconds, then start again."],
                        retry_after=wait)
            for window in windows:
                self.limiter.hit(window.limit, window.kind, window.identifier)
        except RateLimited:
            raise
        except Exception as exc:  # Redis unreachable: never refuse a start for that
            log.warning("start rate limits not applied (%s: %s)", type(exc).__name__, exc)


def _period(limit: RateLimitItem) -> str:
    multiples = "" if limit.multiples == 1 else f"{limit.multiples} "
    return f"{multiples}{limit.GRANULARITY.name}" + ("" if limit.multiples == 1 else "s")


class Admission:
    """What ``POST /builds/`` asks before it writes a build: the ban list, then the limits."""

    def __init__(self, config: Config, storage: Storage | None = None) -> None:
        self.bans = BanList(config.banned_repos)
        self.limits = StartLimits(config, storage)

    def admit(self, key: ApiKey, repository: str, ref: str | None) -> None:
        """Raise ``RepositoryBanned`` or ``RateLimited``, or count the start."""
        self.bans.check(repository, ref)
        self.limits.admit(key, repository)

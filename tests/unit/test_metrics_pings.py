"""How long the store and the broker took to answer a scrape: slow is seen before down."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

import api.metrics
from common.errors import NoDatabase
from tests.unit.test_metrics import ScrapedStore, exposed, fake_farm

SLOW = 0.05


def slow(then: Any = None) -> Any:
    """A ping that takes ``SLOW`` seconds, then raises ``then`` (if any)."""
    def ping(*_: Any) -> bool:
        time.sleep(SLOW)
        if then is not None:
            raise then
        return True
    return ping


def test_a_slow_store_and_broker_show_how_long_they_took(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    collector = fake_farm(monkeypatch, tmp_path, ScrapedStore())
    quick = exposed(collector)
    assert (quick[("binder_store_up", ())], quick[("binder_broker_up", ())]) == (1, 1)
    assert 0 <= quick[("binder_store_ping_seconds", ())] < SLOW
    assert 0 <= quick[("binder_broker_ping_seconds", ())] < SLOW

    monkeypatch.setattr(api.metrics, "ping", slow())
    broker = api.metrics.redis_client(collector.config)
    monkeypatch.setattr(broker, "ping", slow())
    slowed = exposed(collector)
    # Still answering, so still up, but each took its time, and the scrape says so.
    assert (slowed[("binder_store_up", ())], slowed[("binder_broker_up", ())]) == (1, 1)
    assert slowed[("binder_store_ping_seconds", ())] >= SLOW
    assert slowed[("binder_broker_ping_seconds", ())] >= SLOW
    assert slowed[("binder_queue_messages", (("queue", "builds"),))] == 0


def test_a_store_and_broker_that_do_not_answer_show_the_time_until_they_failed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    collector = fake_farm(monkeypatch, tmp_path, ScrapedStore())

    def unread(config: Any) -> Any:
        raise AssertionError("the builds are not read from a store that did not answer")
    monkeypatch.setattr(api.metrics, "get_db", unread)
    monkeypatch.setattr(api.metrics, "ping", slow(NoDatabase("no answer")))
    broker = api.metrics.redis_client(collector.config)
    monkeypatch.setattr(broker, "ping", slow(redis.ConnectionError("refused")))
    down = exposed(collector)
    assert (down[("binder_store_up", ())], down[("binder_broker_up", ())]) == (0, 0)
    assert down[("binder_store_ping_seconds", ())] >= SLOW
    assert down[("binder_broker_ping_seconds", ())] >= SLOW
    assert not [key for key in down if key[0] in ("binder_templates", "binder_queue_messages")]

"""The API sends a build's first step on a broker connection it keeps
(``workers/dispatch.py``): a broker that restarted or froze between two starts costs
the start after it nothing, and a send that failed leaves no broken connection behind.
Against a Redis of this module's own on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from common.models import STEPS
from tests.support.services import RedisInstance
from workers import dispatch

RECORD = {"build_id": "b1", "attempt": 1, "name": "o-r"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisInstance]:
    server = RedisInstance(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def queued(broker: RedisInstance) -> int:
    return int(redis.Redis.from_url(broker.url).llen("builds"))


def test_a_send_after_the_broker_restarted_is_taken(broker: RedisInstance) -> None:
    app = Celery(broker=broker.url)
    dispatch._send(app, STEPS[0], RECORD, "builds")
    broker.restart()  # the kept connection's socket is gone
    dispatch._send(app, STEPS[0], RECORD, "builds")
    assert queued(broker) == 1  # the first went with the broker's memory


def test_a_send_to_a_frozen_broker_fails_and_the_next_one_is_taken(
        broker: RedisInstance) -> None:
    app = Celery(broker=broker.url)
    dispatch._send(app, STEPS[0], RECORD, "builds")
    with broker.frozen(), pytest.raises((OperationalError, redis.RedisError, OSError)):
        dispatch._send(app, STEPS[0], RECORD, "builds")
    dispatch._send(app, STEPS[0], RECORD, "builds")
    assert queued(broker) >= 2

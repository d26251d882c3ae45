"""A pool's threads are made on first use, once per process."""

from __future__ import annotations

import os
import threading

import pytest

from common.lazy_pool import LazyPool


def test_no_thread_until_the_first_task_then_one_pool_for_every_task() -> None:
    pool = LazyPool(2, "lazy-test")
    assert not any(thread.name.startswith("lazy-test") for thread in threading.enumerate())
    names = {pool.submit(lambda: threading.current_thread().name).result(5) for _ in range(20)}
    assert names and all(name.startswith("lazy-test") for name in names)
    assert len(names) <= 2
    assert pool.submit(sum, [1, 2], start=3).result(5) == 6


def test_a_forked_process_makes_its_own_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = LazyPool(1, "lazy-fork")
    parent = pool.submit(lambda: threading.get_ident()).result(5)
    # As seen in a child: the same object under another pid (the parent's threads are gone).
    monkeypatch.setattr(os, "getpid", lambda: -1)
    child = pool.submit(lambda: threading.get_ident()).result(5)
    assert child != parent
    assert pool.submit(lambda: threading.get_ident()).result(5) == child

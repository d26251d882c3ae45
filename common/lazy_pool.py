"""A thread pool made on first use, in the process that uses it.

The API's and the workers' modules are imported before gunicorn and Celery
fork their processes, and a pool's threads do not survive a fork: a pool
made at import would take work in a child and never run it. A ``LazyPool``
makes its threads when work first comes, and again in a process forked
after that.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class LazyPool:
    """``workers`` threads named ``name-N``, made when the first task is submitted."""

    def __init__(self, workers: int, name: str) -> None:
        self.workers = workers
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def submit(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        return self._pool().submit(function, *args, **kwargs)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
                self._pid = os.getpid()
            return self._executor

"""A redelivered phase may take over only from a dead process of its own worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from common.config import load_config
from workers.liveness import died_here, node_name

CONFIG = load_config(environ={"BINDER_WORKER_ID": "host-a"})
NODE = node_name(CONFIG)


def test_a_live_process_of_this_worker_has_not_died() -> None:
    assert not died_here(f"{NODE}:{os.getpid()}", CONFIG)


def test_an_exited_process_of_this_worker_died_reaped_or_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while not died_here(f"{NODE}:{child.pid}", CONFIG):  # a zombie until waited for
        assert time.monotonic() < deadline, "an exited child never counted as dead"
        time.sleep(0.05)
    child.wait()
    assert died_here(f"{NODE}:{child.pid}", CONFIG)


def test_processes_of_other_workers_or_machines_are_never_judged() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not died_here(f"host-b@{NODE.partition('@')[2]}:{child.pid}", CONFIG)
    assert not died_here(f"host-a@elsewhere:{child.pid}", CONFIG)
    assert not died_here("not a worker name", CONFIG)


def test_a_build_given_up_is_written_at_once_one_that_ended_with_the_next_write() -> None:
    """The reaper restarts a build its live worker let go at once (the record says so);
    an ended build is judged by nobody, so its release waits for the next write."""
    from workers.liveness import Heartbeat
    beat = Heartbeat(CONFIG)  # not started: the test reads when it would write
    beat.hold("given-up")
    beat.hold("ended")
    assert beat._wake.is_set()
    beat._wake.clear()
    beat.ended("ended")
    beat.release("ended")  # the phase's hold ends after it
    assert not beat._wake.is_set()
    assert beat.held() == ["given-up"]
    beat.release("given-up")
    assert beat._wake.is_set()
    assert beat.held() == []

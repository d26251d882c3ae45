"""A farm of one worker on a broker of its own, and no beat, for tests that kill its processes.

What brings a phase back after its pool process dies is then the broker's
redelivery alone (no reaper restarts the build).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo

from tests.support.farm import ApiClient, Farm, Process
from tests.support.service_clients import mongo_client
from tests.support.services import RedisInstance


@dataclass
class OneWorkerFarm:
    api: ApiClient
    worker: Process
    db: pymongo.database.Database[dict[str, Any]]

    def record(self, name: str) -> dict[str, Any]:
        record = self.db.builds.find_one({"name": name})
        assert record is not None
        return record

    def deliveries(self, name: str, phase: str = "building") -> int:
        """How many times ``phase`` of the current attempt of ``name`` was claimed."""
        record = self.record(name)
        return int(((record.get("deliveries") or {}).get(str(record["attempt"])) or {})
                   .get(phase, 0))

    def wait_delivery(self, name: str, count: int, log_text: str,
                      timeout: float = 120) -> None:
        """Until the build phase of ``name`` runs its ``count``-th time and that run
        logged ``log_text`` (so what it logged before is kept when it is killed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.api.logs(name).split("== building on ")[1:]
            if self.deliveries(name) >= count and len(runs) >= count \
                    and log_text in runs[count - 1]:
                return
            assert self.record(name)["status"] == "running", self.record(name)
            time.sleep(0.2)
        raise AssertionError(f"{name}: delivery {count} never came: {self.record(name)}")

    def kill_phase_process(self) -> None:
        """SIGKILL the pool process running the phase (the worker's only child)."""
        pid = self.worker.popen.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)


@contextlib.contextmanager
def one_worker_farm(farm_env: dict[str, str], log_dir: Path, key: str, host: str,
                    **env: str) -> Iterator[OneWorkerFarm]:
    """An API and one worker (``host``) on a private broker and database; ``env`` added."""
    run = uuid.uuid4().hex[:6]
    log_dir.mkdir(parents=True, exist_ok=True)
    broker = RedisInstance(log_dir / "broker")
    broker.start()
    db_name = f"{farm_env['BINDER_MONGO_DB']}_{host}_{run}".replace("-", "_")
    farm = Farm({**farm_env, "REDIS_URL": f"redis://127.0.0.1:{broker.port}/0",
                 "BINDER_MONGO_DB": db_name, **env}, log_dir)
    client = mongo_client()
    try:
        _, url = farm.start_api()
        worker = farm.start_recorded_worker(host, client[db_name].workers, timeout=60)
        yield OneWorkerFarm(ApiClient(url, key), worker, client[db_name])
    finally:
        farm.stop()
        broker.stop()
        client.drop_database(db_name)
        client.close()

"""Benchmark: cache hits and code-only rebuilds against a full build, in one run.

Starts the farm's real processes (API, one worker) against the running
services, serves a requirements.txt repository from a loopback Git server
and a local package index, then times, from start request to ``completed``:

* a full build (the baseline),
* the same commit again, ``--hits`` times (cache hits: answered by the API
  unless ``BINDER_CACHE_RESOLVE_TIMEOUT=0``, then by the fetch phase),
* a code-only change (dependency layer reused).

Each full build and rebuild also prints its timeline: the wait before each
phase (queue hops) and the phase itself, so the farm's own overhead shows.

Prints each time and its ratio to the baseline; machines here are noisy,
so only ratios measured in the same run mean anything.

    .venv/bin/python -m bench.cache [--rounds N] [--hits N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

RUN = uuid.uuid4().hex[:6]
DATA = Path(tempfile.mkdtemp(prefix=f"binder-bench-{RUN}-"))
ENV = {
    "BINDER_API_KEY": f"bench-{RUN}", "BINDER_DATA_DIR": str(DATA),
    "BINDER_MONGO_DB": f"binder_bench_{RUN}", "REDIS_URL": "redis://127.0.0.1:6379/8",
    "BINDER_IMAGE_PREFIX": f"bench-{RUN}-", "BINDER_BUILD_NETWORK": "host",
    # The services' credentials: those of the farm that started them.
    "BINDER_CREDENTIALS_FILE": os.environ.get(
        "BINDER_CREDENTIALS_FILE",
        str(Path(__file__).resolve().parents[1] / ".binder-data" / "credentials.json")),
}
os.environ.update(ENV)

from bench.builds import timeline  # noqa: E402
from common.config import get_config, set_config  # noqa: E402
from common.db import get_client  # noqa: E402
from tests.support.farm import ApiClient, Farm  # noqa: E402
from tests.support.git_server import GitServer  # noqa: E402
from tests.support.pypi_index import make_index, make_wheel  # noqa: E402
from tests.support.static_http import serve_directory  # noqa: E402
from workers.launcher import ensure_services, stop_services  # noqa: E402


def building_seconds(record: dict) -> float:
    """Time spent in the build phase (0 for a cache hit)."""
    phase = record["phases"].get("building")
    if not phase:
        return 0.0
    start, end = (datetime.fromisoformat(phase[key]) for key in ("start", "end"))
    return (end - start).total_seconds()


def timed_build(api: ApiClient, url: str) -> tuple[float, dict]:
    """Seconds from the start request to ``completed``, and the record (with the
    start request's own seconds, ``post_seconds``)."""
    started = time.perf_counter()
    response = api.start(url)
    response.raise_for_status()
    answered = time.perf_counter() - started
    record = api.wait(response.json()["name"], timeout=900)
    elapsed = time.perf_counter() - started
    if record["status"] != "completed":
        raise SystemExit(f"build failed: {record['error']}")
    return elapsed, {**record, "post_seconds": answered}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hits", type=int, default=10, help="cache hits timed per round")
    args = parser.parse_args()
    index = make_index(DATA / "index", [make_wheel("bench-pkg", "1.0")])
    git = GitServer(DATA / "git").start()
    with serve_directory(index) as index_url:
        env = {**ENV, "BINDER_GITHUB_URL": f"{git.url}/gh", "BINDER_ALLOWED_SOURCE_HOSTS":
               git.host, "BINDER_PIP_INDEX_URL": f"{index_url}/simple/"}
        os.environ.update(env)
        set_config(None)
        started = ensure_services(get_config())
        set_config(None)  # with the credentials, if starting the services made them
        farm = Farm(env, DATA / "logs")
        try:
            _, url = farm.start_api()
            farm.start_worker("bench")
            api = ApiClient(url, ENV["BINDER_API_KEY"])
            full, hit, rebuild, full_phase, rebuild_phase = [], [], [], [], []
            for round_ in range(args.rounds):
                repo = f"repo{round_}"
                git.make_repo(f"gh/bench/{repo}", {"requirements.txt": "bench-pkg\n",
                                                   "code.py": "x = 1\n"})
                elapsed, record = timed_build(api, f"{git.url}/gh/bench/{repo}")
                full.append(elapsed)
                full_phase.append(building_seconds(record))
                print(f"full build {elapsed:.2f} s: {timeline(record)}", flush=True)
                for _ in range(args.hits):
                    elapsed, record = timed_build(api, f"{git.url}/gh/bench/{repo}")
                    if not record["cached"]:
                        raise SystemExit(f"not a cache hit: {record}")
                    hit.append(elapsed)
                git.push_commit(f"gh/bench/{repo}", {"code.py": "x = 2\n"})
                elapsed, record = timed_build(api, f"{git.url}/gh/bench/{repo}")
                rebuild.append(elapsed)
                print(f"code-only rebuild {elapsed:.2f} s: {timeline(record)}", flush=True)
                rebuild_phase.append(building_seconds(record))
        finally:
            farm.stop()
            stop_services(started)
            git.stop()
            get_client().drop_database(ENV["BINDER_MONGO_DB"])
    base = statistics.median(full)
    print(f"full build (baseline)  {base:7.2f} s   ratio 1.000")
    for label, values in (("cache hit", hit), ("code-only rebuild", rebuild)):
        value = statistics.median(values)
        print(f"{label:22} {value:7.2f} s   ratio {value / base:.3f}")
    print(f"cache hits: p50 {statistics.median(hit):.3f} s, max {max(hit):.3f} s "
          f"({len(hit)} starts)")
    phase_base = statistics.median(full_phase)
    phase_rebuild = statistics.median(rebuild_phase)
    print(f"build phase: full {phase_base:.2f} s, code-only {phase_rebuild:.2f} s, "
          f"ratio {phase_rebuild / phase_base:.3f}")


if __name__ == "__main__":
    main()

"""``make bench``: every speed scenario, against baselines measured in the same run.

Starts a lab of its own (``bench/lab.py``: Redis, a Mongo wire server, a
registry, two Docker engines, the API and workers, a Git server and package
indexes on loopback), runs each scenario five times by default (the 1 GiB
log once), prints min/median/max and each ratio, and writes
``bench/RESULTS.md`` with the date, commit, core count and versions.

    .venv/bin/python -m bench [--rounds N] [--only NAME ...] [--log-bytes N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from bench.lab import Lab
from bench.report import print_results, write_results
from bench.stats import Result

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / ".bench-data"


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    # Five rounds, not three: a push varies by a few percent from run to run, as much
    # as the margin some targets leave, and a median of three cannot tell them apart.
    parser.add_argument("--rounds", type=int, default=5, help="repetitions of each scenario")
    parser.add_argument("--only", nargs="*", default=[],
                        help="scenarios to run: scientific, burst, log, api")
    parser.add_argument("--log-bytes", type=int, default=1024**3,
                        help="bytes the big-log build prints")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the benchmark starts Docker engines of its own: run it as root")
    from bench.api_reads import api_reads
    from bench.big_log import big_log
    from bench.scenarios import burst, scientific

    scenarios: dict[str, Callable[[Lab], list[Result]]] = {
        "scientific": lambda lab: scientific(lab, args.rounds, say),
        "burst": lambda lab: burst(lab, args.rounds, say),
        # The read scenario last: its 100,000 records weigh on the embedded store.
        "log": lambda lab: big_log(lab, say, args.log_bytes),
        "api": lambda lab: api_reads(lab, args.rounds, say),
    }
    chosen = args.only or list(scenarios)
    started = time.monotonic()
    results: list[Result] = []
    durations: dict[str, float] = {}
    with Lab.open(DATA, say, base=any(name != "api" for name in chosen)) as lab:
        lab.start_worker("a")
        durations["lab start"] = (time.monotonic() - started) / 60
        for name in chosen:
            began = time.monotonic()
            results += scenarios[name](lab)
            durations[name] = (time.monotonic() - began) / 60
            say(f"{name} took {durations[name]:.1f} min")
    minutes = (time.monotonic() - started) / 60
    print_results(results, durations)
    write_results(args.results, results, minutes, complete=not args.only, durations=durations)
    say(f"{args.results} written ({minutes:.1f} min)")
    if not all(result.met for result in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""Benchmark: the Dockerfile image check grows linearly with the file.

For hostile inputs (blank lines, long runs of spaces, continuation lines)
and for an ordinary multi-stage Dockerfile repeated, at growing sizes, it
times :func:`workers.dockerfile_parser.images.pulled_images` against two baselines
measured in the same run:

* ``scan``: splitting the text into lines and touching each once, the least
  a line-by-line parser can do; the ratio parser/scan stays flat as the
  input grows when the parser is linear;
* ``old regex``: the ``^\\s*FROM`` multi-line regex the farm used before,
  quadratic on blank lines (run only up to 40 KB: it takes seconds there).

Machines here are noisy: only ratios from the same run mean anything.

    .venv/bin/python -m bench.dockerfile_parse [--max-kb 1024]
"""

from __future__ import annotations

import argparse
import gc
import re
import time
from collections.abc import Callable

from workers.dockerfile_parser.images import pulled_images

OLD_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.I | re.M)
ORDINARY = ("FROM python:3.12 AS build\nARG VERSION=1\nRUN pip wheel . \\\n    --wheel-dir /w\n"
            "# a comment\nFROM debian:12\nCOPY --from=build /w /w\nRUN apt-get update && \\\n"
            "    apt-get install -y curl\nUSER 1000\n")


def inputs(size: int) -> dict[str, str]:
    def fill(unit: str) -> str:
        return unit * max(1, size // len(unit))

    return {
        "blank lines": "FROM a\n" + fill("\n"),
        "spaces, one line": "FROM a\nRUN x" + fill(" ") + "y\n",
        "continued lines": "FROM a\nRUN x \\\n" + fill("  y \\\n") + "\n",
        "ordinary Dockerfile": fill(ORDINARY),
    }


def timed(function: Callable[[], object], rounds: int = 3) -> float:
    """Best of ``rounds`` runs, garbage collection paused (it would add noise, not work)."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            function()
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best


def scan(text: str) -> int:
    count = 0
    for line in text.split("\n"):
        count += len(line) > 0
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-kb", type=int, default=1024)
    args = parser.parse_args()
    sizes = [kb for kb in (10, 40, 160, 640, args.max_kb) if kb <= args.max_kb]
    sizes = sorted(set(sizes))
    print(f"{'input':<22}{'size':>8}{'parser s':>11}{'scan s':>10}{'parser/scan':>13}"
          f"{'old regex s':>13}{'old/parser':>12}")
    for name in inputs(1):
        first_ratio: float | None = None
        for kb in sizes:
            text = inputs(kb * 1024)[name]
            parse_time = timed(lambda text=text: pulled_images(text))  # type: ignore[misc]
            scan_time = max(timed(lambda text=text: scan(text)), 1e-6)  # type: ignore[misc]
            ratio = parse_time / scan_time
            first_ratio = first_ratio or ratio
            old = ""
            if kb <= 40:
                old_time = timed(lambda text=text: list(OLD_FROM.finditer(text)), rounds=1)  # type: ignore[misc]
                old = f"{old_time:>13.3f}{old_time / parse_time:>12.1f}"
            print(f"{name:<22}{kb:>6}KB{parse_time:>11.4f}{scan_time:>10.4f}{ratio:>13.1f}{old}")
        growth = ratio / first_ratio if first_ratio else float("nan")
        print(f"{'':<22}growth of parser/scan from {sizes[0]} KB to {sizes[-1]} KB: "
              f"{growth:.2f}x (1.0 = linear)\n")


if __name__ == "__main__":
    main()

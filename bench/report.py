"""The benchmark's report: on the terminal, and as ``bench/RESULTS.md``."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench.stats import Result

VERSIONED = ("celery", "flask", "gunicorn", "pymongo", "redis", "docker", "SecantusDB")


def _run(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "kernel": platform.release(),
             "docker": _run("/usr/bin/docker", "version", "--format", "{{.Server.Version}}"),
             "registry": _run("docker-registry", "--version").split()[-1:][0]
             if _run("docker-registry", "--version") else "?",
             "redis-server": _run("redis-server", "--version").split(" v=")[-1].split()[0]}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "-"
    return found


def commit() -> str:
    root = Path(__file__).resolve().parent.parent
    head = _run("git", "-C", str(root), "rev-parse", "--short", "HEAD")
    dirty = _run("git", "-C", str(root), "status", "--porcelain", "--untracked-files=no")
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


COLUMNS = ("scenario", "measured", "value", "samples: min / median / max", "baseline",
           "ratio", "target", "met")


def _value(result: Result) -> str:
    return f"{result.checked_value:.3g} {result.samples.unit}".strip()


def _row(result: Result) -> tuple[str, ...]:
    ratio = f"{result.ratio:.3f}" if result.ratio is not None else ""
    baseline = f"{result.baseline_name}: {result.baseline.summary()}" if result.baseline else ""
    return (result.scenario, result.quantity, _value(result), result.samples.summary(), baseline,
            ratio, result.target.text, "met" if result.met else "NOT MET")


def verdict(results: list[Result]) -> str:
    missed = [result for result in results if not result.met]
    if not results:
        return "no results"
    if not missed:
        return f"every target met ({len(results)} of {len(results)})"
    return f"{len(missed)} of {len(results)} targets NOT met"


def print_results(results: list[Result], durations: dict[str, float] | None = None) -> None:
    print()
    for result in results:
        scenario, quantity, value, samples, baseline, ratio, target, met = _row(result)
        print(f"{scenario} — {quantity}: {value}\n    {samples}")
        if baseline:
            print(f"    baseline {baseline}\n    ratio {ratio}")
        print(f"    {target}: {met}")
    for name, minutes in (durations or {}).items():
        print(f"{name}: {minutes:.1f} min")
    print(verdict(results))


def write_results(path: Path, results: list[Result], minutes: float, complete: bool,
                  durations: dict[str, float] | None = None) -> None:
    """``bench/RESULTS.md``: the machine, the run, then one row per target.

    ``durations`` are the minutes each part of the run took (the lab's start,
    each scenario), so the run's time can be read against its budget.
    """
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`bench/__main__.py`); each ratio is against a baseline "
        "measured in the same run, on the same engines and registry. Samples are one per "
        "round unless the row says otherwise; the value is what the target checks "
        "(the median unless the row names a percentile or a worst case).",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- commit: {commit()}",
        f"- cores: {os.cpu_count()}; memory: {_memory_gib():.0f} GiB; "
        f"load average at the end: {os.getloadavg()[0]:.1f}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions().items())}",
        f"- run time: {minutes:.1f} min" + ("" if complete else " (some scenarios only)"),
    ]
    if durations:
        lines.append("- of which: " + "; ".join(f"{name} {part:.1f} min"
                                               for name, part in durations.items()))
    lines += [
        f"- result: {verdict(results)}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in _row(result)) + " |"
              for result in results]
    path.write_text("\n".join(lines) + "\n")


def _memory_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return total_kb / 1024**2

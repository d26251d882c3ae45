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


def _row(result: Result) -> tuple[str, str, str, str, str, str]:
    ratio = f"{result.ratio:.3f}" if result.ratio is not None else ""
    baseline = f"{result.baseline_name}: {result.baseline.summary()}" if result.baseline else ""
    return (result.scenario, result.quantity, result.samples.summary(), baseline, ratio,
            f"{result.target.text}: {'met' if result.met else 'NOT MET'}")


def print_results(results: list[Result]) -> None:
    print()
    for result in results:
        scenario, quantity, samples, baseline, ratio, target = _row(result)
        print(f"{scenario} — {quantity}\n    {samples}")
        if baseline:
            print(f"    baseline {baseline}\n    ratio {ratio}")
        print(f"    {target}")


def write_results(path: Path, results: list[Result], minutes: float, complete: bool) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`bench/__main__.py`); each ratio is against a baseline "
        "measured in the same run, on the same engines and registry.",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- commit: {commit()}",
        f"- cores: {os.cpu_count()}; memory: {_memory_gib():.0f} GiB; "
        f"load average at the end: {os.getloadavg()[0]:.1f}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions().items())}",
        f"- run time: {minutes:.1f} min" + ("" if complete else " (some scenarios only)"),
        "",
        "| scenario | measured | samples | baseline | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in _row(result)) + " |"
              for result in results]
    path.write_text("\n".join(lines) + "\n")


def _memory_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return total_kb / 1024**2

"""The build scenarios: cold and warm builds, cache hits, a second host, a burst.

Each function runs its rounds (baselines interleaved with the farm's runs,
so a slow minute of a shared machine hits both; the legacy builder's after
them, see ``scientific``) and returns report lines.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from typing import Any

from bench.builds import (
    await_build,
    by_hand_buildkit,
    by_hand_legacy,
    farm_build,
    run_parallel,
    timeline,
)
from bench.lab import Lab
from bench.stats import Result, Samples, at_most, below, ratio_at_most
from bench.wheelhouse import SCIENTIFIC

SCIENCE = {
    "requirements.txt": "\n".join(SCIENTIFIC) + "\n",
    "analysis.py": "import numpy, pandas, scipy, matplotlib, seaborn\nprint('ready')\n",
    "README.md": "# requirements\nnumpy, pandas, scipy, matplotlib and seaborn.\n",
}
SMALL = {"requirements.txt": "pytz\n", "README.md": "# small\n"}


def _run_id() -> str:
    return uuid.uuid4().hex[:6]


def scientific(lab: Lab, rounds: int, say: Any) -> list[Result]:
    """Cold builds against both baselines, then a second repository, a code-only
    commit, cache hits and a second host, all on the scientific requirements."""
    legacy, by_hand, cold = Samples("s"), Samples("s"), Samples("s")
    second_repo, code_only = Samples("s"), Samples("s")
    run = _run_id()
    repos = []
    for round_ in range(rounds):
        say(f"scientific round {round_ + 1}/{rounds}")
        farm_first = round_ % 2 == 1  # neither side always runs after the other
        if not farm_first:
            by_hand.add(_by_hand_cold(lab, run, round_, say))
        lab.cold("a")
        repo = f"science/req-{run}-{round_}"
        lab.git.make_repo(f"gh/{repo}", SCIENCE)
        seconds, record = farm_build(lab, lab.repo_url(repo))
        cold.add(seconds)
        say(f"  farm, cold {seconds:.1f} s: {timeline(record)}")
        other = f"science/other-{run}-{round_}"
        lab.git.make_repo(f"gh/{other}", {**SCIENCE, "analysis.py": "print('another')\n"})
        seconds, record = farm_build(lab, lab.repo_url(other))
        second_repo.add(seconds)
        say(f"  farm, second repository {seconds:.1f} s: {timeline(record)}")
        lab.git.push_commit(f"gh/{repo}", {"analysis.py": f"print('round {round_}')\n"})
        seconds, record = farm_build(lab, lab.repo_url(repo))
        code_only.add(seconds)
        say(f"  farm, code-only commit {seconds:.1f} s: {timeline(record)}")
        repos.append(repo)
        if farm_first:
            by_hand.add(_by_hand_cold(lab, run, round_, say))
    # The legacy builder's rounds come after the others, not between them: whichever
    # BuildKit build ran right after a legacy one was ~1 s (4%) faster than one run
    # after another BuildKit build, the farm's as much as the baseline's, which had
    # put that advantage on one side of the closest comparison every round.
    for round_ in range(rounds):
        say(f"legacy builder round {round_ + 1}/{rounds}")
        lab.cold("a")
        legacy.add(by_hand_legacy(lab, "a", SCIENCE, f"{lab.registry}/hand-legacy-{run}:{round_}"))
        say(f"  legacy builder by hand {legacy.values[-1]:.1f} s")
    results = [
        Result("cold scientific build", "POST to completed", cold, ratio_at_most(0.80),
               legacy, "legacy builder + pip by hand, then push"),
        Result("cold scientific build", "POST to completed", cold, ratio_at_most(1.02),
               by_hand, "BuildKit build of the farm's Dockerfile + push by hand"),
        Result("second repository, same requirements", "POST to completed", second_repo,
               ratio_at_most(0.40), cold, "its cold build"),
        Result("code-only commit", "POST to completed", code_only, ratio_at_most(0.15), cold,
               "the cold build"),
    ]
    results += cache_hits(lab, repos, say)
    results.append(second_host(lab, repos, cold, say))
    return results


def _by_hand_cold(lab: Lab, run: str, round_: int, say: Any) -> float:
    """The BuildKit baseline of a scientific round, from cold."""
    lab.cold("a")
    seconds = by_hand_buildkit(lab, "a", SCIENCE, f"{lab.registry}/hand-bk-{run}:{round_}")
    say(f"  BuildKit by hand {seconds:.1f} s")
    return seconds


def cache_hits(lab: Lab, repos: list[str], say: Any, per_repo: int = 40) -> list[Result]:
    """Starts of already-built commits: latency, and no build at all."""
    say("cache hits")
    latency = Samples("s")
    builds_run = 0
    for repo in repos:
        for _ in range(per_repo):
            seconds, record = farm_build(lab, lab.repo_url(repo))
            latency.add(seconds)
            if not record.get("cached") or "building" in (record.get("phases") or {}):
                builds_run += 1
    p99 = sorted(latency.values)[max(0, round(0.99 * len(latency.values)) - 1)]
    built = Samples("builds", [float(builds_run)])
    return [
        Result("start of an already-built commit", "p50", latency, below(0.15, "s")),
        Result("start of an already-built commit", "p99", latency, below(0.5, "s"), value=p99),
        Result("start of an already-built commit", "Docker builds", built, at_most(0, "builds")),
    ]


def second_host(lab: Lab, repos: list[str], cold: Samples, say: Any) -> Result:
    """Host B's first build of a newer commit, after host A built the older ones."""
    say("second host")
    first_build = Samples("s")
    lab.stop_worker("host-a")
    lab.start_worker("b")
    try:
        for round_, repo in enumerate(repos):
            lab.cold("b")
            lab.git.push_commit(f"gh/{repo}", {"analysis.py": f"print('host b {round_}')\n"})
            seconds, record = farm_build(lab, lab.repo_url(repo))
            if record.get("worker") != "host-b":
                raise RuntimeError(f"{repo} was built by {record.get('worker')}, not host-b")
            first_build.add(seconds)
            say(f"  host B {seconds:.1f} s: {timeline(record)}")
    finally:
        lab.stop_worker("host-b")
        lab.start_worker("a")
    return Result("first build on a second host", "POST to completed", first_build,
                  ratio_at_most(0.50), cold, "the cold build on host A")


def burst(lab: Lab, rounds: int, say: Any, repos: int = 10, starts: int = 50) -> list[Result]:
    """Many starts for a few repositories at once, two workers, against builds by hand.

    Each round makes ``repos`` new repositories, builds them by hand two at a
    time on host A's engine, forgets what that built, then sends ``starts``
    start requests for them at once to a farm whose two workers share that
    engine. Every answer must be the build started, already running
    (``alreadyBuilding``) or already built (``cached``); the build records must
    show each repository built exactly once.
    """
    farm, by_hand = Samples("s"), Samples("s")
    built_more: list[float] = []
    lab.start_worker("a", name="host-a2")
    try:
        for round_ in range(rounds):
            say(f"burst round {round_ + 1}/{rounds}")
            run = _run_id()
            files = [{**SMALL, "app.py": f"print({index})\n"} for index in range(repos)]
            lab.cold("a")
            images = [f"{lab.registry}/hand-{run}-{index}:1" for index in range(repos)]
            by_hand.add(run_parallel(
                [lambda f=f, image=image: by_hand_buildkit(lab, "a", f, image)
                 for f, image in zip(files, images, strict=True)], width=2))
            say(f"  by hand, two at a time {by_hand.values[-1]:.1f} s")
            lab.cold("a")
            urls = []
            for index, repo_files in enumerate(files):
                lab.git.make_repo(f"gh/burst/r{run}-{index}", repo_files)
                urls.append(lab.repo_url(f"burst/r{run}-{index}"))
            seconds, names, records = _burst(lab, [urls[i % repos] for i in range(starts)])
            farm.add(seconds)
            for record in records:
                say(f"    {record['name']}: {timeline(record)}")
            builds = {url: _docker_builds(lab, name) for url, name in names.items()}
            built_more.append(float(sum(count != 1 for count in builds.values())))
            say(f"  farm, {starts} starts {seconds:.1f} s; builds per repository "
                f"{sorted(builds.values())}")
    finally:
        lab.stop_worker("host-a2")
    scenario = f"{starts} starts for {repos} repositories, 2 workers"
    return [Result(scenario, "first start to all completed", farm, ratio_at_most(1.10),
                   by_hand, f"the {repos} builds by hand, two at a time"),
            Result(scenario, "repositories not built exactly once",
                   Samples("repositories", built_more), at_most(0, "repositories"),
                   value=max(built_more, default=1.0))]


def _burst(lab: Lab, urls: list[str]) \
        -> tuple[float, dict[str, str], list[dict[str, Any]]]:
    """Start all of ``urls`` at once; seconds until every build completed, the
    build name of each repository and the started builds' final records. Raises
    on any other answer than started, cached or already building, and on two
    names for one repository."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda url: (url, lab.api.start(url)), urls))
    names: dict[str, str] = {}
    started_builds: list[dict[str, Any]] = []
    for url, answer in answers:
        body = answer.json()
        if answer.status_code == 409 and body.get("type") == "alreadyBuilding":
            continue
        if answer.status_code != 200:
            raise RuntimeError(f"start of {url}: {answer.status_code} {body}")
        if names.setdefault(url, body["name"]) != body["name"]:
            raise RuntimeError(f"{url} started as {names[url]} and {body['name']}")
        started_builds.append(body)
    if set(names) != set(urls):
        raise RuntimeError(f"no build started for {sorted(set(urls) - set(names))}")
    ended = [await_build(lab, record, started + 1800, poll=0.1) for record in started_builds]
    return time.perf_counter() - started, names, ended


def _docker_builds(lab: Lab, name: str) -> int:
    """How many attempts of build ``name`` ran a Docker build, from its records."""
    response = lab.api.request("GET", f"/builds/{name}/history")
    response.raise_for_status()
    return sum(1 for attempt in response.json()
               if not attempt.get("cached") and "building" in (attempt.get("phases") or {}))

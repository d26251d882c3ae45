"""Timing builds as a user sees them, and the same builds done by hand.

``farm_build`` is a start request to ``completed`` over the API. The
``by_hand_*`` functions are what a person would type on the same engine
and registry: ``docker build`` and ``docker push``, timed together.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench.lab import Lab
from common.config import load_config
from workers.buildpacks import detect
from workers.docker_context import write_context

#: Pause before asking the API again after an answer it could not give (503, no answer).
POLL = 0.1


def timeline(record: dict[str, Any]) -> str:
    """Where a build's time went: the start request (when timed), the wait before each
    phase, then the phase itself."""
    at = datetime.fromisoformat(record["start-time"])
    parts = [f"post {record['post_seconds']:.2f}"] if "post_seconds" in record else []
    phases = sorted(((name, times) for name, times in record["phases"].items()
                     if times.get("start") and times.get("end")),
                    key=lambda item: item[1]["start"])
    for name, times in phases:
        start, end = (datetime.fromisoformat(times[key]) for key in ("start", "end"))
        parts.append(f"wait {(start - at).total_seconds():.2f}  {name} "
                     f"{(end - start).total_seconds():.2f}")
        at = end
    if record.get("end-time"):
        ended = datetime.fromisoformat(record["end-time"])
        parts.append(f"wait {(ended - at).total_seconds():.2f}")
    return " | ".join(parts)


class BuildFailed(RuntimeError):
    pass


def farm_build(lab: Lab, url: str, force: bool = False,
               timeout: float = 1800) -> tuple[float, dict[str, Any]]:
    """Seconds from the start request to ``completed``, and the final record, which
    also keeps how long the start request took (``post_seconds``)."""
    started = time.perf_counter()
    record = start_build(lab, url, started + timeout, force=force)
    answered = time.perf_counter() - started
    record = await_build(lab, record, started + timeout)
    return time.perf_counter() - started, {**record, "post_seconds": answered}


def start_build(lab: Lab, url: str, deadline: float, force: bool = False,
                poll: float = POLL) -> dict[str, Any]:
    """The answer to a start request, asked again while the API answers 503.

    A 503 means the API's store missed its bound (a busy embedded store after
    a large fill); the start is safe to repeat, since the farm answers a second
    start of the same commit with the build the first one made.
    """
    while True:
        response = lab.api.start(url, force=force)
        if response.status_code != 503 or time.perf_counter() > deadline:
            response.raise_for_status()
            answer: dict[str, Any] = response.json()
            return answer
        time.sleep(max(poll, 0.5))


def await_build(lab: Lab, record: dict[str, Any], deadline: float,
                poll: float = POLL, follow: bool = True) -> dict[str, Any]:
    """Wait for the build of ``record`` to end, as a launcher showing its progress does:
    follow its log until the API says it ended, then read the record; raise unless it
    completed. Without ``follow``, read the record every ``poll`` seconds instead.

    Following costs the farm nothing between lines, where reading the record every
    20 ms took CPU from the build being timed. A stream that breaks, or a read the
    API answers 503 (its store busy past its bound) or not in time, is asked again
    after ``poll`` seconds, as a user's client would, until the deadline.
    """
    while record["status"] == "running":
        if time.perf_counter() > deadline:
            raise BuildFailed(f"{record['name']} still running at the deadline")
        try:
            if follow:
                _follow_to_end(lab, record["name"])
            else:
                time.sleep(poll)
            response = lab.api.request("GET", f"/builds/{record['name']}")
        except requests.RequestException:  # no answer within the client's timeout
            time.sleep(poll)
            continue
        if response.status_code == 503:
            time.sleep(poll)
            continue
        response.raise_for_status()
        record = response.json()
    if record["status"] != "completed":
        raise BuildFailed(f"{record['name']} {record['status']}: {record.get('error')}\n"
                          f"{lab.api.logs(record['name'])[-3000:]}")
    return record


def _follow_to_end(lab: Lab, name: str) -> None:
    """Read build ``name``'s log as Server-Sent Events until the stream ends: after the
    ``end`` event once the build ended, or early on an error (the caller reads the record)."""
    with lab.api.request("GET", f"/builds/{name}/logs", params={"follow": "true"},
                         stream=True) as response:
        if response.status_code != 200:
            return
        for line in response.iter_lines():
            if line.startswith((b"event: end", b"event: error")):
                return


def write_checkout(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def legacy_dockerfile(base_image: str, index_url: str) -> str:
    """How single-host tools build a requirements.txt repository (pip, no BuildKit)."""
    return (f"FROM {base_image}\n"
            "USER root\n"
            "RUN python3 -m venv --system-site-packages /srv/env\n"
            "COPY requirements.txt /tmp/requirements.txt\n"
            f"RUN /srv/env/bin/pip install --no-cache-dir --index-url {index_url} "
            "-r /tmp/requirements.txt\n"
            "COPY . ${HOME}/\n"
            "RUN chown -R ${NB_UID}:${NB_UID} ${HOME}\n"
            "USER ${NB_USER}\n")


def by_hand_legacy(lab: Lab, host: str, files: dict[str, str], image: str) -> float:
    """Legacy builder on the base image, then push: seconds for both."""
    with tempfile.TemporaryDirectory(dir=lab.run_dir) as work:
        checkout = write_checkout(Path(work) / "repo", files)
        (checkout / "Dockerfile").write_text(
            legacy_dockerfile(lab.base_image, lab.env["BINDER_PIP_INDEX_URL"]))
        started = time.perf_counter()
        lab.docker(host, "build", "--network", "host", "--quiet", "--tag", image, str(checkout),
                   buildkit=False)
        lab.docker(host, "push", "--quiet", image)
        return time.perf_counter() - started


def farm_context(lab: Lab, files: dict[str, str], target: Path) -> str:
    """The context tar the farm builds for ``files``; returns its Dockerfile path."""
    config = load_config()
    checkout = write_checkout(target.parent / "repo", files)
    detection = detect(checkout, config)
    inputs = detection.inputs(checkout, config)
    return write_context(target, detection.buildpack, inputs, detection.buildpack.render(inputs))


def by_hand_buildkit(lab: Lab, host: str, files: dict[str, str], image: str) -> float:
    """The farm's own generated Dockerfile, built with BuildKit and pushed by hand."""
    with tempfile.TemporaryDirectory(dir=lab.run_dir) as work:
        context = Path(work) / "context.tar"
        dockerfile = farm_context(lab, files, context)
        started = time.perf_counter()
        with open(context, "rb") as stdin:
            lab.docker(host, "build", "--network", "host", "--quiet", "--file", dockerfile,
                       "--tag", image, "-", stdin=stdin)
        lab.docker(host, "push", "--quiet", image)
        return time.perf_counter() - started


def run_parallel(jobs: list[Any], width: int) -> float:
    """Run callables ``width`` at a time; seconds until all ended."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=width) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    return time.perf_counter() - started

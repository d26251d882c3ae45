"""Running a Docker build so that it can be stopped at any moment.

The Docker SDK's build call streams over one HTTP connection; the engine
cancels the build (and removes its step container) when that connection
closes. So the build runs in a small child process (``python -m
workers.image_build PARAMS.json``) that prints each decoded chunk as a
JSON line: killing the child stops the build, whatever step is running,
and the child dies with the worker process that started it.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import BuildFailure
from workers.guard import PhaseGuard
from workers.orphans import die_with_parent

_PIP_MISSING = re.compile(r"No matching distribution found for ([^\s]+)")
_PIP_VERSION = re.compile(r"Could not find a version that satisfies the requirement ([^\s]+)")
_STEP_FAILED = re.compile(r"The command '(?:/bin/sh -c )?(.*)' returned a non-zero code: (\d+)",
                          re.S)


def explain_failure(error: str, recent: list[str]) -> str:
    """A sentence a user can act on, from Docker's error and the last log lines."""
    for line in reversed(recent):
        if line.startswith("BINDER-ERROR: "):
            return line.removeprefix("BINDER-ERROR: ").strip()
        for pattern in (_PIP_MISSING, _PIP_VERSION):
            match = pattern.search(line)
            if match:
                return f"pip could not install {match.group(1)}: no matching distribution found."
    match = _STEP_FAILED.search(error)
    if match:
        command, code = match.group(1).strip(), match.group(2)
        last = next((line.strip() for line in reversed(recent)
                     if line.strip() and not line.startswith(("Step ", " ---> "))), "")
        tail = f" Its last output: {last[:300]}" if last else ""
        return f"The build step `RUN {command[:200]}` failed with exit code {code}.{tail}"
    return f"Docker could not build the image: {error.strip()[:500]}"


def run_build(params: dict[str, Any], workdir: Path, say: Callable[[str], None],
              guard: PhaseGuard) -> str:
    """Build as ``params`` says (docker_host, context, tag, ...); return the image id.

    Raises ``BuildFailure`` with an explained message, or the guard's reason
    when the build was stopped.
    """
    params_file = workdir / "build-params.json"
    params_file.write_text(json.dumps(params))
    child = subprocess.Popen([sys.executable, "-m", "workers.image_build", str(params_file)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: die_with_parent(signal.SIGKILL),
                             cwd=Path(__file__).parent.parent)
    remove_hook = guard.on_abort(child.kill)
    recent: list[str] = []
    error, image_id = "", ""
    assert child.stdout is not None
    try:
        for raw in child.stdout:
            chunk = json.loads(raw)
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    say(line)
                    recent = (recent + [line])[-40:]
            elif "error" in chunk:
                error = chunk["error"]
            elif "aux" in chunk and isinstance(chunk["aux"], dict):
                image_id = chunk["aux"].get("ID", image_id)
            elif "status" in chunk:
                say(chunk["status"])
        child.wait()
    finally:
        remove_hook()
        if child.poll() is None:
            child.kill()
            child.wait()
    guard.check()
    if error:
        raise BuildFailure(explain_failure(error, recent))
    if child.returncode != 0:
        assert child.stderr is not None
        problem = child.stderr.read().strip().splitlines()
        raise BuildFailure("Docker build could not run: "
                           + (problem[-1] if problem else f"exit {child.returncode}"))
    if not image_id:
        raise BuildFailure("Docker reported no image for the build.")
    return image_id


def _child(params_path: str) -> None:
    import docker

    params = json.loads(Path(params_path).read_text())
    client = docker.APIClient(base_url=params.pop("docker_host"), timeout=params.pop("timeout"))
    context = params.pop("context")
    with open(context, "rb") as fileobj:
        for chunk in client.build(fileobj=fileobj, custom_context=True, decode=True,
                                  rm=True, forcerm=True, pull=False, **params):
            sys.stdout.write(json.dumps(chunk) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    _child(sys.argv[1])

"""Running a BuildKit build through the Docker CLI, so that it can be stopped at any moment.

The engine's BuildKit runs ``RUN --mount=type=cache`` and caches layers by
content; Debian's Docker client drives it with ``DOCKER_BUILDKIT=1`` and
``--progress plain``, with no buildx plugin and no frontend image. The
client streams the context tar from stdin and prints every step line on
stderr, which goes to the build's log as it arrives.

The engine cancels a build, and kills its running step container, when the
client's connection closes. So stopping a build is killing the client
(SIGKILL: on SIGTERM the client lingers while the step keeps running); the
client also dies with the worker process that started it.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from common.config import Config
from common.docker_connection import cli_flags
from common.errors import BuildFailure, EngineFault
from common.log_store import MAX_LINE_CHARS
from common.models import FailureCause
from common.probes import check_docker
from common.terminal_text import STEP_PREFIX, shown_line
from workers.guard import PhaseGuard
from workers.orphans import die_with_parent
from workers.registry import docker_cli_config
from workers.repo_yaml import shorten
from workers.silence_watch import SilenceWatch

#: Debian's client: BuildKit built in. A newer client elsewhere on PATH may
#: insist on the buildx plugin, which these engines do not need.
DOCKER_CLI = "/usr/bin/docker"

#: The label every image a farm builds carries: its build name.
BUILT_LABEL = "org.binder-build.name"

#: Characters of the sentence a failed build ends with: it quotes what build steps
#: printed, and a step prints what it likes.
MAX_EXPLANATION = 500

#: Exit code of a step the kernel killed; the farm's own stops are told apart
#: by the guard, so this is the build cgroup's memory limit at work.
KILLED = 137
#: Longest line (bytes) the Docker client may print: a step that prints much more than
#: this at once without a line break leaves the engine's client (20.10) spinning without
#: a word, the image built but the build never followed to its end.
LONGEST_CLIENT_LINE = 1024 * 1024

_STEP_LINE = re.compile(f"^{STEP_PREFIX.pattern}(.*)$")
_PIP_MISSING = re.compile(r"No matching distribution found for ([^\s]+)")
_PIP_VERSION = re.compile(r"Could not find a version that satisfies the requirement ([^\s]+)")
_STEP_FAILED = re.compile(r"executor failed running \[(?:/bin/sh -c )?(.*)\]: exit code: (\d+)",
                          re.S)
#: uv's error and its causes, as it prints them without a terminal ("error:" / "cause:")
#: and with one ("×" / "╰─▶"); a cause runs on over lines indented further.
_UV_ERROR = re.compile(r"^\s*(?:error:|×)\s+(.+)$")
_UV_CAUSE = re.compile(r"^\s*(?:cause:|╰─▶)\s+(.+)$")
_UV_MORE = re.compile(r"^\s{4,}(?=\S)(?![\s^]*$)(.+)$")
#: What a write to a full disk says (ENOSPC), in a step or in the engine's own error.
_NO_SPACE = "no space left on device"
#: What a step says when it could not start a process or thread (``EAGAIN`` from fork
#: or clone, as at the pids limit): shells, C and Go programs, Python, OpenBLAS.
_NO_PROCESS = re.compile(r"(fork|thread|clone|pthread_create).*resource temporarily "
                         r"unavailable|can't fork|cannot fork|can't start new thread",
                         re.IGNORECASE)
#: What the engine's Dockerfile frontend says of a line it cannot read.
_PARSE_ERROR = "dockerfile parse error"
#: What the engine says when it lost the context the client streamed to it, after
#: reading it once: its session's fault (seen under load), gone on the next try.
_CONTEXT_LOST = re.compile(r'"http://build-context-\w+": context not found')
_SOLVE_PREFIX = re.compile(r"^(failed to solve with frontend [\w.]+: )?(failed to [\w ]+: )?")


@dataclass
class BuildRequest:
    """One image build: the context tar and how to build it."""

    context: Path
    dockerfile: str
    tag: str
    network: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)
    build_args: Mapping[str, str] = field(default_factory=dict)


def build_command(request: BuildRequest, iidfile: Path) -> list[str]:
    """The ``docker build`` argv; the context tar comes on stdin. ``request.network``
    is one of ``common.config.BUILD_NETWORKS``: BuildKit takes no named network."""
    argv = [DOCKER_CLI, "build", "--progress", "plain", "--file", request.dockerfile,
            "--tag", request.tag, "--iidfile", str(iidfile),
            # Layer-cache metadata inside the pushed image: another host's
            # build can reuse its layers with --cache-from.
            "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
    if request.network != "default":
        argv += ["--network", request.network]
    for key, value in sorted(request.labels.items()):
        argv += ["--label", f"{key}={value}"]
    for image in request.cache_from:
        argv += ["--cache-from", image]
    for key, value in sorted(request.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    return [*argv, "-"]


def client_environment(config: Config) -> dict[str, str]:
    """The client's whole environment: this worker's engine, BuildKit, the registry login.

    The login (``docker_cli_config``) is used by the engine for pulls and
    ``--cache-from``, never by a build step; nothing of the worker's own
    environment or home directory reaches the client.
    """
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOCKER_HOST": config.docker_host,
            "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(docker_cli_config(config))}


def step_output(line: str) -> str | None:
    """What a step printed, from a plain progress line (``#7 1.23 text``)."""
    match = _STEP_LINE.match(line)
    return match.group(1) if match else None


def uv_error(recent: list[str]) -> str | None:
    """uv's last error with its causes, as one line; ``None`` when uv printed none."""
    for index in range(len(recent) - 1, -1, -1):
        head = _UV_ERROR.match(recent[index])
        if not head:
            continue
        parts = [head.group(1).strip().rstrip(":")]
        for line in recent[index + 1:]:
            cause, more = _UV_CAUSE.match(line), _UV_MORE.match(line)
            if cause:
                parts.append(cause.group(1).strip().rstrip(":"))
            elif more and len(parts) > 1:
                parts[-1] += " " + more.group(1).strip()
            else:
                break
        return ": ".join(parts)
    return None


def explain_failure(error: str, recent: list[str], memory: str, pids: int = 0) -> str:
    """A sentence a user can act on, from the client's last line and the last step output.

    ``recent`` holds what the steps printed, without BuildKit's prefixes;
    ``memory`` is the build memory limit, named when a step was killed, and
    ``pids`` the process limit (0: none), named when a step could not fork. The
    sentence is one printable line of at most ``MAX_EXPLANATION`` characters,
    whatever a step printed (``BINDER-ERROR:`` lines included).
    """
    return shorten(_explanation(error, recent, memory, pids), MAX_EXPLANATION)


def failure_cause(error: str, recent: list[str]) -> FailureCause:
    """Whose fault a failed build was, from the client's last line and the last step
    output: a step killed at the memory limit, one that could not start a process, or a
    device out of space, ran out of ``resources``; anything else the repository asked
    for failed."""
    match = _STEP_FAILED.search(error)
    if match and int(match.group(2)) == KILLED:
        return FailureCause.RESOURCES
    if match and any(_NO_PROCESS.search(line) for line in recent):
        return FailureCause.RESOURCES
    if any(_NO_SPACE in line.lower() for line in (error, *recent)):
        return FailureCause.RESOURCES
    return FailureCause.REPOSITORY


def failure_suggestions(error: str) -> list[str]:
    """What to do about a failure, when the client's last line says more than the
    sentence can: a line the engine's Dockerfile parser does not know."""
    if _PARSE_ERROR in error.lower():
        return ["The Docker engine reads the Dockerfile with its built-in frontend, which may "
                "not know syntax added after it (heredocs, COPY --link, ...): write that line "
                "without it."]
    return []


def _explanation(error: str, recent: list[str], memory: str, pids: int) -> str:
    for line in reversed(recent):
        if line.startswith("BINDER-ERROR: "):
            return line.removeprefix("BINDER-ERROR: ").strip()
        for pattern in (_PIP_MISSING, _PIP_VERSION):
            match = pattern.search(line)
            if match:
                return f"pip could not install {match.group(1)}: no matching distribution found."
    match = _STEP_FAILED.search(error)
    if match:
        command, code = match.group(1).strip()[:200], int(match.group(2))
        if code == KILLED:
            return (f"The build step `RUN {command}` was killed (exit code {KILLED}): the build "
                    f"ran out of memory; builds on this farm are limited to {memory}.")
        if any(_NO_PROCESS.search(line) for line in recent):
            limit = (f"builds on this farm may have {pids} processes and threads at once"
                     if pids else "the host could start no more")
            return (f"The build step `RUN {command}` could not start a process or thread "
                    f"(exit code {code}): {limit}.")
        uv = uv_error(recent) if "uv pip " in match.group(1) else None
        if uv:
            return f"uv could not install the Python packages: {uv[:600]}"
        last = next((line.strip() for line in reversed(recent)
                     if line.strip() and line.strip() != "Killed"), "")
        tail = f" Its last output: {last[:300]}" if last else ""
        return f"The build step `RUN {command}` failed with exit code {code}.{tail}"
    reason = _SOLVE_PREFIX.sub("", error.strip(), count=1)
    return f"Docker could not build the image: {reason[:500]}"


def client_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The client's output, a line at a time, each cut at what the log keeps of a line
    (``MAX_LINE_CHARS``): the rest of a longer one is read and dropped as it comes. A
    step that prints without a newline makes one line of the client's output, as long
    as the engine lets a step's log grow (gigabytes), and past ``LONGEST_CLIENT_LINE``
    the build is stopped with a ``BuildFailure``: the client could no longer follow it."""
    limit = MAX_LINE_CHARS * 4  # bytes of UTF-8 that hold that many characters
    length = 0
    while piece := stream.readline(limit):
        if length == 0:
            yield piece
        length = 0 if piece.endswith(b"\n") else length + len(piece)
        if length > LONGEST_CLIENT_LINE:
            raise BuildFailure(
                f"A build step printed more than {LONGEST_CLIENT_LINE // 2**20} MiB without "
                "a line break; Docker's build client stops following a build at such "
                "output, so the build was stopped.",
                suggestions=["Print line by line, or send such output to a file "
                             "(command > /tmp/output.log)."])


def run_build(request: BuildRequest, config: Config, workdir: Path,
              say: Callable[[str], None], guard: PhaseGuard) -> str:
    """Build as ``request`` says on this worker's engine; return the image id.

    Every progress line goes to ``say`` as it arrives. Raises ``BuildFailure``
    with an explained message, or the guard's reason when the build was stopped.
    """
    iidfile = workdir / "image-id"
    iidfile.unlink(missing_ok=True)
    env = client_environment(config)
    with open(request.context, "rb") as context:
        argv = build_command(request, iidfile)
        argv[1:1] = cli_flags(config)  # a remote engine: the same TLS as the SDK's
        client = subprocess.Popen(argv, stdin=context,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True,  # a stop reaches nothing else
                                  preexec_fn=lambda: die_with_parent(signal.SIGKILL), cwd=workdir)
    remove_hook = guard.on_abort(lambda: _kill(client))
    # A frozen engine sends nothing, as a quiet step does: probed while the output
    # is silent, it stops the build long before the build's deadline.
    engine = SilenceWatch("the Docker engine", lambda: check_docker(config),
                          config.service_wait)
    remove_watch = guard.watch(engine.gone_too_long)
    recent: collections.deque[str] = collections.deque(maxlen=40)
    last = ""
    assert client.stdout is not None
    try:
        for raw in client_lines(client.stdout):
            engine.heard()
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")[:MAX_LINE_CHARS]
            say(line)
            output = step_output(shown_line(line))
            if output is not None:
                recent.append(output)
            if line.strip():
                last = line
        client.wait()
    finally:
        remove_hook()
        remove_watch()
        if client.poll() is None:
            _kill(client)
            client.wait()
    guard.check()
    if client.returncode != 0:
        if _CONTEXT_LOST.search(last):
            raise EngineFault(explain_failure(last, [], config.build_memory))
        raise BuildFailure(explain_failure(last, list(recent), config.build_memory,
                                           config.build_pids if config.limit_build_cgroup
                                           else 0),
                           suggestions=failure_suggestions(last),
                           cause=failure_cause(last, list(recent)))
    image_id = iidfile.read_text().strip() if iidfile.exists() else ""
    if not image_id:
        raise BuildFailure("Docker reported no image for the build.", cause=FailureCause.FARM)
    return image_id


def _kill(client: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(client.pid, signal.SIGKILL)

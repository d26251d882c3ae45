"""A Docker engine that freezes in the middle of a build is noticed while the build's
stream is silent, not only at the build's deadline (up to ``BINDER_BUILD_TIMEOUT``):
once it has not answered for ``BINDER_SERVICE_WAIT`` the phase is given back, the
farm's fault. An engine that answers while a step is quiet lets the build go on."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

import pytest

from common.clock import utcnow
from common.config import load_config
from common.errors import BuildFailure, EngineFault
from common.log_store import MAX_LINE_CHARS
from common.models import FailureCause, Phase
from tests.support.outage_clock import Clock
from workers import guard as guard_module
from workers import image_build, silence_watch
from workers.guard import PhaseGuard
from workers.outages import OutageTooLong
from workers.silence_watch import QUIET_SECONDS, SilenceWatch

BOUND = 300.0


class Engine:
    """A fake probe: it answers unless ``frozen``; counts the probes."""

    def __init__(self) -> None:
        self.frozen = False
        self.probes = 0

    def ping(self) -> None:
        self.probes += 1
        if self.frozen:
            raise TimeoutError("the engine did not answer the probe")


def watch(clock: Clock, engine: Engine) -> SilenceWatch:
    return SilenceWatch("the Docker engine", engine.ping, BOUND, clock=clock.monotonic)


def frozen_as_it_fell_quiet() -> tuple[Clock, Engine, SilenceWatch]:
    """A watch whose engine froze as the stream fell quiet: its first probe has just
    failed, which starts the wait."""
    clock, engine = Clock(0.0), Engine()
    silence = watch(clock, engine)
    clock.now = QUIET_SECONDS
    engine.frozen = True
    assert silence.gone_too_long() is None
    return clock, engine, silence


def test_a_stream_that_speaks_is_not_probed() -> None:
    clock, engine = Clock(0.0), Engine()
    engine.frozen = True
    silence = watch(clock, engine)
    for _ in range(100):
        clock.now += QUIET_SECONDS / 2
        silence.heard()
        assert silence.gone_too_long() is None
    assert engine.probes == 0


def test_a_quiet_step_on_an_answering_engine_goes_on() -> None:
    clock, engine = Clock(0.0), Engine()
    silence = watch(clock, engine)
    while clock.now < 10 * BOUND:  # silent for far longer than the bound
        clock.now += 5
        assert silence.gone_too_long() is None
    assert engine.probes > 0


def test_a_frozen_engine_is_given_up_after_the_service_wait() -> None:
    clock, engine, silence = frozen_as_it_fell_quiet()
    clock.now += BOUND - 1
    assert silence.gone_too_long() is None
    clock.now += 1
    reason = silence.gone_too_long()
    assert isinstance(reason, OutageTooLong)
    assert "the Docker engine" in str(reason) and f"{BOUND:g}" in str(reason)


def test_an_engine_back_within_the_wait_starts_the_wait_afresh() -> None:
    clock, engine, silence = frozen_as_it_fell_quiet()
    clock.now += BOUND - 1
    engine.frozen = False
    assert silence.gone_too_long() is None  # back: the outage is over
    engine.frozen = True
    clock.now += BOUND - 1
    assert silence.gone_too_long() is None  # a new outage, with a wait of its own
    clock.now += 1
    assert silence.gone_too_long() is None
    clock.now += BOUND
    assert isinstance(silence.gone_too_long(), OutageTooLong)


def test_output_after_a_failed_probe_ends_the_outage() -> None:
    clock, engine, silence = frozen_as_it_fell_quiet()
    clock.now += BOUND - 1
    silence.heard()  # the stream spoke: the engine answers after all
    clock.now += QUIET_SECONDS
    assert silence.gone_too_long() is None
    clock.now += BOUND - 1
    assert silence.gone_too_long() is None


def test_the_guard_stops_the_phase_for_a_watch_that_gives_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard_module.build_store, "heartbeat", lambda build_id, attempt: False)
    killed: list[bool] = []
    guard = PhaseGuard("b" * 32, 1, Phase.BUILDING, utcnow() + dt.timedelta(hours=1), 60,
                       0.05)
    guard.on_abort(lambda: killed.append(True))
    guard.watch(lambda: OutageTooLong("the Docker engine did not answer for 300 s"))
    with guard, pytest.raises(OutageTooLong):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            guard.raise_if_stopped()
            time.sleep(0.01)
    assert killed == [True]


def test_a_removed_watch_is_not_looked_at(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard_module.build_store, "heartbeat", lambda build_id, attempt: False)
    looked: list[bool] = []
    guard = PhaseGuard("b" * 32, 1, Phase.BUILDING, utcnow() + dt.timedelta(hours=1), 60,
                       0.05)
    guard.watch(lambda: looked.append(True) or None)()
    guard._look_at_watches()
    assert looked == [] and guard.reason is None


class RecordedWatch:
    """Stands for ``SilenceWatch`` in ``run_build``: what the build tells it."""

    made: list[RecordedWatch] = []

    def __init__(self, service: str, probe: object, bound: float) -> None:
        self.service, self.bound, self.heard_lines = service, bound, 0
        RecordedWatch.made.append(self)

    def heard(self) -> None:
        self.heard_lines += 1

    def gone_too_long(self) -> None:
        return None


class WatchedGuard:
    """The part of ``PhaseGuard`` a build uses; keeps what it is asked to watch."""

    def __init__(self) -> None:
        self.reason: BaseException | None = None
        self.watches: list[object] = []

    def on_abort(self, hook: object) -> object:
        return lambda: None

    def watch(self, look: object) -> object:
        self.watches.append(look)
        return lambda: self.watches.remove(look)

    def check(self) -> None:
        pass


def test_a_build_has_its_engine_watched_while_its_output_streams(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = load_config(environ={}, service_wait=120)
    RecordedWatch.made = []
    monkeypatch.setattr(image_build, "SilenceWatch", RecordedWatch)
    monkeypatch.setattr(image_build, "client_environment", lambda config: dict(os.environ))
    watched_during: list[int] = []
    guard = WatchedGuard()

    def build_command(request: object, iidfile: Path) -> list[str]:
        iidfile.write_text("sha256:built")
        return [sys.executable, "-c", "print('step 1'); print('step 2'); print('done')"]
    monkeypatch.setattr(image_build, "build_command", build_command)
    say = lambda line: watched_during.append(len(guard.watches))  # noqa: E731
    context = tmp_path / "context.tar"
    context.write_bytes(b"")
    request = image_build.BuildRequest(context=context, dockerfile="Dockerfile", tag="r/x:t")
    image = image_build.run_build(request, config, tmp_path, say, guard)  # type: ignore[arg-type]
    assert image == "sha256:built"
    [made] = RecordedWatch.made
    assert made.service == "the Docker engine" and made.bound == 120
    assert made.heard_lines == 3
    assert watched_during == [1, 1, 1] and guard.watches == []  # removed once it ended


def test_a_build_whose_engine_stops_answering_is_stopped_as_an_outage(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """End to end in one process: a client that hangs (as one reading a frozen engine
    does) is killed by the guard once the engine's probe has failed for the bound, and
    the build raises ``OutageTooLong``, not a failure. (Whether its first line was read
    before that is a race on a loaded machine, with a bound of nothing.)"""
    monkeypatch.setattr(guard_module.build_store, "heartbeat", lambda build_id, attempt: False)
    monkeypatch.setattr(silence_watch, "QUIET_SECONDS", 0.0)
    monkeypatch.setattr(image_build, "client_environment", lambda config: dict(os.environ))
    frozen = Engine()
    frozen.frozen = True
    monkeypatch.setattr(image_build, "check_docker", lambda config: frozen.ping())
    monkeypatch.setattr(image_build, "build_command", lambda request, iidfile: [
        sys.executable, "-c", "import time; print('step 1', flush=True); time.sleep(30)"])
    config = load_config(environ={}, service_wait=0)
    guard = PhaseGuard("b" * 32, 1, Phase.BUILDING, utcnow() + dt.timedelta(hours=1), 60,
                       0.05)
    context = tmp_path / "context.tar"
    context.write_bytes(b"")
    request = image_build.BuildRequest(context=context, dockerfile="Dockerfile", tag="r/x:t")
    said: list[str] = []
    with guard, pytest.raises(OutageTooLong, match="the Docker engine did not answer"):
        image_build.run_build(request, config, tmp_path, said.append, guard)
    assert said in ([], ["step 1"]) and frozen.probes >= 1


def test_a_line_of_any_length_from_the_client_is_held_cut_at_the_log_line_bound(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A step printing without a newline makes one line of the client's output, kept
    # only as far as the log keeps a line.
    said = _client_printing(
        monkeypatch, tmp_path, "out.write(b'a' * image_build.LONGEST_CLIENT_LINE)\n"
                               "out.write(b'\\nstep 2\\n')")
    assert [len(line) for line in said] == [MAX_LINE_CHARS, len("step 2")]
    assert said[-1] == "step 2"


def test_a_line_the_client_cannot_follow_stops_the_build_saying_so(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pid_file = tmp_path / "client.pid"
    with pytest.raises(BuildFailure) as raised:
        _client_printing(monkeypatch, tmp_path,
                         f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                         "out.write(b'a' * 2 * image_build.LONGEST_CLIENT_LINE)\n"
                         "out.flush(); time.sleep(60)")
    assert str(raised.value) == (
        "A build step printed more than 1 MiB without a line break; Docker's build client "
        "stops following a build at such output, so the build was stopped.")
    assert raised.value.cause is FailureCause.REPOSITORY
    with pytest.raises(ProcessLookupError):  # the client was stopped, not left running
        os.kill(int(pid_file.read_text()), 0)


def _client_printing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                     program: str) -> list[str]:
    """What a build says for a Docker client that runs
    ``program`` (with ``out``, ``os``, ``time`` and ``image_build`` at hand)."""
    RecordedWatch.made = []
    monkeypatch.setattr(image_build, "SilenceWatch", RecordedWatch)
    monkeypatch.setattr(image_build, "client_environment", lambda config: dict(os.environ))
    setup = ("import os, sys, time; out = sys.stdout.buffer\n"
             f"class image_build: LONGEST_CLIENT_LINE = {image_build.LONGEST_CLIENT_LINE}\n")

    def build_command(request: object, iidfile: Path) -> list[str]:
        iidfile.write_text("sha256:built")
        return [sys.executable, "-c", setup + program]
    monkeypatch.setattr(image_build, "build_command", build_command)
    context = tmp_path / "context.tar"
    context.write_bytes(b"")
    request = image_build.BuildRequest(context=context, dockerfile="Dockerfile", tag="r/x:t")
    said: list[str] = []
    image_build.run_build(request, load_config(environ={}), tmp_path,  # type: ignore[arg-type]
                          said.append, WatchedGuard())
    return said


@pytest.mark.parametrize(("last", "fault"), [
    ('ERROR: failed to solve: failed to read downloaded context: failed to load cache key: '
     'Get "http://build-context-u5wvmyfs28fhmo6k9qg9rh7q2": context not found', True),
    ("ERROR: failed to solve: executor failed running [/bin/sh -c false]: exit code: 1",
     False),
])
def test_a_context_the_engine_lost_is_its_fault_and_a_failed_step_the_repositorys(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, last: str, fault: bool) -> None:
    monkeypatch.setattr(image_build, "SilenceWatch", RecordedWatch)
    monkeypatch.setattr(image_build, "client_environment", lambda config: dict(os.environ))
    monkeypatch.setattr(image_build, "build_command", lambda request, iidfile: [
        sys.executable, "-c", f"print({last!r}); raise SystemExit(1)"])
    context = tmp_path / "context.tar"
    context.write_bytes(b"")
    request = image_build.BuildRequest(context=context, dockerfile="Dockerfile", tag="r/x:t")
    with pytest.raises(BuildFailure) as raised:
        image_build.run_build(request, load_config(environ={}), tmp_path,  # type: ignore[arg-type]
                              lambda line: None, WatchedGuard())
    assert isinstance(raised.value, EngineFault) is fault
    assert raised.value.cause == (FailureCause.FARM if fault else FailureCause.REPOSITORY)

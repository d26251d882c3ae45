"""``workers/verify.py``: the bounds the verification run of a built image runs under."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from common.config import load_config
from common.errors import BuildFailure
from common.models import FailureCause
from workers import verify

CONFIG = load_config(environ={})


class FakeContainer:
    """A container that never serves and has written ``written`` bytes to its layer."""

    id = "c0ffee"
    short_id = "c0ffee"
    status = "running"

    def __init__(self, written: int | None, printed: int = 0) -> None:
        self.written = written
        self.printed = printed  # what the image's sh prints when probed
        self.probes: list[dict[str, str]] = []
        self.removed = False

    def reload(self) -> None:
        pass

    def remove(self, force: bool, v: bool) -> None:
        self.removed = True


class FakeClient:
    def __init__(self, container: FakeContainer) -> None:
        self.run_options: dict[str, Any] = {}
        self.container = container
        self.containers = SimpleNamespace(run=self._run)
        self.api = SimpleNamespace(containers=self._listed, exec_create=self._exec_create,
                                   exec_start=self._exec_start, exec_inspect=self._exec_inspect)
        self.read = 0
        self.closed = 0

    def _exec_create(self, container: str, argv: list[str],
                     environment: dict[str, str]) -> dict[str, str]:
        assert container == self.container.id
        self.container.probes.append(environment)
        return {"Id": f"exec{len(self.container.probes)}"}

    def _exec_start(self, exec_id: str, socket: bool) -> FakeOutput:
        assert socket  # read as it comes, never whole
        return FakeOutput(self)

    def _exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return {"ExitCode": 1}  # the port did not answer in time

    def _run(self, image: str, **options: Any) -> FakeContainer:
        self.run_options = options
        return self.container

    def _listed(self, all: bool, size: bool, filters: dict[str, str]) -> list[dict[str, Any]]:  # noqa: A002
        assert all and size and filters == {"id": self.container.id}
        entry: dict[str, Any] = {"Id": self.container.id}
        if self.container.written is not None:
            entry["SizeRw"] = self.container.written
        return [entry]


class FakeOutput:
    """An exec's output connection: 4096-byte frames of what it prints."""

    def __init__(self, client: FakeClient) -> None:
        self.client = client

    def frames(self) -> Iterator[tuple[int, bytes]]:
        for _ in range(self.client.container.printed // 4096):
            self.client.read += 4096
            yield 1, b"x" * 4096

    def close(self) -> None:
        self.client.closed += 1


@pytest.fixture(autouse=True)
def fake_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "frames_iter", lambda output, tty: output.frames())


class FakeGuard:
    def on_abort(self, hook: Callable[[], None]) -> Callable[[], None]:
        return lambda: None

    def check(self) -> None:
        pass


def test_the_verification_run_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeClient(FakeContainer(0))
    monkeypatch.setattr(verify, "docker_client", lambda config, timeout: client)
    with pytest.raises(BuildFailure, match="did not serve"):
        verify.verify_image(CONFIG.replace(verify_timeout=1), "image", 8888, None, "build",
                            lambda line: None, FakeGuard())  # type: ignore[arg-type]
    options = client.run_options
    assert options["network_mode"] == "none" and options["cap_drop"] == ["ALL"]
    assert options["mem_limit"] == options["memswap_limit"] > 0
    assert options["pids_limit"] == verify.VERIFY_PIDS and options["nano_cpus"] > 0
    # no file the image writes grows past the verification's disk (RLIMIT_FSIZE, bytes)
    (fsize,) = [u for u in options["ulimits"] if u["Name"] == "fsize"]
    assert fsize["Soft"] == fsize["Hard"] == verify.VERIFY_DISK
    # nor what it prints, which the engine keeps on its own disk
    assert options["log_config"] == {"Type": "json-file",
                                     "Config": {"max-size": "1m", "max-file": "1"}}


def test_an_image_that_writes_past_the_verification_disk_fails_between_probes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Many files each under the per-file bound: the layer is measured after each probe,
    and no probe waits longer than ``DISK_CHECK_EVERY``, however long verification may
    take."""
    client = FakeClient(FakeContainer(verify.VERIFY_DISK + 1))
    monkeypatch.setattr(verify, "docker_client", lambda config, timeout: client)
    with pytest.raises(BuildFailure) as caught:
        verify.verify_image(CONFIG.replace(verify_timeout=600), "image", 8888, None, "build",
                            lambda line: None, FakeGuard())  # type: ignore[arg-type]
    assert caught.value.message == ("The image wrote more than 1G to its disk while it was "
                                    "verified, which this farm does not allow.")
    assert caught.value.cause == FailureCause.VERIFICATION
    probes = client.container.probes
    assert [float(p["SECONDS_LEFT"]) for p in probes] == [verify.DISK_CHECK_EVERY]
    assert client.container.removed


@pytest.mark.parametrize("written", [None, verify.VERIFY_DISK])
def test_an_image_within_the_verification_disk_is_probed_until_its_time_is_up(
        monkeypatch: pytest.MonkeyPatch, written: int | None) -> None:
    client = FakeClient(FakeContainer(written))
    monkeypatch.setattr(verify, "docker_client", lambda config, timeout: client)
    with pytest.raises(BuildFailure, match="did not serve on port 8888 within 1 s"):
        verify.verify_image(CONFIG.replace(verify_timeout=1), "image", 8888, None, "build",
                            lambda line: None, FakeGuard())  # type: ignore[arg-type]


def test_what_the_images_own_shell_prints_when_probed_is_never_held(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe runs the image's sh and python3, which may print without end: it is read
    and dropped, and past a bound the verification fails."""
    client = FakeClient(FakeContainer(0, printed=1024**3))
    monkeypatch.setattr(verify, "docker_client", lambda config, timeout: client)
    with pytest.raises(BuildFailure) as caught:
        verify.verify_image(CONFIG.replace(verify_timeout=600), "image", 8888, None, "build",
                            lambda line: None, FakeGuard())  # type: ignore[arg-type]
    assert caught.value.message.startswith("Probing port 8888 inside the image printed more "
                                           "than 64K")
    assert client.read <= verify.PROBE_OUTPUT + 4096
    assert client.closed == 1  # the engine would not remove the container otherwise
    assert client.container.removed

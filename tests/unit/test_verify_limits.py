"""``workers/verify.py``: the bounds the verification run of a built image runs under."""

from __future__ import annotations

from collections.abc import Callable
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

    def __init__(self, written: int | None) -> None:
        self.written = written
        self.probes: list[dict[str, str]] = []
        self.removed = False

    def exec_run(self, argv: list[str], environment: dict[str, str]) -> Any:
        self.probes.append(environment)
        return SimpleNamespace(exit_code=1)  # the port did not answer in time

    def reload(self) -> None:
        pass

    def remove(self, force: bool, v: bool) -> None:
        self.removed = True


class FakeClient:
    def __init__(self, container: FakeContainer) -> None:
        self.run_options: dict[str, Any] = {}
        self.container = container
        self.containers = SimpleNamespace(run=self._run)
        self.api = SimpleNamespace(containers=self._listed)

    def _run(self, image: str, **options: Any) -> FakeContainer:
        self.run_options = options
        return self.container

    def _listed(self, all: bool, size: bool, filters: dict[str, str]) -> list[dict[str, Any]]:  # noqa: A002
        assert all and size and filters == {"id": self.container.id}
        entry: dict[str, Any] = {"Id": self.container.id}
        if self.container.written is not None:
            entry["SizeRw"] = self.container.written
        return [entry]


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

"""The benchmark's own farm: services, two Docker hosts, a Git server, package indexes.

``Lab.open(root)`` starts everything a run needs on loopback and returns the
lab; ``close()`` stops it. Under ``root`` (``.bench-data``) only the engine
of host A and the registry storage, each holding just the base image and the
Debian root, and the downloaded wheels outlive a run, so a second run reuses
them; everything else (images built by hand or by the farm) is removed.
Builds run on the lab's engines only, whose caches the scenarios may prune.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker import DockerClient

from bench.services import (
    KEPT_REPOSITORIES,
    Daemon,
    forget_pushed_images,
    mongo_daemon,
    redis_daemon,
    registry_daemon,
)
from bench.wheelhouse import ensure_wheelhouse, write_simple_index
from tests.support.docker_engine import DockerEngine
from tests.support.farm import ApiClient, Farm, Process
from tests.support.git_server import GitServer
from tests.support.pypi_index import make_index, make_wheel
from tests.support.static_http import serve_directory
from workers.image_build import DOCKER_CLI

SMALL_PACKAGE = "bench-pkg"
HOSTS = ("a", "b")
#: Images host A keeps between runs: the base image, the Debian root it is built on.
KEPT_IMAGES = (*KEPT_REPOSITORIES, "binder-rootfs")


@dataclass
class Lab:
    root: Path
    run_dir: Path
    engines: dict[str, DockerEngine]
    daemons: list[Daemon]
    git: GitServer
    env: dict[str, str]
    farm: Farm
    api: ApiClient
    workers: dict[str, Process] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def registry(self) -> str:
        return self.env["BINDER_REGISTRY"]

    @property
    def base_image(self) -> str:
        """The farm's base image (what its workers build FROM), in the lab's registry."""
        from common.config import load_config

        return str(load_config().base_image_name)

    def repo_url(self, path: str) -> str:
        return f"{self.git.url}/gh/{path}"

    # hosts and workers

    def engine_env(self, host: str) -> dict[str, str]:
        return {"DOCKER_HOST": self.engines[host].host}

    def start_worker(self, host: str, concurrency: int = 1, name: str | None = None) -> Process:
        """A worker on host ``host``'s engine; ``name`` tells apart several per host."""
        worker_id = name or f"host-{host}"
        process = self.farm.start(f"worker-{worker_id}",
                                  ["worker", "--concurrency", str(concurrency)],
                                  {"BINDER_WORKER_ID": worker_id, **self.engine_env(host)})
        self.farm.wait_worker(worker_id, process)
        self.workers[worker_id] = process
        return process

    def stop_worker(self, worker_id: str) -> None:
        process = self.workers.pop(worker_id)
        process.stop()
        self.farm.processes.remove(process)

    def docker(self, host: str, *args: str, buildkit: bool = True,
               stdin: Any = None) -> subprocess.CompletedProcess[str]:
        """The Docker client on host ``host``, as a person would type it."""
        env = {"PATH": os.environ["PATH"], "DOCKER_HOST": self.engines[host].host,
               "DOCKER_BUILDKIT": "1" if buildkit else "0",
               "DOCKER_CONFIG": str(self.run_dir / "docker-config")}
        done = subprocess.run([DOCKER_CLI, *args], env=env, stdin=stdin, text=True,
                              capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:2])} on host {host} failed "
                               f"({done.returncode}): {done.stderr[-2000:]}")
        return done

    def client(self, host: str) -> DockerClient:
        return self.engines[host].client(timeout=600)

    def cold(self, *hosts: str) -> None:
        """Forget every layer and cache mount the engines built (not the base image),
        the baselines' by-hand images included; then write out what the last run left
        in the page cache.

        A build and push leave hundreds of megabytes dirty, which the kernel writes
        back about 30 s later: in the middle of the next timed run, whichever side
        of a comparison that is. Flushed here, before the clock starts, no run pays
        for the one before it.
        """
        for host in hosts or HOSTS:
            self.forget_images(host)
        os.sync()

    def forget_images(self, host: str) -> None:
        """Remove every image and build cache of host ``host`` but the base and root images."""
        client = self.client(host)
        for image in client.images.list():
            if not any(tag.rsplit(":", 1)[0].rsplit("/", 1)[-1] in KEPT_IMAGES
                       for tag in image.tags):
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(image.id, force=True)
        client.close()
        self.docker(host, "builder", "prune", "--all", "--force")

    def close(self) -> None:
        self.farm.stop()
        self._stack.close()
        with contextlib.suppress(Exception):  # best effort: the next run starts cold anyway
            self.forget_images("a")
        for daemon in reversed(self.daemons):
            daemon.stop()
        forget_pushed_images(self.run_dir / "registry.yml", self.root / "registry")
        for name, engine in self.engines.items():
            if name == "a":
                engine.stop(remove=False)
            else:
                engine.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def open(cls, root: Path, say: Any = print, base: bool = True) -> Iterator[Lab]:
        """The lab; ``base`` makes sure the base image is in its registry (scenarios that build)."""
        root.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=root))
        stack = contextlib.ExitStack()
        engines: dict[str, DockerEngine] = {}
        daemons: list[Daemon] = []
        lab: Lab | None = None
        try:
            say("starting the lab's Redis, Mongo wire server, registry and engines")
            for daemon in (redis_daemon(run_dir), mongo_daemon(run_dir),
                           registry_daemon(run_dir, root / "registry")):
                daemons.append(daemon.start())
            redis, mongo, registry = daemons
            engines["a"] = DockerEngine(root / "engine-a", "bench-a").start()
            engines["b"] = DockerEngine(run_dir / "engine-b", "bench-b").start()
            say("downloading the scientific wheels (once)")
            wheels = ensure_wheelhouse(root / "wheels")
            science = write_simple_index(run_dir / "science-index", wheels)
            small = make_index(run_dir / "small-index", [make_wheel(SMALL_PACKAGE, "1.0")])
            science_url = stack.enter_context(serve_directory(science))
            small_url = stack.enter_context(serve_directory(small))
            git = GitServer(run_dir / "git").start()
            stack.callback(git.stop)
            run = uuid.uuid4().hex[:6]
            env = {
                "BINDER_API_KEY": f"bench-{run}", "BINDER_DATA_DIR": str(run_dir / "farm"),
                "MONGO_URL": f"mongodb://{mongo.address}", "BINDER_MONGO_DB": "binder_bench",
                "REDIS_URL": f"redis://{redis.address}/0", "BINDER_REGISTRY": registry.address,
                "BINDER_IMAGE_PREFIX": "bench-", "BINDER_BUILD_NETWORK": "host",
                "BINDER_GITHUB_URL": f"{git.url}/gh", "BINDER_ALLOWED_SOURCE_HOSTS": git.host,
                "BINDER_PIP_INDEX_URL": f"{science_url}/simple/",
                "BINDER_LIMIT_BUILD_CGROUP": "true", "BINDER_MIN_FREE_DISK_MB": "100",
                "DOCKER_HOST": engines["a"].host,
                "BENCH_SMALL_INDEX": f"{small_url}/simple/",
            }
            os.environ.update(env)
            (run_dir / "farm").mkdir()
            (run_dir / "docker-config").mkdir()
            (run_dir / "docker-config" / "config.json").write_text("{}")
            farm = Farm(env, run_dir / "logs")
            lab = cls(root, run_dir, engines, daemons, git, env, farm,
                      ApiClient("", env["BINDER_API_KEY"]), _stack=stack)
            if base:
                ensure_base(lab, say)
            _, url = farm.start_api()
            lab.api = ApiClient(url, env["BINDER_API_KEY"])
            yield lab
        finally:
            if lab is not None:
                lab.close()
            else:
                stack.close()
                for daemon in reversed(daemons):
                    daemon.stop()
                for engine in engines.values():
                    engine.stop()


def base_of(made: list[Any]) -> Any:
    """The base image among images carrying its recipe label.

    Every image built FROM the base inherits that label, and a run that
    stopped early leaves its built images behind: the base is the one with
    the fewest layers (a tie, from steps that add none, goes to a base tag).
    """
    def rank(image: Any) -> tuple[int, bool]:
        named = any(tag.rsplit(":", 1)[0].rsplit("/", 1)[-1] == "binder-base"
                    for tag in image.tags)
        return len(image.attrs["RootFS"]["Layers"]), not named

    return min(made, key=rank)


def ensure_base(lab: Lab, say: Any) -> None:
    """The base image in the lab's registry and on host B: built once, then reused."""
    from common.config import load_config
    from workers.base_image import RECIPE_LABEL, ensure_base_image, recipe_hash

    config = load_config()
    client = lab.client("a")
    made = client.images.list(filters={"label": f"{RECIPE_LABEL}={recipe_hash(config)}"})
    if made:  # built by an earlier run, tagged for that run's registry port
        base_of(made).tag(lab.base_image)
    started = time.monotonic()
    ensure_base_image(config, say=lambda line: say(f"  {line}"))
    # Pushed from host A even when the registry holds it: an engine that has not
    # pushed to this registry yet would upload the base's layers again with the
    # first image a scenario times (cheap when the engine already knows them).
    lab.docker("a", "push", lab.base_image)
    say(f"base image ready in {time.monotonic() - started:.0f} s")
    client.close()

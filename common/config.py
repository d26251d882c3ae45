"""Typed configuration: the only reader of the process environment.

Every setting is declared once in ``SETTINGS`` with its type, default,
environment variable and a help line. Values are layered: defaults, then an
optional config file (``BINDER_CONFIG`` or ``--config``; JSON like the
original ``conf/main.json``, or TOML), then the environment, then explicit
overrides (tests, the app factory).
"""

from __future__ import annotations

import json
import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.service_credentials import with_service_credentials


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


@dataclass(frozen=True)
class Setting:
    """One setting: its attribute name, environment variable, type and help."""

    name: str
    env: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str


SETTINGS: tuple[Setting, ...] = (
    Setting("api_key", "BINDER_API_KEY", "",
            "Key for authorized requests; generated and saved under the data dir when empty."),
    Setting("host", "BINDER_HOST", "127.0.0.1", "API bind address."),
    Setting("port", "BINDER_PORT", 8082, "API port.", int),
    Setting("flower_port", "BINDER_FLOWER_PORT", 5555, "Flower port (make up).", int),
    Setting("data_dir", "BINDER_DATA_DIR", "./.binder-data",
            "Work dirs, embedded Mongo data, registry storage, logs."),
    Setting("mongo_url", "MONGO_URL", "",
            "MongoDB URL; empty means the embedded Mongo wire server on 127.0.0.1:27017. "
            "A loopback URL that does not answer is started locally."),
    Setting("mongo_db", "BINDER_MONGO_DB", "binder", "MongoDB database name."),
    Setting("mongo_timeout_ms", "BINDER_MONGO_TIMEOUT_MS", 1500,
            "Server selection timeout; bounds how long a request waits for MongoDB.", int),
    Setting("redis_url", "REDIS_URL", "redis://127.0.0.1:6379/0",
            "Celery broker and live log streams."),
    Setting("credentials_file", "BINDER_CREDENTIALS_FILE", "",
            "Credentials of the local Redis, Mongo wire server and registry, made (mode 0600) "
            "when the farm first starts them; empty means DATA_DIR/credentials.json."),
    Setting("broker_prefix", "BINDER_BROKER_PREFIX", "",
            "Prefix of every Redis key of the broker, so several farms can share a Redis."),
    Setting("docker_host", "DOCKER_HOST", "unix:///var/run/docker.sock",
            "Docker engine of this worker."),
    Setting("registry", "BINDER_REGISTRY", "127.0.0.1:5000",
            "Registry host:port images are pushed to."),
    Setting("registry_username", "BINDER_REGISTRY_USERNAME", "", "Registry user name."),
    Setting("registry_password", "BINDER_REGISTRY_PASSWORD", "", "Registry password."),
    Setting("registry_insecure", "BINDER_REGISTRY_INSECURE", True,
            "Talk plain http to the registry API (local registries).", _bool),
    Setting("image_prefix", "BINDER_IMAGE_PREFIX", "binder-", "Prefix of built image names."),
    Setting("base_image", "BINDER_BASE_IMAGE", "",
            "Base image for generated Dockerfiles; empty means REGISTRY/binder-base:latest."),
    Setting("base_root_image", "BINDER_BASE_ROOT", "",
            "Image the base image recipe starts FROM (e.g. debian:bookworm-slim); "
            "empty builds a Debian root locally with debootstrap."),
    Setting("github_url", "BINDER_GITHUB_URL", "https://github.com",
            "Base URL of the GitHub source (GitHub Enterprise, tests)."),
    Setting("allowed_source_hosts", "BINDER_ALLOWED_SOURCE_HOSTS", (),
            "Extra host[:port] allowed as repository hosts even on loopback or private "
            "addresses; only they may use plain http.", _csv),
    Setting("pip_index_url", "BINDER_PIP_INDEX_URL", "",
            "pip index of builds; credentials in it stay on the host (see BINDER_PIP_PROXY)."),
    Setting("pip_proxy", "BINDER_PIP_PROXY", "127.0.0.1:3141",
            "host:port where a worker serves its pip index to builds, adding the "
            "credentials of BINDER_PIP_INDEX_URL; builds must reach it."),
    Setting("conda_channels", "BINDER_CONDA_CHANNELS", ("conda-forge",),
            "Conda channels (names or URLs) of environment.yml builds, used instead of the "
            "file's own.", _csv),
    Setting("build_network", "BINDER_BUILD_NETWORK", "host",
            "Docker network mode of builds and verification runs (see Production)."),
    Setting("config_order", "BINDER_CONFIG_ORDER",
            ("requirements.txt", "environment.yml", "Dockerfile"),
            "Config files by precedence; the first present one is built.", _csv),
    Setting("allowed_base_images", "BINDER_ALLOWED_BASE_IMAGES", (),
            "Images a repository Dockerfile may pull (FROM, COPY --from, ...); an entry "
            "without a tag allows all its tags; empty allows any.", _csv),
    Setting("default_port", "BINDER_DEFAULT_PORT", 8888, "Template port by default.", int),
    Setting("default_memory", "BINDER_DEFAULT_MEMORY", "2G", "Template memory limit by default."),
    Setting("default_cpu", "BINDER_DEFAULT_CPU", "1", "Template CPU limit by default."),
    Setting("max_memory", "BINDER_MAX_MEMORY", "64G",
            "Most memory a repository's .binder.yml may ask for."),
    Setting("max_cpu", "BINDER_MAX_CPU", 64.0,
            "Most CPUs a repository's .binder.yml may ask for.", float),
    Setting("build_memory", "BINDER_BUILD_MEMORY", "4G", "Memory limit of a Docker build."),
    Setting("build_timeout", "BINDER_BUILD_TIMEOUT", 3600,
            "Seconds a whole build may take.", int),
    Setting("clone_timeout", "BINDER_CLONE_TIMEOUT", 300, "Seconds a clone may take.", int),
    Setting("push_timeout", "BINDER_PUSH_TIMEOUT", 900, "Seconds a push may take.", int),
    Setting("max_repo_mb", "BINDER_MAX_REPO_MB", 1024, "Largest checkout accepted, in MiB.", int),
    Setting("verify", "BINDER_VERIFY", True,
            "Start each built image and wait for its port before completing.", _bool),
    Setting("verify_timeout", "BINDER_VERIFY_TIMEOUT", 90,
            "Seconds a built image has to answer on its port.", int),
    Setting("worker_id", "BINDER_WORKER_ID", "",
            "Host id of this worker (its queue is host.<id>); defaults to the hostname."),
    Setting("heartbeat_interval", "BINDER_HEARTBEAT_INTERVAL", 5,
            "Seconds between lease heartbeats.", int),
    Setting("heartbeat_stale", "BINDER_HEARTBEAT_STALE", 60,
            "Seconds without heartbeat before a build counts as lost.", int),
    Setting("max_attempts", "BINDER_MAX_ATTEMPTS", 3,
            "Attempts before a repeatedly lost build is failed.", int),
    Setting("reaper_interval", "BINDER_REAPER_INTERVAL", 15.0,
            "Seconds between reaper runs.", float),
    Setting("log_stream_max", "BINDER_LOG_STREAM_MAX", 10000,
            "Lines kept in a build's live Redis stream.", int),
    Setting("max_request_bytes", "BINDER_MAX_REQUEST_BYTES", 65536,
            "Largest request body accepted.", int),
    Setting("gc_high_percent", "BINDER_GC_HIGH_PERCENT", 85,
            "Disk use (%) above which old built images are removed.", int),
    Setting("gc_low_percent", "BINDER_GC_LOW_PERCENT", 70,
            "Disk use (%) image removal brings the disk back under.", int),
    Setting("min_free_disk_mb", "BINDER_MIN_FREE_DISK_MB", 2048,
            "Free space a worker needs before it accepts a build.", int),
)

_BY_ENV = {setting.env: setting for setting in SETTINGS}
_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Config:
    """Resolved settings; build one with :func:`load_config`."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def work_root(self) -> Path:
        return self.data_path / "work"

    @property
    def registry_url(self) -> str:
        scheme = "http" if self.registry_insecure else "https"
        return f"{scheme}://{self.registry}"

    @property
    def base_image_name(self) -> str:
        return self.base_image or f"{self.registry}/binder-base:latest"

    @property
    def worker_host(self) -> str:
        return self.worker_id or socket.gethostname()

    def replace(self, **overrides: Any) -> Config:
        return Config({**self.values, **_coerce_all(overrides, source="override")})


def _coerce(setting: Setting, raw: Any, source: str) -> Any:
    if isinstance(raw, str):
        try:
            return setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(
                f"{source}: {setting.env} is not valid: {exc}",
                suggestions=[f"{setting.env}: {setting.help}"],
            ) from exc
    if isinstance(setting.default, tuple) and isinstance(raw, list | tuple):
        return tuple(str(item) for item in raw)
    if isinstance(setting.default, bool) and isinstance(raw, bool):
        return raw
    if isinstance(setting.default, int | float) and isinstance(raw, int | float) \
            and not isinstance(raw, bool):
        if isinstance(setting.default, int) and raw != int(raw):
            raise ConfigError(f"{source}: {setting.env} must be a whole number, got {raw!r}",
                              suggestions=[f"{setting.env}: {setting.help}"])
        return type(setting.default)(raw)
    raise ConfigError(
        f"{source}: {setting.env} should be {type(setting.default).__name__}, got {raw!r}",
        suggestions=[f"{setting.env}: {setting.help}"],
    )


def _coerce_all(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    values = {}
    for key, value in raw.items():
        setting = _BY_NAME.get(key) or _BY_ENV.get(key)
        if setting is None:
            known = ", ".join(sorted(_BY_ENV))
            raise ConfigError(f"{source}: unknown setting {key!r}", suggestions=[f"Known: {known}"])
        values[setting.name] = _coerce(setting, value, source)
    return values


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON or TOML config file; keys are setting names or variables."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}",
                          suggestions=["Check BINDER_CONFIG or --config."]) from exc
    try:
        data = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {file} is not valid: {exc}",
                          suggestions=["Use JSON (.json) or TOML (.toml)."]) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {file} must hold an object of settings")
    return _coerce_all(translate_original(data), source=str(file))


def translate_original(data: dict[str, Any]) -> dict[str, Any]:
    """Accept the original binder-build ``conf/main.json`` shape beside flat keys.

    ``{"port": 8082, "apiKey": K, "db": {"host", "port"}, "docker": {"registry"},
    "logging": {...}}``: ``db`` becomes ``MONGO_URL``, ``docker.registry``
    ``BINDER_REGISTRY``; the original's logging section has no counterpart.
    """
    result = dict(data)
    result.pop("logging", None)
    if "apiKey" in result:
        result["api_key"] = result.pop("apiKey")
    db = result.pop("db", None)
    if isinstance(db, dict):
        result["mongo_url"] = f"mongodb://{db.get('host', '127.0.0.1')}:{db.get('port', 27017)}"
    docker = result.pop("docker", None)
    if isinstance(docker, dict) and docker.get("registry"):
        result["registry"] = docker["registry"]
    return result


def load_config(
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
    **overrides: Any,
) -> Config:
    """Layer defaults, the config file, the environment and ``overrides``."""
    env = os.environ if environ is None else environ
    values = {setting.name: setting.default for setting in SETTINGS}
    path = config_file or env.get("BINDER_CONFIG")
    if path:
        values.update(read_config_file(path))
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.name] = _coerce(setting, env[setting.env], "environment")
    values.update(_coerce_all(overrides, source="override"))
    return Config(values)


def environment_for(config: Config) -> dict[str, str]:
    """The environment variables that reproduce ``config`` in a child process."""
    result = {}
    for setting in SETTINGS:
        value = config.values[setting.name]
        if isinstance(value, tuple):
            result[setting.env] = ",".join(value)
        elif isinstance(value, bool):
            result[setting.env] = "true" if value else "false"
        else:
            result[setting.env] = str(value)
    return result


def describe_settings() -> list[tuple[str, str, str]]:
    """(variable, default, help) rows, for the CLI and the README table."""
    return [(s.env, str(s.default), s.help) for s in SETTINGS]


_current: Config | None = None


def get_config() -> Config:
    """The process-wide configuration, loaded from the environment once.

    The local services' credentials (see ``common/service_credentials.py``)
    are added here, so every process that reaches them uses them.
    """
    global _current
    if _current is None:
        _current = with_service_credentials(load_config())
    return _current


def set_config(config: Config | None) -> None:
    """Replace the process-wide configuration (app factory, tests)."""
    global _current
    _current = config


__all__ = [
    "Config", "Setting", "SETTINGS", "load_config", "get_config", "set_config",
    "environment_for", "describe_settings", "read_config_file",
]

"""Typed configuration: the only reader of the process environment.

Every setting is declared once in ``SETTINGS`` with its type, default,
environment variable and a help line. Values are layered: defaults, then an
optional config file (``BINDER_CONFIG`` or ``--config``; JSON like the
original ``conf/main.json``, or TOML), then the environment, then explicit
overrides (tests, the app factory).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.errors import ConfigError
from common.rates import check_rate
from common.service_credentials import with_service_credentials
from common.sizes import parse_size


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


_PARSERS: dict[type, Callable[[str], Any]] = {
    bool: _bool, int: int, float: float, tuple: _csv, str: str}


def setting(env: str, default: Any, help: str, choices: tuple[str, ...] = (),
            seen_by_builds: bool = False, check: Callable[[Any], object] | None = None,
            login_stays_on_host: bool = False) -> Any:
    """Declare a setting: its environment variable, default and help line, the
    only values it takes when it has ``choices`` (a word, in any case),
    whether its value is written into builds (``seen_by_builds``: generated
    Dockerfiles and build logs, which repository code reads), so that it may
    hold no credentials (but a user name and password when
    ``login_stays_on_host``: a host-side proxy adds them, builds see the rest
    of the URL), and a ``check`` that raises ``ValueError`` (saying what the
    value must be) for a value the farm could not use.

    The default's type says how the environment's text is parsed (booleans
    accept true/false/1/0, tuples are comma-separated lists).
    """
    return field(default=default, metadata={"env": env, "help": help, "choices": choices,
                                            "seen_by_builds": seen_by_builds, "check": check,
                                            "login_stays_on_host": login_stays_on_host})


def _at_least_one(value: int) -> None:
    if value < 1:
        raise ValueError("must be at least 1")


def _port(value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValueError("must be a port number from 1 to 65535")


def _percent(value: int) -> None:
    if not 0 <= value <= 100:
        raise ValueError("must be a percentage from 0 to 100")


def _not_negative(value: int) -> None:
    if value < 0:
        raise ValueError("must be 0 or more")


def _host_and_port(value: str) -> None:
    # Image names start with it and the registry's API URL is made of it
    # (see registry_url), so a scheme or a path would break both.
    if "://" in value:
        raise ValueError(f"must be HOST[:PORT] without a scheme, such as "
                         f"{value.split('://', 1)[1].split('/', 1)[0]!r} (plain http or "
                         f"https is BINDER_REGISTRY_INSECURE's choice)")
    if not value or "/" in value:
        raise ValueError("must be HOST[:PORT] alone, such as 127.0.0.1:5000")


#: conda's own form of a token in a channel URL (``https://HOST/t/TOKEN/CHANNEL``).
_CONDA_TOKEN = re.compile(r"/t/[^/]+")


def credentials_in(url: str, login_stays_on_host: bool = False) -> str | None:
    """What kind of credentials ``url`` carries (a user name or password unless
    ``login_stays_on_host``, a conda token, a query string), or ``None``; the
    description never repeats them.

    Any query string counts: a token can hide under any parameter name
    (``?token=``, ``?access_token=``, a signature), and no package tool needs
    one on a mirror or index URL (pip, conda, R and apt append paths to it).
    """
    if "://" not in url:
        return None  # a conda channel's name
    parts = urlsplit(url)
    if "@" in parts.netloc and not login_stays_on_host:
        return "a user name or password"
    if _CONDA_TOKEN.search(parts.path):
        return "a token (/t/...)"
    if parts.query:
        return "a query string (?...), where tokens are passed"
    return None


#: The networks BuildKit runs build steps on: it takes no named network.
BUILD_NETWORKS = ("default", "host", "none")
#: The installers of Python requirements a build may run.
PYTHON_INSTALLERS = ("uv", "pip")


@dataclass(frozen=True)
class Config:
    """Every setting of the farm, typed; build one with :func:`load_config`.

    Adding a setting is one line here (and its README row, which a test checks).
    """

    api_key: str = setting("BINDER_API_KEY", "",
        "Key of scope admin; generated and saved under the data dir when empty.")
    api_keys: tuple[str, ...] = setting("BINDER_API_KEYS", (),
        "More keys, comma-separated NAME:SCOPE:KEY (scope read, build or admin); all valid "
        "at once.")
    api_keys_file: str = setting("BINDER_API_KEYS_FILE", "",
        "File of NAME:SCOPE:KEY lines, read again when it changes (rotation without a "
        "restart).")
    public_reads: bool = setting("BINDER_PUBLIC_READS", True,
        "Build status, history, logs and the build list need no key.")
    start_rate_per_key: str = setting("BINDER_START_RATE_PER_KEY", "600/hour",
        "Starts one key may make (N/minute, N/hour, N/day); empty for no limit; admin keys "
        "have none.", check=check_rate)
    start_rate_per_repo: str = setting("BINDER_START_RATE_PER_REPO", "120/hour",
        "Starts of one repository, from all keys together; empty for no limit.",
        check=check_rate)
    banned_repos: tuple[str, ...] = setting("BINDER_BANNED_REPOS", (),
        "Regular expressions (comma-separated; a list in a config file): a repository URL "
        "one of them finds is refused.")
    host: str = setting("BINDER_HOST", "127.0.0.1", "API bind address.")
    port: int = setting("BINDER_PORT", 8082, "API port.", check=_port)
    api_workers: int = setting("BINDER_API_WORKERS", 0,
        "API worker processes; 0 is two per core plus one.")
    api_threads: int = setting("BINDER_API_THREADS", 16,
        "Threads of each API worker process (requests one process serves at once); a log "
        "followed live holds one while its build runs or until its client leaves (given back "
        "within a poll) or takes nothing of it for a minute, and two are kept for other "
        "requests.")
    flower_port: int = setting("BINDER_FLOWER_PORT", 5555, "Flower port (make up).",
        check=_port)
    flower_user: str = setting("BINDER_FLOWER_USER", "binder", "Flower's basic-auth user name.")
    flower_password: str = setting("BINDER_FLOWER_PASSWORD", "",
        "Flower's basic-auth password (no commas); generated and saved under the data dir when "
        "empty.")
    data_dir: str = setting("BINDER_DATA_DIR", "./.binder-data",
        "Work dirs, embedded Mongo data, registry storage, logs.")
    mongo_url: str = setting("MONGO_URL", "",
        "MongoDB URL; empty means the embedded Mongo wire server on 127.0.0.1:27017. A loopback "
        "URL that does not answer is started locally.")
    mongo_db: str = setting("BINDER_MONGO_DB", "binder", "MongoDB database name.")
    mongo_timeout_ms: int = setting("BINDER_MONGO_TIMEOUT_MS", 1500,
        "Longest wait for one MongoDB operation (connect, select, answer): a request "
        "answers noDatabase after it when MongoDB is down or hung.")
    redis_url: str = setting("REDIS_URL", "redis://127.0.0.1:6379/0",
        "Celery broker and live log streams.")
    credentials_file: str = setting("BINDER_CREDENTIALS_FILE", "",
        "Credentials of the local Redis, Mongo wire server and registry, made (mode 0600) when "
        "the farm first starts them; empty means DATA_DIR/credentials.json.")
    broker_prefix: str = setting("BINDER_BROKER_PREFIX", "",
        "Prefix of every Redis key of the broker, so several farms can share a Redis.")
    docker_host: str = setting("DOCKER_HOST", "unix:///var/run/docker.sock",
        "Docker engine of this worker: unix:///PATH, or tcp://HOST:PORT with the TLS "
        "settings below (plain TCP is refused).")
    docker_tls_ca: str = setting("BINDER_DOCKER_TLS_CA", "",
        "CA certificate (PEM file) the worker checks a tcp:// engine's certificate against.")
    docker_tls_cert: str = setting("BINDER_DOCKER_TLS_CERT", "",
        "Client certificate (PEM file) the worker shows a tcp:// engine.")
    docker_tls_key: str = setting("BINDER_DOCKER_TLS_KEY", "",
        "Private key (PEM file) of that client certificate.")
    registry: str = setting("BINDER_REGISTRY", "127.0.0.1:5000",
        "Registry host:port images are pushed to.", check=_host_and_port)
    registry_username: str = setting("BINDER_REGISTRY_USERNAME", "", "Registry user name.")
    registry_password: str = setting("BINDER_REGISTRY_PASSWORD", "", "Registry password.")
    registry_insecure: bool = setting("BINDER_REGISTRY_INSECURE", True,
        "Talk plain http to the registry API (local registries).")
    image_prefix: str = setting("BINDER_IMAGE_PREFIX", "binder-", "Prefix of built image names.")
    base_image: str = setting("BINDER_BASE_IMAGE", "",
        "Base image for generated Dockerfiles; empty means REGISTRY/binder-base:jupyterlab4.")
    base_root: str = setting("BINDER_BASE_ROOT", "",
        "Image the base image recipe starts FROM (e.g. debian:bookworm-slim); empty builds a "
        "Debian root locally with debootstrap.")
    github_url: str = setting("BINDER_GITHUB_URL", "https://github.com",
        "Base URL of the GitHub provider (GitHub Enterprise, tests).")
    gitlab_url: str = setting("BINDER_GITLAB_URL", "https://gitlab.com",
        "Base URL of the GitLab provider (a self-hosted GitLab, tests).")
    gist_url: str = setting("BINDER_GIST_URL", "https://gist.github.com",
        "Base URL of the Gist provider.")
    zenodo_url: str = setting("BINDER_ZENODO_URL", "https://zenodo.org",
        "Base URL of the Zenodo provider (records pages and API).")
    figshare_url: str = setting("BINDER_FIGSHARE_URL", "https://figshare.com",
        "Base URL of Figshare's article pages.")
    figshare_api_url: str = setting("BINDER_FIGSHARE_API_URL", "https://api.figshare.com/v2",
        "Base URL of Figshare's API.")
    dataverse_urls: tuple[str, ...] = setting("BINDER_DATAVERSE_URLS",
        ("https://dataverse.harvard.edu", "https://borealisdata.ca", "https://dataverse.no"),
        "Dataverse installations datasets and DOIs are fetched from.")
    doi_resolver_url: str = setting("BINDER_DOI_RESOLVER_URL", "https://doi.org",
        "DOI resolver; a DOI is fetched from wherever its redirect leads, if a provider serves "
        "that host.")
    source_tokens: tuple[str, ...] = setting("BINDER_SOURCE_TOKENS", (),
        "Tokens for private repositories, HOST=TOKEN or HOST=USER:TOKEN; used for fetching only.")
    allowed_source_hosts: tuple[str, ...] = setting("BINDER_ALLOWED_SOURCE_HOSTS", (),
        "Extra host[:port] allowed as repository hosts even on loopback or private addresses; "
        "only they may use plain http.")
    pip_index_url: str = setting("BINDER_PIP_INDEX_URL", "",
        "pip index of builds; a user name and password in it stay on the host (see "
        "BINDER_PIP_PROXY), builds see the rest, so no token in its path or query.",
        seen_by_builds=True, login_stays_on_host=True)
    pip_proxy: str = setting("BINDER_PIP_PROXY", "127.0.0.1:3141",
        "host:port where a worker serves its pip index to builds, adding the credentials of "
        "BINDER_PIP_INDEX_URL; builds must reach it (a worker refuses a loopback one that "
        "builds on the bridge or a remote engine cannot).")
    conda_channels: tuple[str, ...] = setting("BINDER_CONDA_CHANNELS", ("conda-forge",),
        "Conda channels (names or URLs) of environment.yml builds, used instead of the file's "
        "own, and of runtime.txt's python-X.Y; builds see them, so no credentials.",
        seen_by_builds=True)
    build_network: str = setting("BINDER_BUILD_NETWORK", "host",
        "Docker network builds run on: default (the engine's bridge), host or none (see "
        "Production); verification runs have no network.", choices=BUILD_NETWORKS)
    config_order: tuple[str, ...] = setting("BINDER_CONFIG_ORDER", ("default",),
        "Environment files by precedence, the first present one is built: `default` "
        "(requirements.txt, environment.yml, Dockerfile, then the others), `repo2docker` "
        "(mybinder.org's: a Dockerfile first) or a comma-separated list of file names; a "
        "`Containerfile` comes right after `Dockerfile` unless the list places it.")
    nb_user: str = setting("BINDER_NB_USER", "jovyan", "User name inside built images.")
    nb_uid: int = setting("BINDER_NB_UID", 1000, "User id inside built images.")
    repo_dir: str = setting("BINDER_REPO_DIR", "",
        "Where the repository is copied in images; empty means the user's home.")
    jupyterhub_version: str = setting("BINDER_JUPYTERHUB_VERSION", "",
        "jupyterhub (for jupyterhub-singleuser) in the base image, to match the operator's "
        "hub; empty takes the recipe's locked version.")
    appendix: str = setting("BINDER_APPENDIX", "",
        "Dockerfile lines appended to every generated build (as BinderHub's appendix).")
    apt_mirror: str = setting("BINDER_APT_MIRROR", "",
        "Debian mirror for the base image and apt.txt (e.g. http://mirror.example/debian); "
        "empty uses http://deb.debian.org/debian; builds see it, so no credentials.",
        seen_by_builds=True)
    cran_url: str = setting("BINDER_CRAN_URL", "https://packagemanager.posit.co/cran/{date}",
        "CRAN-like repository for R packages; `{date}` becomes runtime.txt's date "
        "(a dated snapshot), or `latest` when there is none; builds see it, so no "
        "credentials.", seen_by_builds=True)
    python_installer: str = setting("BINDER_PYTHON_INSTALLER", "uv",
        "Installer of Python requirements in builds: `uv` (uv pip) or `pip`.",
        choices=PYTHON_INSTALLERS)
    allowed_base_images: tuple[str, ...] = setting("BINDER_ALLOWED_BASE_IMAGES", (),
        "Images a repository Dockerfile may pull (FROM, COPY --from, ...); an entry without a "
        "tag allows all its tags; empty allows any.")
    default_port: int = setting("BINDER_DEFAULT_PORT", 8888, "Template port by default.",
        check=_port)
    default_memory: str = setting("BINDER_DEFAULT_MEMORY", "2G",
        "Template memory limit by default.", check=parse_size)
    default_cpu: float = setting("BINDER_DEFAULT_CPU", 1.0,
        "Template CPU limit by default (a number of CPUs).")
    max_memory: str = setting("BINDER_MAX_MEMORY", "64G",
        "Most memory a repository's .binder.yml may ask for.", check=parse_size)
    max_cpu: float = setting("BINDER_MAX_CPU", 64.0,
        "Most CPUs a repository's .binder.yml may ask for.")
    build_memory: str = setting("BINDER_BUILD_MEMORY", "4G",
        "Memory limit of the builds an engine runs at once (the cgroup its BuildKit step "
        "containers run under).", check=parse_size)
    build_pids: int = setting("BINDER_BUILD_PIDS", 4096,
        "Processes and threads the builds an engine runs at once may have together (the "
        "same cgroup's pids limit), so a step that forks without end cannot use up the "
        "host's; 0 for no limit.", check=_not_negative)
    limit_build_cgroup: bool = setting("BINDER_LIMIT_BUILD_CGROUP", True,
        "Set those limits on the engine; turn off where another farm shares the engine or its "
        "operator limits the cgroup.")
    build_timeout: int = setting(
        "BINDER_BUILD_TIMEOUT", 3600,
        "Seconds an attempt of a build may take, from its fetch to its template (a build "
        "restarted after its worker died has the time again).")
    clone_timeout: int = setting("BINDER_CLONE_TIMEOUT", 300, "Seconds a clone may take.")
    cache_resolve_timeout: float = setting("BINDER_CACHE_RESOLVE_TIMEOUT", 1.0,
        "Seconds the API may spend looking a start up in the cache (resolving its ref, "
        "finding its image) to answer it at once, else the build decides; 0 turns it off.")
    push_timeout: int = setting("BINDER_PUSH_TIMEOUT", 900, "Seconds a push may take.")
    max_repo_mb: int = setting("BINDER_MAX_REPO_MB", 1024,
        "Largest checkout or download accepted, in MiB.")
    git_memory_mb: int = setting("BINDER_GIT_MEMORY_MB", 1024,
        "Most memory each git process of a fetch may allocate, in MiB (the refs a host "
        "advertises and the objects git unpacks are held in it); 0 for no limit.")
    max_repo_files: int = setting("BINDER_MAX_REPO_FILES", 100000,
        "Most files and folders an archive or record may hold.")
    max_archive_ratio: int = setting("BINDER_MAX_ARCHIVE_RATIO", 100,
        "Most times its own size an archive may unpack to (zip bombs).")
    verify: bool = setting("BINDER_VERIFY", True,
        "Start each built image and wait for its port before completing.")
    verify_timeout: int = setting("BINDER_VERIFY_TIMEOUT", 90,
        "Seconds a built image has to answer on its port.")
    verify_reuse: bool = setting("BINDER_VERIFY_REUSE", True,
        "Count an image as verified without starting it when an image verified on this host "
        "had the same layers but the repository's files, command and port, and those files "
        "cannot change how it starts (a code-only commit, or another repository with the "
        "same environment).")
    worker_id: str = setting("BINDER_WORKER_ID", "",
        "Host id of this worker (its queue is host.<id>): letters, digits, '.', '-' and "
        "'_'; defaults to the hostname.")
    worker_concurrency: int = setting("BINDER_WORKER_CONCURRENCY", 1,
        "Builds one worker (one Docker host) runs at once; a host running that many takes "
        "no new ones.", check=_at_least_one)
    heartbeat_interval: int = setting("BINDER_HEARTBEAT_INTERVAL", 5,
        "Seconds between heartbeats of a worker and of the builds it runs.")
    heartbeat_stale: int = setting("BINDER_HEARTBEAT_STALE", 60,
        "Seconds a worker may go unheard before the builds it holds count as lost.")
    service_wait: int = setting("BINDER_SERVICE_WAIT", 300,
        "Seconds a worker waits for MongoDB, the broker, its Docker engine or the "
        "registry when one stops answering in the middle of a build, before giving the "
        "build back (the reaper restarts it).")
    max_attempts: int = setting("BINDER_MAX_ATTEMPTS", 3,
        "Attempts before a repeatedly lost build is failed.")
    max_deliveries: int = setting(
        "BINDER_MAX_DELIVERIES", 3,
        "Times one phase of an attempt may start after its worker process died running it "
        "before the build fails.")
    reaper_interval: float = setting("BINDER_REAPER_INTERVAL", 15.0, "Seconds between reaper runs.")
    log_stream_max: int = setting("BINDER_LOG_STREAM_MAX", 10000,
        "Lines kept in a build's live Redis stream.")
    max_request_bytes: int = setting("BINDER_MAX_REQUEST_BYTES", 65536,
        "Largest request body accepted.")
    cors_allow_origin: str = setting("BINDER_CORS_ALLOW_ORIGIN", "",
        "Origins (comma list, or *) whose pages may call the API from a browser; empty: none.")
    keep_images: int = setting("BINDER_KEEP_IMAGES", 5,
        "Registry images kept per build name, newest first (a template's image always); older "
        "ones are deleted from the registry; 0 keeps all.")
    log_retention_days: int = setting("BINDER_LOG_RETENTION_DAYS", 90,
        "Stored logs of builds that ended more than this many days ago are deleted; 0 keeps "
        "all.")
    retention_interval: float = setting("BINDER_RETENTION_INTERVAL", 3600.0,
        "Seconds between retention runs (beat).")
    gc_high_percent: int = setting("BINDER_GC_HIGH_PERCENT", 85,
        "Disk use (%) above which old built images are removed.", check=_percent)
    gc_low_percent: int = setting("BINDER_GC_LOW_PERCENT", 70,
        "Disk use (%) image removal brings the disk back under; at most "
        "BINDER_GC_HIGH_PERCENT.", check=_percent)
    min_free_disk_mb: int = setting("BINDER_MIN_FREE_DISK_MB", 2048,
        "Free space a worker needs before it accepts a build.")

    @property
    def values(self) -> dict[str, Any]:
        """Every setting by attribute name."""
        return {s.name: getattr(self, s.name) for s in SETTINGS}

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def work_root(self) -> Path:
        return self.data_path / "work"

    @property
    def registry_url(self) -> str:
        return registry_url(self.registry, self.registry_insecure)

    @property
    def base_image_name(self) -> str:
        # The tag names the image generation (what built images may assume: user jovyan,
        # JupyterLab 4), so farms of another generation sharing a registry never replace it.
        return self.base_image or f"{self.registry}/binder-base:jupyterlab4"

    @property
    def root_image_name(self) -> str:
        """The farm's Debian root, published for repository Dockerfiles."""
        return f"{self.registry}/binder-root:latest"

    @property
    def home_dir(self) -> str:
        return f"/home/{self.nb_user}"

    @property
    def repo_path(self) -> str:
        return str(self.repo_dir or self.home_dir)

    def __post_init__(self) -> None:
        # Here, not where a value is used: every process refuses it when it starts,
        # however it came (file, environment, override), not each build when it runs.
        for spec in dataclasses.fields(self):
            choices, value = spec.metadata["choices"], getattr(self, spec.name)
            if choices and value not in choices:
                raise ConfigError(
                    f"{spec.metadata['env']} must be one of {', '.join(choices)}, not {value!r}",
                    suggestions=[f"{spec.metadata['env']}: {spec.metadata['help']}"])
            if spec.metadata["check"]:
                _check(spec, value)
            if spec.metadata["seen_by_builds"]:
                _refuse_credentials(spec.metadata["env"], value,
                                    spec.metadata["login_stays_on_host"])
        if self.gc_low_percent > self.gc_high_percent:
            raise ConfigError(
                f"BINDER_GC_LOW_PERCENT ({self.gc_low_percent}) is above "
                f"BINDER_GC_HIGH_PERCENT ({self.gc_high_percent}): image removal would start "
                "and never reach its goal.",
                suggestions=["Set BINDER_GC_LOW_PERCENT at or below BINDER_GC_HIGH_PERCENT "
                             f"(e.g. {max(self.gc_high_percent - 15, 0)})."])

    @property
    def worker_host(self) -> str:
        return self.worker_id or socket.gethostname()

    def replace(self, **overrides: Any) -> Config:
        return dataclasses.replace(self, **_coerce_all(overrides, source="override"))


def _check(spec: dataclasses.Field[Any], value: Any) -> None:
    try:
        spec.metadata["check"](value)
    except ValueError as exc:
        raise ConfigError(f"{spec.metadata['env']} is not valid: {exc}, not {value!r}",
                          suggestions=[f"{spec.metadata['env']}: {spec.metadata['help']}"]
                          ) from exc


def _refuse_credentials(env: str, value: str | tuple[str, ...],
                        login_stays_on_host: bool) -> None:
    for url in (value,) if isinstance(value, str) else value:
        kind = credentials_in(url, login_stays_on_host)
        if kind:
            raise ConfigError(
                f"{env} holds credentials ({kind}); builds see its value in their "
                "Dockerfiles and logs, where repository code would read them.",
                suggestions=[f"Give {env} a URL without credentials: a mirror or proxy that "
                             "builds may reach without them (only BINDER_PIP_INDEX_URL keeps "
                             "a user name and password on the host, see BINDER_PIP_PROXY)."])


def registry_url(registry: str, insecure: bool) -> str:
    """The registry's HTTP API base: plain http only for an insecure (local) registry."""
    return f"{'http' if insecure else 'https'}://{registry}"


@dataclass(frozen=True)
class Setting:
    """One setting as the CLI, the README and the environment see it."""

    name: str
    env: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    choices: tuple[str, ...]


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.metadata["env"], f.default, f.metadata["help"],
            _PARSERS[type(f.default)], f.metadata["choices"])
    for f in dataclasses.fields(Config))
_BY_ENV = {s.env: s for s in SETTINGS}
_BY_NAME = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, raw: Any, source: str) -> Any:
    if setting.choices and isinstance(raw, str):
        raw = raw.strip().lower()
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
            raise ConfigError(f"{source}: unknown setting {key!r}",
                              suggestions=_unknown_setting_advice(key))
        values[setting.name] = _coerce(setting, value, source)
    return values


def _unknown_setting_advice(key: str) -> list[str]:
    """The setting ``key`` most likely meant, if one is close, and where all are listed."""
    everything = "binder-build settings lists every setting; a file names one by its " \
                 "variable (BINDER_PORT) or in lower case without BINDER_ (port)."
    close = difflib.get_close_matches(key, [*_BY_NAME, *_BY_ENV], n=1, cutoff=0.7)
    if not close:
        return [everything]
    meant = _BY_NAME.get(close[0]) or _BY_ENV[close[0]]
    return [f"Did you mean {meant.name} ({meant.env})?", everything]


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON or TOML config file; keys are setting names or variables."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}",
                          suggestions=["Check BINDER_CONFIG or --config."]) from exc
    as_toml = file.suffix == ".toml"
    try:
        data = tomllib.loads(text) if as_toml else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        read_as = "TOML" if as_toml else "JSON (a file not named *.toml is read as JSON)"
        raise ConfigError(f"config file {file} is not valid {read_as}: {exc}",
                          suggestions=["Write it as JSON, or as TOML in a file named "
                                       "*.toml."]) from exc
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
    values: dict[str, Any] = {}
    path = config_file or env.get("BINDER_CONFIG")
    if path:
        values.update(read_config_file(path))
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.name] = _coerce(setting, env[setting.env], "environment")
    values.update(_coerce_all(overrides, source="override"))
    return Config(**values)


def _environment_text(value: Any) -> str:
    """A setting's value as its environment variable is written (``true``, ``a,b``)."""
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def environment_for(config: Config) -> dict[str, str]:
    """The environment variables that reproduce ``config`` in a child process."""
    return {setting.env: _environment_text(getattr(config, setting.name))
            for setting in SETTINGS}


def describe_settings() -> list[tuple[str, str, str]]:
    """(variable, default, help) rows for ``binder-build settings``: each default as its
    variable would be written."""
    return [(s.env, _environment_text(s.default), s.help) for s in SETTINGS]


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
    "Config", "Setting", "SETTINGS", "setting", "registry_url", "load_config", "get_config",
    "set_config", "environment_for", "describe_settings", "read_config_file",
]

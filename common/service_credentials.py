"""Credentials of the farm's local services, made once and kept under the data dir.

The Redis, Mongo wire server and registry that the launcher starts on this
machine require credentials (a Redis password, a MongoDB user, a registry
user in htpasswd). The launcher generates them once into one JSON file,
mode 0600 (``BINDER_CREDENTIALS_FILE``, by default
``DATA_DIR/credentials.json``), which also records the address each service
was started at. Every farm process and the test suite read that file:
:func:`with_service_credentials` adds a service's credentials to the
configured URL that points at exactly that address and carries none, so a
private Redis a test starts on another port is left alone.

Builds never see them: they reach neither a build's environment nor its
context, and a build that connects to a service is refused for want of them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import stat
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from common.errors import ConfigError

if TYPE_CHECKING:  # config.py imports this module
    from common.config import Config

#: The Mongo wire server the launcher starts when ``MONGO_URL`` is empty.
EMBEDDED_MONGO_URL = "mongodb://127.0.0.1:27017"
DEFAULT_REDIS_PORT = 6379
DEFAULT_MONGO_PORT = 27017
#: User names the launcher creates in the Mongo wire server and the registry.
FARM_USER = "binder"


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and any loopback IP literal."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    return False


def _address(host: str | None, port: int | None, default_port: int) -> str:
    host = "127.0.0.1" if host in (None, "", "localhost") else host
    return f"{host}:{port or default_port}"


def redis_address(url: str) -> str:
    """``host:port`` of a Redis URL."""
    parts = urlsplit(url)
    return _address(parts.hostname, parts.port, DEFAULT_REDIS_PORT)


def mongo_address(url: str) -> str:
    """``host:port`` of a single-host MongoDB URL."""
    parts = urlsplit(url)
    return _address(parts.hostname, parts.port, DEFAULT_MONGO_PORT)


def registry_address(registry: str) -> str:
    host, _, port = registry.rpartition(":")
    return _address(host, int(port), 5000) if port.isdigit() else registry


@dataclass(frozen=True)
class ServiceCredentials:
    """What each local service requires, and the address it was started at."""

    redis_address: str
    redis_password: str
    mongo_address: str
    mongo_username: str
    mongo_password: str
    registry_address: str
    registry_username: str
    registry_password: str


def credentials_path(config: Config) -> Path:
    """Where the credentials of this farm's local services live."""
    if config.credentials_file:
        return Path(config.credentials_file).resolve()
    return config.data_path / "credentials.json"


def local_addresses(config: Config) -> dict[str, str]:
    """The addresses the launcher would start each service at."""
    return {
        "redis_address": redis_address(config.redis_url),
        "mongo_address": mongo_address(config.mongo_url or EMBEDDED_MONGO_URL),
        "registry_address": registry_address(config.registry),
    }


def read_credentials(path: Path) -> ServiceCredentials | None:
    """The credentials in ``path``; ``None`` when there is no such file.

    Raises ``ConfigError`` for a file others can read or one that is not ours.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the service credentials {path}: {exc.strerror}",
                          suggestions=["Check BINDER_CREDENTIALS_FILE."]) from exc
    if stat.S_IMODE(mode) & 0o077:
        raise ConfigError(f"the service credentials {path} can be read by other users "
                          f"(mode {stat.S_IMODE(mode):o})",
                          suggestions=[f"chmod 600 {path}"])
    try:
        return ServiceCredentials(**json.loads(text))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the service credentials {path} are not valid: {exc}",
                          suggestions=["Remove the file and the services' data "
                                       "(registry.htpasswd, mongo/) to start over."]) from exc


def _write(path: Path, credentials: ServiceCredentials, replace_existing: bool) -> bool:
    """Write atomically with mode 0600; without ``replace_existing`` never overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp makes the file 0600
            json.dump(asdict(credentials), out, indent=2)
            out.write("\n")
        if replace_existing:
            os.replace(temp, path)
            return True
        try:
            os.link(temp, path)  # fails if another process made the file first
            return True
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def ensure_credentials(config: Config) -> ServiceCredentials:
    """The local services' credentials, generated on first use.

    A new file records the addresses ``config`` names; the launcher moves a
    service's address (:func:`record_address`) only when it starts one there.
    """
    path = credentials_path(config)
    current = read_credentials(path)
    if current is not None:
        return current
    fresh = ServiceCredentials(
        redis_password=secrets.token_urlsafe(32),
        mongo_username=FARM_USER, mongo_password=secrets.token_urlsafe(32),
        registry_username=FARM_USER, registry_password=secrets.token_urlsafe(32),
        **local_addresses(config))
    if _write(path, fresh, replace_existing=False):
        return fresh
    made = read_credentials(path)  # another process was first
    assert made is not None
    return made


def record_address(config: Config, service: str) -> ServiceCredentials:
    """Record that ``service`` (redis, mongo, registry) now runs where ``config`` says."""
    path = credentials_path(config)
    current = read_credentials(path) or ensure_credentials(config)
    field = f"{service}_address"
    moved = replace(current, **{field: local_addresses(config)[field]})
    if moved != current:
        _write(path, moved, replace_existing=True)
    return moved


def as_configured(config: Config, credentials: ServiceCredentials) -> ServiceCredentials:
    """``credentials`` with those ``config`` gives explicitly taking precedence.

    A service the launcher starts must take the credentials its clients use.
    """
    redis = urlsplit(config.redis_url)
    mongo = urlsplit(config.mongo_url or EMBEDDED_MONGO_URL)
    changes: dict[str, str] = {}
    if redis.password is not None:
        changes["redis_password"] = unquote(redis.password)
    if mongo.username is not None:
        changes["mongo_username"] = unquote(mongo.username)
        changes["mongo_password"] = unquote(mongo.password or "")
    if config.registry_username:
        changes["registry_username"] = config.registry_username
        changes["registry_password"] = config.registry_password
    return replace(credentials, **changes)


def _with_userinfo(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def with_service_credentials(config: Config) -> Config:
    """``config`` with the local services' credentials added where they apply.

    Only URLs without credentials of their own that point at the recorded
    address of a service change; with no credentials file nothing changes.
    """
    credentials = read_credentials(credentials_path(config))
    if credentials is None:
        return config
    changes: dict[str, str] = {}
    redis = urlsplit(config.redis_url)
    if redis.password is None and redis_address(config.redis_url) == credentials.redis_address:
        changes["redis_url"] = _with_userinfo(config.redis_url, "", credentials.redis_password)
    mongo = config.mongo_url or EMBEDDED_MONGO_URL
    if urlsplit(mongo).username is None and mongo_address(mongo) == credentials.mongo_address:
        url = urlsplit(_with_userinfo(mongo, credentials.mongo_username,
                                      credentials.mongo_password))
        query = dict(parse_qsl(url.query))
        query.setdefault("authSource", "admin")
        changes["mongo_url"] = urlunsplit(url._replace(path=url.path or "/",
                                                       query=urlencode(query)))
    if not config.registry_username and \
            registry_address(config.registry) == credentials.registry_address:
        changes["registry_username"] = credentials.registry_username
        changes["registry_password"] = credentials.registry_password
    return config.replace(**changes) if changes else config

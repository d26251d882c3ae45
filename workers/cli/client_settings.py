"""Which farm the user commands talk to, and with which key.

Each value is taken from the first of: the command-line option (``--url``,
``--api-key``), the environment (``BINDER_URL``, ``BINDER_API_KEY``), the
client config file (``--client-config`` or ``BINDER_CLIENT_CONFIG``,
default ``~/.config/binder-build/client.toml``), then the defaults: the
local farm ``make up`` serves (at ``BINDER_HOST`` and ``BINDER_PORT``, as
``up`` reads them), and the key it saved under its data dir.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from workers.cli.farm_client import ApiError, not_a_farm_url

DEFAULT_URL = "http://127.0.0.1:8082"
CONFIG_KEYS = ("url", "api_key")
#: ``ClientSettings.key_source`` when no key was found: for any farm, and for a farm
#: on this machine, whose saved key was looked for and not found.
NO_KEY = "none"
NO_LOCAL_KEY = "none: no saved key of the local farm"
#: ``ClientSettings.key_source`` of a key from ``--api-key`` or ``BINDER_API_KEY``, and of
#: the key the local farm saved.
OPTION_KEY = "option"
LOCAL_FARM_KEY = "local farm"


@dataclass(frozen=True)
class ClientSettings:
    url: str
    api_key: str | None
    #: where the key came from: ``OPTION_KEY``, the config file's path,
    #: ``LOCAL_FARM_KEY``, or ``NO_KEY``/``NO_LOCAL_KEY``
    key_source: str


def default_config_path() -> Path:
    return Path(click.get_app_dir("binder-build")) / "client.toml"


def read_client_config(path: Path, required: bool) -> dict[str, Any]:
    """The TOML file's ``url`` and ``api_key``; a missing default file is no error."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        if not required:
            return {}
        raise ApiError(f"The client config file {path} does not exist.",
                       suggestions=["Check --client-config or BINDER_CLIENT_CONFIG."]) from exc
    except OSError as exc:
        raise ApiError(f"Cannot read the client config file {path}: {exc.strerror}.",
                       suggestions=["Check its permissions."]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ApiError(f"The client config file {path} is not valid TOML: {exc}.",
                       suggestions=['Write it as: url = "https://HOST" and '
                                    'api_key = "KEY", one per line.']) from exc
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ApiError(f"The client config file {path} has unknown keys: {', '.join(unknown)}.",
                       suggestions=[f"Known keys: {', '.join(CONFIG_KEYS)}."])
    for key in CONFIG_KEYS:
        if key in data and not isinstance(data[key], str):
            raise ApiError(f"In the client config file {path}, {key} must be a string.",
                           suggestions=[f'Write it in quotes: {key} = "..."'])
    return data


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_farm_key() -> str | None:
    """The key ``make up`` saved under the local farm's data dir, if there is one."""
    from common.config import load_config
    from common.errors import ConfigError

    try:
        path = load_config().data_path / "api-key"
        return path.read_text().strip() or None
    except (ConfigError, OSError):
        return None


def local_farm_url() -> str:
    """Where the local farm ``up`` serves: its bind address (loopback for one bound to
    every address) and port; ``DEFAULT_URL`` when the farm's settings cannot be read."""
    from common.config import load_config
    from common.errors import ConfigError

    try:
        config = load_config()
    except ConfigError:
        return DEFAULT_URL
    host = config.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


def _checked_url(url: str) -> str:
    """``url`` if it names a farm (http or https and a host); an error naming it as given
    otherwise, before any request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise not_a_farm_url(url)
    return url


def resolve(url: str | None, api_key: str | None, config_file: str | None) -> ClientSettings:
    """Settings from options/environment (already merged by click), the file, the defaults."""
    path = Path(config_file) if config_file else default_config_path()
    file = read_client_config(path, required=config_file is not None)
    chosen_url = _checked_url((url or file.get("url") or local_farm_url()).strip())
    if api_key:
        return ClientSettings(chosen_url, api_key, OPTION_KEY)
    if file.get("api_key"):
        return ClientSettings(chosen_url, file["api_key"], str(path))
    if _is_loopback(chosen_url):
        saved = local_farm_key()
        if saved:
            return ClientSettings(chosen_url, saved, LOCAL_FARM_KEY)
        return ClientSettings(chosen_url, None, NO_LOCAL_KEY)
    return ClientSettings(chosen_url, None, NO_KEY)

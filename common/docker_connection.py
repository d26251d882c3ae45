"""How the farm reaches a Docker engine: a local socket, or TCP with TLS, never plain TCP.

An engine's API is root on its host: whoever reaches it runs anything
there. So a worker talks to a local engine over its unix socket, and to a
remote one only over mutual TLS: ``DOCKER_HOST=tcp://HOST:PORT`` with a CA
certificate to check the engine, and a client certificate and key the
engine checks (``dockerd --tlsverify --tlscacert ... --tlscert ... --tlskey``).
The SDK (``client_options``) and the Docker CLI that runs BuildKit builds
(``cli_flags``) get the same settings.

The SDK asks the engine for its API version as each client is made. A
process asks once per engine address (``engine_client``) and gives later
clients the answer; an engine replaced at that address by one that does not
speak that version answers ``EngineChanged``, and the next client asks again.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

import docker
import docker.errors
import docker.tls
import requests

from common.config import Config
from common.errors import ConfigError
from common.service_credentials import is_loopback

TLS_SETTINGS = ("BINDER_DOCKER_TLS_CA", "BINDER_DOCKER_TLS_CERT", "BINDER_DOCKER_TLS_KEY")


def _tls_files(config: Config) -> tuple[str, str, str]:
    return config.docker_tls_ca, config.docker_tls_cert, config.docker_tls_key


def uses_tls(config: Config) -> bool:
    return urlsplit(config.docker_host).scheme == "tcp"


def check_engine_address(config: Config) -> None:
    """Raise ``ConfigError`` unless ``DOCKER_HOST`` is a unix socket or TCP with TLS."""
    address = config.docker_host
    parts = urlsplit(address)
    scheme = parts.scheme
    if scheme == "unix":
        # The SDK reads a bare unix:// as the default socket, the Docker CLI that runs
        # builds does not: both must reach the same engine, so the path is spelt out.
        if parts.netloc or len(parts.path) < 2 or not parts.path.startswith("/"):
            raise ConfigError(
                f"DOCKER_HOST {address} names no socket.",
                suggestions=["Name the engine's socket by its absolute path: "
                             "unix:///var/run/docker.sock (three slashes)."])
        return
    if scheme != "tcp":
        raise ConfigError(
            f"DOCKER_HOST {address} is not an address the farm uses for a Docker engine.",
            suggestions=["Use unix:///PATH/docker.sock for an engine on this machine, or "
                         "tcp://HOST:PORT with BINDER_DOCKER_TLS_CA, BINDER_DOCKER_TLS_CERT "
                         "and BINDER_DOCKER_TLS_KEY for a remote one."])
    if not parts.hostname or _port(parts) is None:
        raise ConfigError(f"DOCKER_HOST {address} names no host and port.",
                          suggestions=["Write a remote engine as tcp://HOST:PORT (2376 is "
                                       "the usual port of an engine behind TLS)."])
    missing = [name for name, path in zip(TLS_SETTINGS, _tls_files(config), strict=True)
               if not path]
    if missing:
        raise ConfigError(
            f"DOCKER_HOST {address} is plain TCP: anyone who reaches that port controls the "
            "engine, so the farm refuses it.",
            suggestions=[f"Start the engine with --tlsverify and set {', '.join(missing)} "
                         "(PEM files: the CA that signed the engine's certificate, this "
                         "worker's client certificate and its key)."])
    for name, path in zip(TLS_SETTINGS, _tls_files(config), strict=True):
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{name} {path} cannot be read.",
                              suggestions=[f"Check the path and permissions of {name}."])


def check_engine_reaches_registry(config: Config) -> None:
    """Raise ``ConfigError`` when the engine is on another machine and ``BINDER_REGISTRY``
    is a loopback address: the engine pushes and pulls by that name, from its own machine."""
    engine = urlsplit(config.docker_host)
    if engine.scheme != "tcp" or is_loopback(engine.hostname):
        return
    if is_loopback(urlsplit(f"//{config.registry}").hostname):
        raise ConfigError(
            f"BINDER_REGISTRY {config.registry} is this machine's loopback, which the engine "
            f"at {config.docker_host} cannot reach: its pushes would go to its own machine.",
            suggestions=["Give the registry a name every Docker host reaches, with TLS "
                         "(BINDER_REGISTRY_INSECURE=false), and use that name for every "
                         "process of the farm."])


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:  # not a number, or out of range
        return None


def client_options(config: Config) -> dict[str, Any]:
    """Keyword arguments of ``docker.DockerClient`` for this worker's engine."""
    check_engine_address(config)
    if not uses_tls(config):
        return {"base_url": config.docker_host}
    ca, cert, key = _tls_files(config)
    return {"base_url": config.docker_host,
            "tls": docker.tls.TLSConfig(client_cert=(cert, key), ca_cert=ca, verify=True)}


def cli_flags(config: Config) -> list[str]:
    """The Docker CLI's global flags for the same engine (``-H`` comes from DOCKER_HOST)."""
    if not uses_tls(config):
        return []
    ca, cert, key = _tls_files(config)
    return ["--tlsverify", f"--tlscacert={ca}", f"--tlscert={cert}", f"--tlskey={key}"]


#: The API version each engine address answered this process (``engine_client``).
_api_versions: dict[str, str] = {}

#: What an engine answers (400) a client that asks for a newer API than it speaks.
_TOO_NEW = re.compile(r"client version \S+ is too new")


class EngineChanged(docker.errors.DockerException):
    """The engine no longer speaks the API version this process learned from it at
    its address: it was replaced (downgraded) since. The version is forgotten, so
    the next client asks again."""


def forget_api_version(address: str) -> None:
    """Ask the engine at ``address`` for its API version again with the next client."""
    _api_versions.pop(address, None)


class _EngineApi(docker.APIClient):
    """The SDK's API client, deaf to the process environment's CA bundles and proxies.

    requests would otherwise check the engine's certificate against
    ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` instead of
    ``BINDER_DOCKER_TLS_CA``, from the first request on (the client asks the
    engine for its API version as it is made).
    """

    #: The engine's address as the farm's settings name it (``DOCKER_HOST``).
    base_address = ""

    @property
    def trust_env(self) -> bool:
        return False

    @trust_env.setter
    def trust_env(self, value: bool) -> None:
        pass  # requests.Session sets it; it stays off

    def _raise_for_status(self, response: requests.Response) -> None:
        if response.status_code == 400 and _TOO_NEW.search(response.text):
            forget_api_version(self.base_address)
            raise EngineChanged(
                f"The Docker engine at {self.base_address} no longer speaks API version "
                f"{self.api_version}, which it answered before: it was replaced by an older "
                f"engine ({response.text.strip()}). The next request asks it for its "
                "version again.")
        super()._raise_for_status(response)


class _EngineClient(docker.DockerClient):
    def __init__(self, address: str, **options: Any) -> None:  # the API client only, our way
        self.api = _EngineApi(**options)
        self.api.base_address = address


def engine_client(config: Config, timeout: int, ask_version: bool = False) -> docker.DockerClient:
    """The SDK client of this worker's engine (see ``client_options``).

    The engine's API version is asked by the first client of this process for
    its address (and with ``ask_version``: a probe learns what the engine is
    now); later clients reuse the answer rather than ask for it again.
    """
    address = config.docker_host
    known = None if ask_version else _api_versions.get(address)
    client = _EngineClient(address, **client_options(config), timeout=timeout, version=known)
    _api_versions[address] = client.api.api_version
    return client

"""Docker engines a worker drives: unix sockets or TCP with mutual TLS; the worker command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.api.client
import pytest
from click.testing import CliRunner

from common import docker_connection
from common.config import load_config
from common.docker_connection import (
    EngineChanged,
    check_engine_address,
    check_engine_reaches_registry,
    cli_flags,
    client_options,
    engine_client,
)
from common.errors import ConfigError
from workers.cli import main, server


@pytest.fixture
def tls(tmp_path: Path) -> dict[str, str]:
    """Settings naming a CA, a certificate and a key that exist (their content is not read)."""
    files = {}
    for name in ("ca", "cert", "key"):
        (tmp_path / f"{name}.pem").write_text("-----BEGIN-----\n")
        files[f"docker_tls_{name}"] = str(tmp_path / f"{name}.pem")
    return files


def refused_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> str:
    """The output of a ``worker`` command that must refuse before starting anything."""
    monkeypatch.setattr(server, "_exec", lambda argv, config: pytest.fail("started"))
    monkeypatch.setenv("BINDER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BINDER_API_KEY", "k")
    result = CliRunner().invoke(main, ["worker", *args])
    assert result.exit_code != 0
    return result.output


def test_plain_tcp_and_unknown_engine_addresses_are_refused() -> None:
    check_engine_address(load_config(environ={}, docker_host="unix:///run/d.sock"))
    with pytest.raises(ConfigError) as plain:
        check_engine_address(load_config(environ={}, docker_host="tcp://10.0.0.5:2375"))
    assert "plain TCP" in plain.value.message
    assert "BINDER_DOCKER_TLS_CA" in plain.value.suggestions[0]
    with pytest.raises(ConfigError) as other:
        check_engine_address(load_config(environ={}, docker_host="http://10.0.0.5:2375"))
    assert "unix:///" in other.value.suggestions[0]
    with pytest.raises(ConfigError, match="cannot be read"):
        check_engine_address(load_config(
            environ={}, docker_host="tcp://h:2376", docker_tls_ca="/nonexistent/ca.pem",
            docker_tls_cert="/nonexistent/c.pem", docker_tls_key="/nonexistent/k.pem"))


def test_engine_addresses_without_a_socket_path_or_a_host_are_refused(
        tls: dict[str, str]) -> None:
    for address in ("unix://", "unix:///", "unix:", "unix://var/run/docker.sock"):
        with pytest.raises(ConfigError, match="names no socket"):
            check_engine_address(load_config(environ={}, docker_host=address))
    for address in ("tcp://", "tcp://:2376", "tcp://h"):
        with pytest.raises(ConfigError, match="names no host and port"):
            check_engine_address(load_config(environ={}, docker_host=address, **tls))
    check_engine_address(load_config(environ={}, docker_host="tcp://h:2376", **tls))


def test_worker_refuses_an_engine_socket_without_a_path(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    assert "names no socket" in refused_worker(monkeypatch, tmp_path, "--docker-host", "unix://")


@pytest.mark.parametrize("registry", ["127.0.0.1:5000", "localhost:5000", "[::1]:5000"])
def test_an_engine_on_another_machine_cannot_push_to_a_loopback_registry(
        tls: dict[str, str], registry: str) -> None:
    """That engine's loopback is its own machine's: its pushes would find no registry."""
    remote = load_config(environ={}, docker_host="tcp://docker-host-2.example:2376",
                         registry=registry, **tls)
    with pytest.raises(ConfigError) as refused:
        check_engine_reaches_registry(remote)
    assert refused.value.message == (
        f"BINDER_REGISTRY {registry} is this machine's loopback, which the engine at "
        "tcp://docker-host-2.example:2376 cannot reach: its pushes would go to its own "
        "machine.")
    check_engine_reaches_registry(remote.replace(registry="registry.example:5000"))
    check_engine_reaches_registry(remote.replace(docker_host="tcp://127.0.0.1:2376"))
    check_engine_reaches_registry(remote.replace(docker_host="unix:///var/run/docker.sock"))


def test_worker_of_a_remote_engine_refuses_a_loopback_registry(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tls: dict[str, str]) -> None:
    for setting, path in tls.items():
        monkeypatch.setenv(f"BINDER_{setting.upper()}", path)
    monkeypatch.setenv("BINDER_REGISTRY", "127.0.0.1:5000")
    output = refused_worker(monkeypatch, tmp_path, "--docker-host", "tcp://host-2.example:2376")
    assert "BINDER_REGISTRY 127.0.0.1:5000 is this machine's loopback" in output


def test_tls_reaches_both_the_sdk_and_the_docker_cli(tls: dict[str, str]) -> None:
    config = load_config(environ={}, docker_host="tcp://127.0.0.1:2376", **tls)
    options = client_options(config)
    assert options["base_url"] == "tcp://127.0.0.1:2376"
    ca, cert, key = tls["docker_tls_ca"], tls["docker_tls_cert"], tls["docker_tls_key"]
    assert options["tls"].verify is True and options["tls"].ca_cert == ca
    assert options["tls"].cert == (cert, key)
    assert cli_flags(config) == ["--tlsverify", f"--tlscacert={ca}", f"--tlscert={cert}",
                                 f"--tlskey={key}"]
    local = load_config(environ={}, docker_host="unix:///var/run/docker.sock")
    assert cli_flags(local) == [] and "tls" not in client_options(local)


def test_worker_options_name_the_engine_host_id_and_concurrency(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ran: dict[str, Any] = {}
    monkeypatch.setattr(server, "_exec",
                        lambda argv, config: ran.update(argv=argv, config=config))
    monkeypatch.setenv("BINDER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BINDER_API_KEY", "k")
    result = CliRunner().invoke(main, ["worker", "--docker-host", "unix:///tmp/b.sock",
                                       "--host-id", "host-b", "--concurrency", "3"])
    assert result.exit_code == 0, result.output
    argv = ran["argv"]
    assert argv[argv.index("-Q") + 1] == "host.host-b,builds"
    assert argv[argv.index("--concurrency") + 1] == "3"
    assert argv[argv.index("--hostname") + 1] == "host-b@%h"
    config = ran["config"]
    assert (config.docker_host, config.worker_id, config.worker_concurrency) == \
        ("unix:///tmp/b.sock", "host-b", 3)


def test_worker_refuses_plain_tcp_before_starting(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    output = refused_worker(monkeypatch, tmp_path, "--docker-host", "tcp://127.0.0.1:2375")
    assert "plain TCP" in output


def test_the_engine_ca_wins_over_the_environments_ca_bundle(
        monkeypatch: pytest.MonkeyPatch, tls: dict[str, str]) -> None:
    ca = tls["docker_tls_ca"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    config = load_config(environ={}, docker_host="tcp://127.0.0.1:2376", **tls)
    url = "https://127.0.0.1:2376/version"
    seen: list[object] = []

    def version(self: docker.api.client.APIClient) -> str:
        # The first request, made as the client is made: no engine answers here.
        seen.append(self.merge_environment_settings(url, {}, None, None, None)["verify"])
        return "1.41"

    monkeypatch.setattr(docker.api.client.APIClient, "_retrieve_server_version", version)
    client = engine_client(config, timeout=5)
    assert seen == [ca]
    assert client.api.merge_environment_settings(url, {}, None, None, None)["verify"] == ca


@pytest.mark.parametrize("command", [["worker", "--docker-host", "unix:///tmp/b.sock"], ["beat"],
                                     ["flower"]])
def test_workers_beat_and_flower_make_no_api_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          command: list[str]) -> None:
    """Only the API checks keys: a worker host keeps no secret it never uses."""
    monkeypatch.setattr(server, "_exec", lambda argv, config, **env: None)
    monkeypatch.setenv("BINDER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BINDER_API_KEY", raising=False)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "api-key").exists()


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The engine addresses asked for their API version (each answers 1.41), none yet."""
    monkeypatch.setattr(docker_connection, "_api_versions", {})
    addresses: list[str] = []

    def version(self: docker.api.client.APIClient) -> str:
        addresses.append(self.base_url)
        return "1.41"
    monkeypatch.setattr(docker.api.client.APIClient, "_retrieve_server_version", version)
    return addresses


def test_a_process_asks_each_engine_its_api_version_once(asked: list[str]) -> None:
    first = load_config(environ={}, docker_host="unix:///tmp/a.sock")
    other = load_config(environ={}, docker_host="unix:///tmp/b.sock")
    clients = [engine_client(first, timeout=5), engine_client(first, timeout=60),
               engine_client(other, timeout=5)]
    assert asked == ["http+docker://localhost", "http+docker://localhost"]
    assert [client.api.api_version for client in clients] == ["1.41"] * 3
    engine_client(first, timeout=2, ask_version=True)  # a probe asks what answers now
    assert len(asked) == 3


class _Answer:
    """A response of an engine that does not speak the version asked for."""

    status_code = 400
    text = '{"message":"client version 1.41 is too new. Maximum supported API version is 1.40"}'


def test_an_engine_replaced_by_an_older_one_is_asked_again(asked: list[str]) -> None:
    config = load_config(environ={}, docker_host="unix:///tmp/a.sock")
    client = engine_client(config, timeout=5)
    with pytest.raises(EngineChanged, match="unix:///tmp/a.sock no longer speaks API version "
                       "1.41, which it answered before: it was replaced"):
        client.api._raise_for_status(_Answer())  # type: ignore[arg-type]
    engine_client(config, timeout=5)
    assert len(asked) == 2

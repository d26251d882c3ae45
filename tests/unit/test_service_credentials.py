"""The local services' credentials: made once, private, applied only where they belong."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from common.config import Config, load_config
from common.errors import ConfigError
from common.service_credentials import (
    credentials_path,
    ensure_credentials,
    is_loopback,
    read_credentials,
    record_address,
    with_service_credentials,
)


def config_in(tmp_path: Path, **environ: str) -> Config:
    return load_config(environ={"BINDER_DATA_DIR": str(tmp_path), **environ})


def test_credentials_are_generated_once_private_and_random(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    first = ensure_credentials(config)
    path = tmp_path / "credentials.json"
    assert credentials_path(config) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_credentials(config) == first == read_credentials(path)
    secrets = {first.redis_password, first.mongo_password, first.registry_password}
    assert len(secrets) == 3 and all(len(secret) >= 40 for secret in secrets)
    assert (first.redis_address, first.mongo_address, first.registry_address) == \
        ("127.0.0.1:6379", "127.0.0.1:27017", "127.0.0.1:5000")
    assert ensure_credentials(config_in(tmp_path / "other")) != first


def test_concurrent_first_starts_agree_on_one_set(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ensure_credentials(config), range(16)))
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]


def test_a_service_started_elsewhere_keeps_its_password(tmp_path: Path) -> None:
    first = ensure_credentials(config_in(tmp_path))
    elsewhere = config_in(tmp_path, REDIS_URL="redis://127.0.0.1:6390/2",
                          MONGO_URL="mongodb://localhost:27030")
    assert ensure_credentials(elsewhere) == first  # only starting a service moves it
    moved = record_address(elsewhere, "redis")
    assert (moved.redis_address, moved.mongo_address) == ("127.0.0.1:6390", "127.0.0.1:27017")
    assert moved.redis_password == first.redis_password
    assert read_credentials(tmp_path / "credentials.json") == moved
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path) -> None:
    ensure_credentials(config_in(tmp_path))
    path = tmp_path / "credentials.json"
    path.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        read_credentials(path)
    assert "other users" in caught.value.message and f"chmod 600 {path}" in \
        caught.value.suggestions


def test_a_broken_credentials_file_says_how_to_start_over(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"redis_password": "x"}))
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        read_credentials(path)
    assert "not valid" in caught.value.message


def test_credentials_are_added_to_the_recorded_addresses_only(tmp_path: Path) -> None:
    credentials = ensure_credentials(config_in(tmp_path))
    config = with_service_credentials(config_in(tmp_path, REDIS_URL="redis://127.0.0.1:6379/7"))
    redis = urlsplit(config.redis_url)
    assert (redis.password, redis.hostname, redis.port, redis.path) == \
        (credentials.redis_password, "127.0.0.1", 6379, "/7")
    mongo = urlsplit(config.mongo_url)
    assert (mongo.username, mongo.password, mongo.port) == \
        ("binder", credentials.mongo_password, 27017)
    assert parse_qs(mongo.query) == {"authSource": ["admin"]}
    assert (config.registry_username, config.registry_password) == \
        ("binder", credentials.registry_password)

    private = with_service_credentials(config_in(
        tmp_path, REDIS_URL="redis://127.0.0.1:7000/0", MONGO_URL="mongodb://127.0.0.1:27999",
        BINDER_REGISTRY="127.0.0.1:5999"))
    assert private.redis_url == "redis://127.0.0.1:7000/0"
    assert private.mongo_url == "mongodb://127.0.0.1:27999"
    assert private.registry_username == ""


def test_credentials_of_their_own_are_kept(tmp_path: Path) -> None:
    ensure_credentials(config_in(tmp_path))
    config = with_service_credentials(config_in(
        tmp_path, REDIS_URL="redis://:mine@127.0.0.1:6379/0",
        MONGO_URL="mongodb://me:mine@127.0.0.1:27017/?authSource=farm",
        BINDER_REGISTRY_USERNAME="me", BINDER_REGISTRY_PASSWORD="mine"))
    assert config.redis_url == "redis://:mine@127.0.0.1:6379/0"
    assert config.mongo_url == "mongodb://me:mine@127.0.0.1:27017/?authSource=farm"
    assert (config.registry_username, config.registry_password) == ("me", "mine")


def test_no_credentials_file_changes_nothing(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    assert with_service_credentials(config) == config


def test_an_explicit_credentials_file_is_used_from_any_data_dir(tmp_path: Path) -> None:
    made = ensure_credentials(config_in(tmp_path / "services"))
    config = with_service_credentials(config_in(
        tmp_path / "tests", BINDER_CREDENTIALS_FILE=str(tmp_path / "services/credentials.json")))
    assert urlsplit(config.redis_url).password == made.redis_password


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("127.5.6.7", True), ("10.0.0.1", False), ("redis.example", False), (None, False)])
def test_is_loopback(host: str | None, expected: bool) -> None:
    assert is_loopback(host) is expected

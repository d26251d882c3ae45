"""``common/config.py``: defaults, layering (file < environment < overrides), parsing, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.config import (
    SETTINGS,
    Config,
    describe_settings,
    environment_for,
    load_config,
    read_config_file,
)
from common.errors import ConfigError


def write_json(tmp_path: Path, data: object, name: str = "binder.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def write_toml(tmp_path: Path, text: str, name: str = "binder.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# defaults


def test_every_setting_has_its_default_when_nothing_is_set() -> None:
    config = load_config(environ={})
    assert dict(config.values) == {s.name: s.default for s in SETTINGS}
    assert config.port == 8082
    assert config.github_url == "https://github.com"
    assert config.config_order == ("default",)
    assert config.allowed_source_hosts == ()
    assert config.verify is True


def test_load_config_ignores_the_process_environment_when_given_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINDER_PORT", "1234")
    assert load_config(environ={}).port == 8082
    assert load_config().port == 1234


def test_derived_properties() -> None:
    config = load_config(environ={"BINDER_REGISTRY": "reg.example:5000",
                                  "BINDER_REGISTRY_INSECURE": "false",
                                  "BINDER_DATA_DIR": "/srv/binder"})
    assert config.registry_url == "https://reg.example:5000"
    assert config.base_image_name == "reg.example:5000/binder-base:jupyterlab4"
    assert config.work_root == Path("/srv/binder/work")
    assert config.replace(base_image="python:3.12").base_image_name == "python:3.12"
    assert config.replace(registry_insecure=True).registry_url == "http://reg.example:5000"
    assert config.replace(worker_id="host-a").worker_host == "host-a"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = load_config(environ={}).no_such_setting


# environment parsing


def test_environment_overrides_defaults_with_parsed_types() -> None:
    config = load_config(environ={
        "BINDER_PORT": "9000",
        "BINDER_VERIFY": "no",
        "BINDER_REAPER_INTERVAL": "0.5",
        "BINDER_CONFIG_ORDER": " Dockerfile , requirements.txt,, ",
        "BINDER_ALLOWED_SOURCE_HOSTS": "127.0.0.1:8000",
        "UNRELATED_VARIABLE": "ignored",
    })
    assert config.port == 9000
    assert config.verify is False
    assert config.reaper_interval == 0.5
    assert config.config_order == ("Dockerfile", "requirements.txt")
    assert config.allowed_source_hosts == ("127.0.0.1:8000",)


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("YES", True), (" on ", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_bool_parsing(raw: str, expected: bool) -> None:
    assert load_config(environ={"BINDER_VERIFY": raw}).verify is expected


def test_empty_list_variable_is_an_empty_tuple() -> None:
    config = load_config(environ={"BINDER_ALLOWED_BASE_IMAGES": ""})
    assert config.allowed_base_images == ()


@pytest.mark.parametrize(("variable", "value"), [
    ("BINDER_PORT", "eighty"),
    ("BINDER_PORT", ""),
    ("BINDER_VERIFY", "maybe"),
    ("BINDER_REAPER_INTERVAL", "soon"),
    ("BINDER_MAX_ATTEMPTS", "2.5"),
])
def test_bad_environment_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={variable: value})
    assert variable in caught.value.message
    assert "environment" in caught.value.message
    assert any(variable in s for s in caught.value.suggestions)


# config files


def test_json_file_is_layered_under_the_environment(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"BINDER_PORT": 9001, "mongo_db": "from-file",
                                 "verify": False, "config_order": ["Dockerfile"]})
    config = load_config(environ={"BINDER_PORT": "9002"}, config_file=path)
    assert config.port == 9002  # environment wins
    assert config.mongo_db == "from-file"
    assert config.verify is False
    assert config.config_order == ("Dockerfile",)
    assert config.host == "127.0.0.1"  # untouched default


def test_toml_file_is_layered_under_the_environment(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9003\nBINDER_REGISTRY = "reg:5000"\nverify = true\n'
                                'allowed_base_images = ["python:3.12", "debian:12"]\n')
    config = load_config(environ={"BINDER_REGISTRY": "env:5000"}, config_file=path)
    assert config.port == 9003
    assert config.registry == "env:5000"
    assert config.verify is True
    assert config.allowed_base_images == ("python:3.12", "debian:12")


def test_string_values_in_a_file_are_parsed_like_the_environment(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"port": "9004", "verify": "off",
                                 "allowed_source_hosts": "a:1, b:2"})
    config = load_config(environ={}, config_file=path)
    assert (config.port, config.verify, config.allowed_source_hosts) == (9004, False,
                                                                          ("a:1", "b:2"))


def test_binder_config_variable_names_the_file(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"mongo_db": "chosen-by-variable"})
    assert load_config(environ={"BINDER_CONFIG": path}).mongo_db == "chosen-by-variable"


def test_explicit_config_file_wins_over_binder_config(tmp_path: Path) -> None:
    by_variable = write_json(tmp_path, {"mongo_db": "variable"}, "a.json")
    explicit = write_json(tmp_path, {"mongo_db": "explicit"}, "b.json")
    config = load_config(environ={"BINDER_CONFIG": by_variable}, config_file=explicit)
    assert config.mongo_db == "explicit"


def test_overrides_win_over_environment_and_file(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"port": 1})
    config = load_config(environ={"BINDER_PORT": "2"}, config_file=path, port=3)
    assert config.port == 3


def test_a_files_short_key_is_its_variable_without_binder_in_lower_case(
        tmp_path: Path) -> None:
    for setting in SETTINGS:
        assert setting.name == setting.env.lower().removeprefix("binder_"), setting.env
    path = write_toml(tmp_path, 'base_root = "debian:bookworm-slim"\n')
    assert load_config(environ={}, config_file=path).base_root == "debian:bookworm-slim"


@pytest.mark.parametrize(("variable", "value"), [
    ("BINDER_BUILD_NETWORK", "binder-builds"),  # BuildKit runs steps on no named network
    ("BINDER_PYTHON_INSTALLER", "conda"),
])
def test_a_value_outside_a_settings_choices_is_refused_at_load(
        variable: str, value: str, tmp_path: Path) -> None:
    """Every process refuses it as it starts, from the environment, a file or an override,
    instead of each build failing later."""
    with pytest.raises(ConfigError, match=f"{variable} must be one of .*, not '{value}'") \
            as caught:
        load_config(environ={variable: value})
    assert caught.value.suggestions[0].startswith(f"{variable}: ")
    file = tmp_path / "farm.json"
    file.write_text(json.dumps({variable.removeprefix("BINDER_").lower(): value}))
    with pytest.raises(ConfigError, match=f"{variable} must be one of"):
        load_config(environ={}, config_file=str(file))
    with pytest.raises(ConfigError, match=f"{variable} must be one of"):
        load_config(environ={}).replace(**{variable: value})


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("BINDER_MAX_MEMORY", "lots", "must be a size such as 512M or 2G"),
    ("BINDER_DEFAULT_MEMORY", "2X", "must be a size such as 512M or 2G"),
    ("BINDER_BUILD_MEMORY", "", "must be a size such as 512M or 2G"),
    ("BINDER_WORKER_CONCURRENCY", "0", "must be at least 1"),
    ("BINDER_PORT", "0", "must be a port number from 1 to 65535"),
    ("BINDER_FLOWER_PORT", "70000", "must be a port number from 1 to 65535"),
    ("BINDER_DEFAULT_PORT", "-1", "must be a port number from 1 to 65535"),
    ("BINDER_GC_HIGH_PERCENT", "101", "must be a percentage from 0 to 100"),
])
def test_a_value_builds_could_not_use_is_refused_at_load(
        variable: str, value: str, reason: str, tmp_path: Path) -> None:
    """A memory size every build would fail to read, or a worker of no builds (Celery
    reads concurrency 0 as one process per core), stops the process as it starts."""
    with pytest.raises(ConfigError) as caught:
        load_config(environ={variable: value})
    shown = value if value.lstrip("-").isdigit() else repr(value)  # as its type reads it
    assert caught.value.message == f"{variable} is not valid: {reason}, not {shown}"
    assert caught.value.suggestions[0].startswith(f"{variable}: ")
    with pytest.raises(ConfigError, match=f"{variable} is not valid"):
        load_config(environ={}).replace(**{variable: value})
    good = "512M" if "size" in reason else "90" if "percentage" in reason else "2"
    load_config(environ={variable: good})


@pytest.mark.parametrize("variable", ["BINDER_START_RATE_PER_KEY", "BINDER_START_RATE_PER_REPO"])
@pytest.mark.parametrize("value", ["10/week", "often", "-1/minute", "10/hour;5/minute"])
def test_a_rate_the_limiter_cannot_count_is_refused_at_load(variable: str, value: str) -> None:
    """The limiter reads the rate when the API starts its first request; the
    workers and the CLI never do, so the settings refuse it for every process."""
    with pytest.raises(ConfigError) as caught:
        load_config(environ={variable: value})
    assert caught.value.message.startswith(f"{variable} is not valid: must be one N/second, "
                                           "N/minute, N/hour, N/day, N/month or N/year")
    assert caught.value.message.endswith(f"not {value!r}")
    for good in ("60/hour", "5/second", "1000/day", "12/month", ""):
        load_config(environ={variable: good})


@pytest.mark.parametrize("value", ["https://registry.example:5000", "http://reg:5000/ns"])
def test_a_registry_written_as_a_url_is_refused_with_its_host_and_port(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"BINDER_REGISTRY": value})
    host = value.split("://")[1].split("/")[0]
    assert caught.value.message.startswith("BINDER_REGISTRY is not valid: must be HOST[:PORT] "
                                           f"without a scheme, such as {host!r}")


def test_a_registry_with_a_path_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"BINDER_REGISTRY is not valid: must be HOST\[:PORT\]"):
        load_config(environ={"BINDER_REGISTRY": "reg.example:5000/team"})
    assert load_config(environ={"BINDER_REGISTRY": "reg.example"}).registry == "reg.example"


def test_a_gc_low_mark_above_the_high_one_is_refused_at_load() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"BINDER_GC_HIGH_PERCENT": "60", "BINDER_GC_LOW_PERCENT": "80"})
    assert caught.value.message.startswith(
        "BINDER_GC_LOW_PERCENT (80) is above BINDER_GC_HIGH_PERCENT (60)")
    assert "at or below BINDER_GC_HIGH_PERCENT (e.g. 45)" in caught.value.suggestions[0]
    with pytest.raises(ConfigError, match="BINDER_GC_LOW_PERCENT"):
        load_config(environ={}).replace(gc_low_percent=90)
    load_config(environ={"BINDER_GC_HIGH_PERCENT": "60", "BINDER_GC_LOW_PERCENT": "60"})


def test_a_choice_is_taken_in_any_case() -> None:
    config = load_config(environ={"BINDER_BUILD_NETWORK": " None ",
                                  "BINDER_PYTHON_INSTALLER": "PIP"})
    assert (config.build_network, config.python_installer) == ("none", "pip")


def test_unknown_key_in_a_file_is_refused_by_name(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"port": 1, "colour": "blue"})
    with pytest.raises(ConfigError) as caught:
        load_config(environ={}, config_file=path)
    assert "'colour'" in caught.value.message
    # where to read every setting, not a hundred of them in one line
    assert caught.value.suggestions == [
        "binder-build settings lists every setting; a file names one by its variable "
        "(BINDER_PORT) or in lower case without BINDER_ (port)."]


@pytest.mark.parametrize(("key", "meant"), [
    ("prot", "port (BINDER_PORT)"),
    ("BINDER_MAX_REPO_MIB", "max_repo_mb (BINDER_MAX_REPO_MB)"),
    ("registry_user", "registry_username (BINDER_REGISTRY_USERNAME)"),
])
def test_a_misspelt_key_in_a_file_is_answered_with_the_setting_meant(
        tmp_path: Path, key: str, meant: str) -> None:
    path = write_json(tmp_path, {key: 1})
    with pytest.raises(ConfigError, match=f"unknown setting '{key}'") as caught:
        load_config(environ={}, config_file=path)
    assert caught.value.suggestions[0] == f"Did you mean {meant}?"
    assert caught.value.suggestions[1].startswith("binder-build settings lists every setting")


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="colour"):
        load_config(environ={}, colour="blue")
    with pytest.raises(ConfigError, match="colour"):
        load_config(environ={}).replace(colour="blue")


@pytest.mark.parametrize(("data", "variable"), [
    ({"port": True}, "BINDER_PORT"),
    ({"port": [1]}, "BINDER_PORT"),
    ({"host": 5}, "BINDER_HOST"),
    ({"mongo_url": None}, "MONGO_URL"),
    ({"verify": "perhaps"}, "BINDER_VERIFY"),
    ({"BINDER_CONFIG_ORDER": 3}, "BINDER_CONFIG_ORDER"),
])
def test_bad_value_in_a_file_names_the_variable_and_the_file(
        tmp_path: Path, data: dict[str, object], variable: str) -> None:
    path = write_json(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_config(environ={}, config_file=path)
    assert variable in caught.value.message
    assert path in caught.value.message


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.json", "{not json", "is not valid"),
    ("bad.toml", "port = = 1", "is not valid"),
    ("list.json", "[1, 2]", "must hold an object"),
])
def test_unreadable_config_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_config_file(path)


@pytest.mark.parametrize(("name", "read_as"), [
    ("farm.yaml", "JSON (a file not named *.toml is read as JSON)"),
    ("farm.toml", "TOML"),
])
def test_a_config_file_that_does_not_parse_says_what_it_was_read_as(
        tmp_path: Path, name: str, read_as: str) -> None:
    path = tmp_path / name
    path.write_text("port: 8082\n")
    with pytest.raises(ConfigError) as caught:
        read_config_file(path)
    assert caught.value.message.startswith(f"config file {path} is not valid {read_as}: ")
    assert caught.value.suggestions == ["Write it as JSON, or as TOML in a file named *.toml."]


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(environ={"BINDER_CONFIG": str(tmp_path / "absent.json")})


def test_float_setting_keeps_its_fraction_from_a_file_and_overrides(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"reaper_interval": 0.5})
    assert load_config(environ={}, config_file=path).reaper_interval == 0.5
    assert load_config(environ={}, reaper_interval=0.5).reaper_interval == 0.5


# environment_for


def test_environment_for_round_trips_a_config(tmp_path: Path) -> None:
    config = load_config(environ={
        "BINDER_PORT": "9010", "BINDER_VERIFY": "false", "BINDER_REGISTRY_INSECURE": "true",
        "BINDER_CONFIG_ORDER": "Dockerfile,requirements.txt",
        "BINDER_ALLOWED_SOURCE_HOSTS": "", "BINDER_REAPER_INTERVAL": "2.5",
        "BINDER_API_KEY": "secret", "BINDER_DATA_DIR": str(tmp_path)})
    environ = environment_for(config)
    assert set(environ) == {s.env for s in SETTINGS}
    assert all(isinstance(value, str) for value in environ.values())
    assert environ["BINDER_VERIFY"] == "false"
    assert environ["BINDER_CONFIG_ORDER"] == "Dockerfile,requirements.txt"
    assert load_config(environ=environ).values == config.values


def test_environment_for_defaults_round_trips() -> None:
    config = load_config(environ={})
    assert load_config(environ=environment_for(config)).values == config.values


def test_describe_settings_lists_every_variable_once() -> None:
    rows = describe_settings()
    assert [row[0] for row in rows] == [s.env for s in SETTINGS]
    assert len({row[0] for row in rows}) == len(rows)
    assert ("BINDER_PORT", "8082", "API port.") in rows
    assert all(help_text for _, _, help_text in rows)


def test_describe_settings_writes_defaults_as_the_environment_does() -> None:
    defaults = {env: default for env, default, _ in describe_settings()}
    assert defaults["BINDER_PUBLIC_READS"] == "true"
    assert defaults["BINDER_BANNED_REPOS"] == ""
    assert defaults["BINDER_CONFIG_ORDER"] == "default"
    assert defaults["BINDER_DATAVERSE_URLS"] == (
        "https://dataverse.harvard.edu,https://borealisdata.ca,https://dataverse.no")
    assert load_config(environ=defaults).values == load_config(environ={}).values


def test_config_values_are_not_shared_between_replacements() -> None:
    base = load_config(environ={})
    changed = base.replace(port=1)
    assert (base.port, changed.port) == (8082, 1)
    assert isinstance(changed, Config)


@pytest.mark.parametrize(("variable", "value"), [
    ("BINDER_CONDA_CHANNELS", "conda-forge,https://farm:s3cret@conda.example/private"),
    ("BINDER_CONDA_CHANNELS", "https://conda.example/t/s3cret-token/private"),
    ("BINDER_CRAN_URL", "https://farm:s3cret@cran.example/{date}"),
    ("BINDER_APT_MIRROR", "http://s3cret@mirror.example/debian"),
    ("BINDER_CONDA_CHANNELS", "conda-forge,https://conda.example/private?token=s3cret"),
    ("BINDER_CRAN_URL", "https://cran.example/{date}?access_token=s3cret"),
    ("BINDER_APT_MIRROR", "http://mirror.example/debian?X-Sig=s3cret#x"),
    ("BINDER_PIP_INDEX_URL", "https://index.example/simple/?token=s3cret"),
    ("BINDER_PIP_INDEX_URL", "https://farm:pw@index.example/simple/?key=s3cret"),
    ("BINDER_PIP_INDEX_URL", "https://pypi.anaconda.org/t/s3cret/farm/simple/"),
])
def test_credentials_in_a_setting_builds_see_are_refused_at_load(
        variable: str, value: str, tmp_path: Path) -> None:
    """These values are written into generated Dockerfiles and build logs, where repository
    code reads them; the message names the variable but not the secret."""
    with pytest.raises(ConfigError, match=f"{variable} holds credentials") as caught:
        load_config(environ={variable: value})
    assert "s3cret" not in str(caught.value) + " ".join(caught.value.suggestions)
    assert "BINDER_PIP_INDEX_URL" in " ".join(caught.value.suggestions)
    file = tmp_path / "farm.json"
    file.write_text(json.dumps({variable.removeprefix("BINDER_").lower(): value}))
    with pytest.raises(ConfigError, match=f"{variable} holds credentials"):
        load_config(environ={}, config_file=str(file))
    with pytest.raises(ConfigError, match=f"{variable} holds credentials"):
        load_config(environ={}).replace(**{variable: value})


def test_urls_without_credentials_are_taken_for_settings_builds_see() -> None:
    config = load_config(environ={
        "BINDER_CONDA_CHANNELS": "conda-forge,https://conda.example/tools/t",
        "BINDER_CRAN_URL": "https://cran.example/snapshots/{date}",
        "BINDER_APT_MIRROR": "http://mirror.example/debian"})
    assert config.conda_channels == ("conda-forge", "https://conda.example/tools/t")


def test_the_pip_index_alone_may_hold_a_login_which_its_proxy_keeps_on_the_host() -> None:
    index = "https://farm:s3cret@index.example/simple/"
    assert load_config(environ={"BINDER_PIP_INDEX_URL": index}).pip_index_url == index

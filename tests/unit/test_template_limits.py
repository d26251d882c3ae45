"""A template's limits have one type each: memory a size string, cpu a number of CPUs."""

from __future__ import annotations

import datetime as dt

import pytest

from api.docs import build_spec
from api.schemas.templates import TemplateSchema, docker_run_command
from common.config import load_config
from workers.phases.template import template_limits

CONFIG = load_config(environ={})
NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(("binder_yml", "limits"), [
    ({}, {"memory": "2G", "cpu": 1.0}),
    ({"limits": {"cpu": 2}}, {"memory": "2G", "cpu": 2.0}),
    ({"limits": {"cpu": "0.5", "memory": "512M"}}, {"memory": "512M", "cpu": 0.5}),
])
def test_cpu_is_a_number_from_the_defaults_and_from_binder_yml(
        binder_yml: dict, limits: dict) -> None:
    made = template_limits(binder_yml, CONFIG)
    assert made == limits
    assert type(made["cpu"]) is float and type(made["memory"]) is str


def test_the_default_cpu_setting_is_read_as_a_number() -> None:
    config = load_config(environ={"BINDER_DEFAULT_CPU": "1.5"})
    assert template_limits({}, config)["cpu"] == 1.5


def test_a_template_stored_with_cpu_as_a_string_is_served_as_a_number() -> None:
    stored = {"name": "o-r", "image_name": "r/i:a", "image_source": "r/i:a", "port": 8888,
              "limits": {"memory": "2G", "cpu": "1"}, "time_created": NOW,
              "time_modified": NOW}
    answer = TemplateSchema().dump(stored)
    assert answer["limits"] == {"memory": "2G", "cpu": 1.0}
    assert "--cpus 1 " in answer["run-command"]


def test_docker_run_writes_cpus_without_a_trailing_zero() -> None:
    assert "--cpus 0.5 " in docker_run_command({"limits": {"cpu": 0.5}, "image_name": "i"})
    assert "--cpus 2 " in docker_run_command({"limits": {"cpu": 2.0}, "image_name": "i"})


def test_the_document_types_the_limits() -> None:
    schemas = build_spec().to_dict()["components"]["schemas"]
    limits = schemas["Limits"]["properties"]
    assert limits["cpu"]["type"] == "number" and limits["memory"]["type"] == "string"

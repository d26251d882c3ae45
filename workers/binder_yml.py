"""``.binder.yml``: template metadata a repository may declare.

Keys, as the original Binder read them: ``limits`` (``memory``, ``cpu``),
``hardware`` (``gpu: N``), ``services`` (``{name, version, params}``),
``port``, ``command``; plus ``timeout`` (minutes, may only lower the farm's).

Everything in the file is bounded before it is stored or given to a
launcher: the file's size (``workers/config_files.py``) and shape
(``workers/repo_yaml.py``), each value (memory and CPUs up to the farm's
ceilings, a known hardware key, service parameters as short plain values
under plain keys, never ``$`` or ``.``, which MongoDB would read as
operators or paths), and ``command`` must split into words as a shell
would, checked here rather than after a build.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from common.errors import BuildFailure
from common.sizes import format_size, parse_size
from common.validation import field_problems
from workers.buildpacks import config_dir, find_config_file
from workers.config_files import read_config_bytes
from workers.repo_yaml import RepoYamlError, load_repo_yaml

FILE_NAMES = (".binder.yml", ".binder.yaml", "binder.yml")
MAX_GPUS = 16
MAX_SERVICES = 10
MAX_PARAMS = 20
#: The longest command a template may hold: ``.binder.yml``'s, or the image's own CMD
#: written as a shell command (``workers/phases/template.py``).
MAX_COMMAND_CHARS = 4096
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ALLOWED_KEYS = ("Allowed keys: limits (memory, cpu), hardware (gpu), services (name, version, "
                "params), port, command, timeout.")


@dataclass(frozen=True)
class Ceilings:
    """The most a repository may ask for (the farm's settings)."""

    memory_bytes: int = 64 * 1024**3
    cpu: float = 64.0


class LimitsSchema(Schema):
    class Meta:
        unknown = RAISE

    memory = fields.String(validate=validate.Length(max=32))
    cpu = fields.Raw()

    @validates("memory")
    def _memory(self, value: str, **_: Any) -> None:
        try:
            size = parse_size(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if size <= 0:  # Docker (and so a launcher) reads a limit of 0 as none at all
            raise ValidationError("must be more than 0 bytes (0 would mean no limit)")

    @validates("cpu")
    def _cpu(self, value: Any, **_: Any) -> None:
        try:
            if isinstance(value, bool) or not (math.isfinite(float(value)) and float(value) > 0):
                raise ValueError
        except (TypeError, ValueError):
            raise ValidationError("must be a positive number of CPUs") from None


class HardwareSchema(Schema):
    class Meta:
        unknown = RAISE

    gpu = fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_GPUS))


def _param_value(value: Any) -> None:
    if isinstance(value, str):
        if len(value) > 200:
            raise ValidationError("must be at most 200 characters")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("must be a finite number")
    elif value is not None and not isinstance(value, bool | int):
        raise ValidationError("must be text, a number, a boolean or null")


class ServiceSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Regexp(
        _SERVICE_NAME, error="must be a name of letters, digits, '.', '_' or '-'"))
    version = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=100))
    params = fields.Dict(
        keys=fields.String(validate=validate.Regexp(
            _KEY, error="must be a name of letters, digits, '_' or '-'")),
        values=fields.Raw(validate=_param_value, allow_none=True),
        validate=validate.Length(max=MAX_PARAMS), load_default=dict)


def _command(value: str) -> None:
    if "\0" in value:
        raise ValidationError("must not contain NUL characters")
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ValidationError(f"cannot be split into words as a shell would ({exc}); "
                              "check its quotes") from None
    if not words:
        raise ValidationError("names no program")


class BinderYmlSchema(Schema):
    class Meta:
        unknown = RAISE

    limits = fields.Nested(LimitsSchema, load_default=dict)
    hardware = fields.Nested(HardwareSchema, load_default=dict)
    services = fields.List(fields.Nested(ServiceSchema), load_default=list,
                           validate=validate.Length(max=MAX_SERVICES))
    port = fields.Integer(strict=True, validate=validate.Range(min=1, max=65535))
    command = fields.String(validate=[validate.Length(min=1, max=MAX_COMMAND_CHARS), _command])
    timeout = fields.Integer(strict=True, validate=validate.Range(min=1, max=24 * 60),
                             metadata={"description": "build timeout in minutes"})


def find_binder_yml(checkout: Path) -> PurePosixPath | None:
    """The repository path of its ``.binder.yml``: looked for where the other config
    files are (``binder/`` or ``.binder/`` when there is one), then at the root.

    A link is taken like any config file's: to a file of the repository it is read,
    anywhere else it is refused with a ``BuildFailure``.
    """
    folder = config_dir(checkout)
    for where in dict.fromkeys((folder, checkout)):
        for name in FILE_NAMES:
            path = find_config_file(checkout, where, name)
            if path is not None:
                return path
    return None


def load_binder_yml(path: Path, ceilings: Ceilings | None = None) -> dict[str, Any]:
    """Parse and validate; ``BuildFailure`` names the field and the reason."""
    ceilings = ceilings or Ceilings()
    data = read_config_bytes(path.parent, PurePosixPath(path.name))  # within its cap
    try:
        raw = load_repo_yaml(data, path.name)
    except RepoYamlError as exc:
        raise BuildFailure(str(exc), suggestions=["Fix the YAML syntax.", ALLOWED_KEYS]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BuildFailure(f"{path.name} must be a mapping of keys to values.",
                           suggestions=[ALLOWED_KEYS])
    try:
        result: dict[str, Any] = BinderYmlSchema().load(raw)
        _check_ceilings(result.get("limits", {}), ceilings)
    except ValidationError as exc:
        lines = field_problems(exc)
        problems = "; ".join(lines[:10]) + (f"; and {len(lines) - 10} more" if len(lines) > 10
                                            else "")
        raise BuildFailure(f"{path.name} is invalid: {problems}",
                           suggestions=[ALLOWED_KEYS]) from exc
    return result


def _check_ceilings(limits: dict[str, Any], ceilings: Ceilings) -> None:
    problems: dict[str, list[str]] = {}
    if "memory" in limits and parse_size(limits["memory"]) > ceilings.memory_bytes:
        problems["memory"] = [f"must be at most {format_size(ceilings.memory_bytes)} on this "
                              "farm"]
    if "cpu" in limits and float(limits["cpu"]) > ceilings.cpu:
        problems["cpu"] = [f"must be at most {ceilings.cpu:g} on this farm"]
    if problems:
        raise ValidationError({"limits": problems})


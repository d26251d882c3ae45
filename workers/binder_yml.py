"""``.binder.yml``: template metadata a repository may declare.

Keys, as the original Binder read them: ``limits`` (``memory``, ``cpu``),
``hardware`` (e.g. ``gpu: 1``), ``services`` (``{name, version, params}``),
``port``, ``command``; plus ``timeout`` (minutes, may only lower the farm's).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from common.errors import BuildFailure

FILE_NAMES = (".binder.yml", ".binder.yaml", "binder.yml")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]?)?$")


class LimitsSchema(Schema):
    class Meta:
        unknown = RAISE

    memory = fields.String()
    cpu = fields.Raw()

    @validates("memory")
    def _memory(self, value: str, **_: Any) -> None:
        if not _MEMORY.match(value.strip()):
            raise ValidationError("must be a size such as 512M or 2G")

    @validates("cpu")
    def _cpu(self, value: Any, **_: Any) -> None:
        try:
            if isinstance(value, bool) or not (math.isfinite(float(value)) and float(value) > 0):
                raise ValueError
        except (TypeError, ValueError):
            raise ValidationError("must be a positive number of CPUs") from None


class ServiceSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    version = fields.String(load_default=None, allow_none=True)
    params = fields.Dict(load_default=dict)


class BinderYmlSchema(Schema):
    class Meta:
        unknown = RAISE

    limits = fields.Nested(LimitsSchema, load_default=dict)
    hardware = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    services = fields.List(fields.Nested(ServiceSchema), load_default=list)
    port = fields.Integer(strict=True, validate=validate.Range(min=1, max=65535))
    command = fields.String(validate=validate.Length(min=1, max=4096))
    timeout = fields.Integer(strict=True, validate=validate.Range(min=1, max=24 * 60),
                             metadata={"description": "build timeout in minutes"})


def find_binder_yml(checkout: Path) -> Path | None:
    for name in FILE_NAMES:
        path = checkout / name
        if path.is_file() and not path.is_symlink():
            return path
    return None


def load_binder_yml(path: Path) -> dict[str, Any]:
    """Parse and validate; ``BuildFailure`` names the field and the reason."""
    try:
        raw = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError as exc:
        raise BuildFailure(f"{path.name} is not valid YAML: {exc}",
                           suggestions=["Fix the YAML syntax."]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BuildFailure(f"{path.name} must be a mapping of keys to values.")
    try:
        result: dict[str, Any] = BinderYmlSchema().load(raw)
    except ValidationError as exc:
        problems = "; ".join(_flatten(exc.normalized_messages()))
        raise BuildFailure(f"{path.name} is invalid: {problems}",
                           suggestions=["Allowed keys: limits (memory, cpu), hardware, "
                                        "services, port, command, timeout."]) from exc
    return result


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out.extend(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(messages, list):
        return [f"{prefix.rstrip('.')}: {m}" for m in messages if isinstance(m, str)] + [
            item for m in messages if not isinstance(m, str) for item in _flatten(m, prefix)]
    return [f"{prefix.rstrip('.')}: {messages}"]

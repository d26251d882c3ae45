"""Reading request bodies and queries through the schemas."""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import Schema

from common.errors import MalformedRequest


def load_json(schema: Schema) -> dict[str, Any]:
    """The JSON body loaded by ``schema``; raises ``MalformedRequest`` when it is not JSON."""
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise MalformedRequest("Request body must be a JSON object.",
                               suggestions=['Send {"repository": URL, "force": false}.'])
    result: dict[str, Any] = schema.load(body)
    return result


def load_query(schema: Schema) -> dict[str, Any]:
    result: dict[str, Any] = schema.load(request.args.to_dict())
    return result

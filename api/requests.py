"""Reading request bodies and queries through the schemas."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from marshmallow import Schema, ValidationError

from api.errors import validation_error
from common.errors import BadQuery, MalformedRequest

_BODY_HINT = 'Send a JSON object such as {"repository": URL, "force": false}.'


def load_json(schema: Schema) -> dict[str, Any]:
    """The JSON body loaded by ``schema``.

    Raises ``MalformedRequest`` when the body is not a JSON object or breaks
    the schema (naming each field and reason); a body over the size limit
    raises werkzeug's ``RequestEntityTooLarge`` (mapped to the same type).
    """
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # also bad UTF-8, absurd nesting
        raise MalformedRequest(f"Request body is not JSON: {exc}.",
                               suggestions=[_BODY_HINT]) from exc
    if not isinstance(body, dict):
        raise MalformedRequest(f"Request body must be a JSON object, not {_json_type(body)}.",
                               suggestions=[_BODY_HINT])
    try:
        result: dict[str, Any] = schema.load(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc
    return result


def load_query(schema: Schema) -> dict[str, Any]:
    """The query string loaded by ``schema``; raises ``BadQuery`` naming each bad parameter."""
    args = request.args
    repeated = sorted(key for key in args if len(args.getlist(key)) > 1)
    if repeated:
        raise BadQuery(f"Query parameters given more than once: {', '.join(repeated)}.",
                       suggestions=["Give each query parameter once."])
    try:
        result: dict[str, Any] = schema.load(args.to_dict())
    except ValidationError as exc:
        raise validation_error(exc, BadQuery, "Query is not valid") from exc
    return result


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"

"""The Blueprint every resource uses: flask-smorest's, reading requests the protocol's way.

``@bp.arguments(Schema)`` reads a JSON body and ``@bp.arguments(Schema,
location="query")`` a query through ``RequestParser``; ``@bp.response``
dumps the view's return value with its schema. Both write the view's part
of the OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import flask
import flask_smorest
from marshmallow import Schema, ValidationError, fields
from webargs.flaskparser import FlaskParser
from werkzeug.routing import BaseConverter

from api.errors import argument_error
from common.errors import BadQuery, MalformedRequest
from common.naming import MAX_NAME_LENGTH, NAME_PATTERN
from common.quoting import quoted

#: Longest key quoted back in an error message.
_MAX_QUOTED = 64


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members, refusing a key given twice (``json`` would keep the last)."""
    members: dict[str, Any] = {}
    for key, value in pairs:
        if key in members:
            raise _RepeatedKey(key)
        members[key] = value
    return members


class _LongNumber(ValueError):
    pass


#: Longest integer a body may hold, in digits: far more than any field takes, and
#: short of Python's own limit, whose refusal speaks of Python.
_MAX_DIGITS = 100


def _integer(text: str) -> int:
    if len(text) > _MAX_DIGITS:
        raise _LongNumber(text[:20])
    return int(text)


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


def _body_hint(schema: Schema) -> str:
    names = [field.data_key or name for name, field in schema.load_fields.items()]
    return f"Send one JSON object with the fields {', '.join(names)}."


def read_json_object(raw: bytes, schema: Schema) -> dict[str, Any]:
    """``raw`` as one JSON object with no repeated key, or ``MalformedRequest`` saying why
    (and suggesting the fields of ``schema``)."""
    try:
        body = json.loads(raw, object_pairs_hook=_unique_keys, parse_int=_integer)
    except _RepeatedKey as exc:
        raise MalformedRequest(f"Request body has the key {quoted(exc.key, _MAX_QUOTED)} "
                               "more than once.",
                               suggestions=["Give each key once."]) from exc
    except RecursionError as exc:
        raise MalformedRequest("Request body is not JSON: it is nested too deeply.",
                               suggestions=[_body_hint(schema)]) from exc
    except json.JSONDecodeError as exc:
        raise MalformedRequest(f"Request body is not JSON: {exc}.",
                               suggestions=[_body_hint(schema)]) from exc
    except _LongNumber as exc:
        raise MalformedRequest("Request body is not JSON: a number in it is too long.",
                               suggestions=[_body_hint(schema)]) from exc
    except ValueError as exc:  # bad UTF-8
        raise MalformedRequest(f"Request body is not JSON: {exc}.",
                               suggestions=[_body_hint(schema)]) from exc
    if not isinstance(body, dict):
        raise MalformedRequest(f"Request body must be a JSON object, not {_json_type(body)}.",
                               suggestions=[_body_hint(schema)])
    return body


class RequestParser(FlaskParser):
    """webargs' Flask parser with the protocol's rules for requests.

    - A JSON body is read whatever its ``Content-Type`` (Binder clients
      differ), must be one object and may not repeat a key.
    - A query parameter may not be repeated (unless its field is a list);
      unknown parameters are refused by the schemas (``unknown = RAISE``),
      not dropped as webargs does by default.
    - Refused arguments raise the protocol's error (``api.errors``), never
      webargs' own 422 body.
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": None, "querystring": None}

    def load_json(self, req: flask.Request, schema: Schema) -> Any:
        return read_json_object(req.get_data(cache=True), schema)

    def load_querystring(self, req: flask.Request, schema: Schema) -> Any:
        lists = {field.data_key or name for name, field in schema.fields.items()
                 if isinstance(field, fields.List | fields.Tuple)}
        repeated = sorted(key for key in req.args
                          if key not in lists and len(req.args.getlist(key)) > 1)
        if repeated:
            raise BadQuery(f"Query parameters given more than once: {', '.join(repeated)}.",
                           suggestions=["Give each query parameter once."])
        return super().load_querystring(req, schema)

    def handle_error(self, error: ValidationError, req: flask.Request, schema: Schema, *,
                     error_status_code: int | None,
                     error_headers: Mapping[str, str] | None) -> NoReturn:
        raise argument_error(error)


class Blueprint(flask_smorest.Blueprint):
    """A resource's routes: flask-smorest's Blueprint reading with ``RequestParser``."""

    ARGUMENTS_PARSER = RequestParser()

    def arguments(self, schema: type[Schema] | Schema, **kwargs: Any) -> Any:
        """flask-smorest's ``arguments``, with a schema class made into an instance once
        (webargs would make a new one for every request)."""
        return super().arguments(schema() if isinstance(schema, type) else schema, **kwargs)


class NameConverter(BaseConverter):
    """``<name:...>``: a build or template name in a path.

    Any path segment is routed (an unknown or impossible name is the
    protocol's ``noBuildInfo``/``doesNotExist``, not a routing 404); the
    document gives the form the farm's names take (``common.naming``).
    """

    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH,
                              "pattern": NAME_PATTERN}

"""JSON answers written by orjson (in C) instead of the standard library's encoder.

Every answer of the API is a dumped schema or a small dict; writing one with
``json.dumps`` costs a build read about four times what orjson takes. The text
is the same JSON Flask's own provider writes (compact, keys in the order given,
a final newline) except that non-ASCII characters are written as UTF-8 rather
than ``\\uXXXX`` escapes; dates and other values orjson leaves to it are turned
into text exactly as Flask does. Anything orjson refuses (an integer beyond 64
bits, ...) falls back to Flask's encoder. Only answers (``jsonify``) change:
``dumps`` (the OpenAPI document, ``tojson`` in pages) and ``loads`` (request
bodies) stay Flask's own.

Every answer is the farm's state at one moment, some of it for a key only
(``/health/`` says more with one), so none may be kept by a browser's or a
proxy's cache (``Cache-Control: no-store``) and served for a later request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from flask.json.provider import DefaultJSONProvider

if TYPE_CHECKING:
    from werkzeug.sansio.response import Response

#: Dates go to Flask's ``default`` (HTTP dates), dataclasses likewise; dict keys
#: that are not strings become strings, as ``json.dumps`` does.
OPTIONS = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
           | orjson.OPT_PASSTHROUGH_DATACLASS)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing compact answers (``jsonify``) through orjson."""

    def response(self, *args: Any, **kwargs: Any) -> Response:
        answer = self._written(*args, **kwargs)
        answer.headers.setdefault("Cache-Control", "no-store")
        return answer

    def _written(self, *args: Any, **kwargs: Any) -> Response:
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)  # indented for people
        obj = self._prepare_response_obj(args, kwargs)
        options = OPTIONS | orjson.OPT_APPEND_NEWLINE
        if self.sort_keys:
            options |= orjson.OPT_SORT_KEYS
        try:
            body = orjson.dumps(obj, default=self.default, option=options)
        except orjson.JSONEncodeError:
            return super().response(*args, **kwargs)
        response_class: Any = self._app.response_class  # a flask.Response
        return response_class(body, mimetype=self.mimetype)

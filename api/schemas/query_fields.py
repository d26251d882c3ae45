"""Fields of query strings that Python's own parsing would read too generously."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import fields

#: An integer as a query writes it: ASCII digits, a minus sign at most.
ASCII_INTEGER = re.compile(r"-?[0-9]+")


class QueryInteger(fields.Integer):
    """An integer in ASCII digits only.

    ``int()`` also reads other scripts' digits (``١``), full-width ones,
    ``1_0``, and surrounding whitespace: a query spelled so is refused (422),
    so each number has one spelling (in logs, caches and links alike).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and not ASCII_INTEGER.fullmatch(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)

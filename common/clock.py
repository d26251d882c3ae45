"""The farm's one clock: timezone-aware UTC, as MongoDB stores it."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)

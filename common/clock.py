"""The farm's one clock: timezone-aware UTC, as MongoDB stores it."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: How far the clocks of the hosts writing build records may differ (they keep time by
#: NTP; the README asks for ten minutes). A reader that goes on from "what ended since
#: my last read" looks back this much further, so a record written late is not missed.
CLOCK_SLACK = dt.timedelta(minutes=10)

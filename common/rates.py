"""Start rates as settings write them: ``N/UNIT``, or empty for no limit.

One reading for the settings check at load and for the limiter that counts
starts, so a rate the limiter could not count stops the process as it starts.
"""

from __future__ import annotations

from limits import RateLimitItem, parse_many

#: How a rate is written: the units the limiter counts in.
RATE_FORM = "one N/second, N/minute, N/hour, N/day, N/month or N/year (e.g. 60/hour)"


def parse_rate(text: str) -> RateLimitItem | None:
    """``text`` as one limit, ``None`` when empty; ``ValueError`` (saying how to write
    it) for text the limiter cannot count or for several limits, of which it would
    count only the first."""
    if not text.strip():
        return None
    try:
        limits = parse_many(text.strip())
    except ValueError as exc:
        raise ValueError(f"must be {RATE_FORM}, or empty for no limit ({exc})") from exc
    if len(limits) != 1:
        raise ValueError(f"must be {RATE_FORM}, not several (only the first would count)")
    return limits[0]


def check_rate(text: str) -> None:
    """The settings check: raise ``ValueError`` unless ``text`` is a rate or empty."""
    parse_rate(text)

"""Memory and disk sizes as people write them: ``512M``, ``2G``, ``1.5 GiB``, ``1024``."""

from __future__ import annotations

import re

SIZE_PATTERN = re.compile(r"^(\d{1,15})(\.\d{1,6})?\s*([kKmMgGtT]?)(i?[bB]?)$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Bytes in ``text`` (binary units; a bare number is bytes); ``ValueError`` if it is none."""
    match = SIZE_PATTERN.match(text.strip())
    if not match:
        raise ValueError("must be a size such as 512M or 2G")
    whole, fraction, unit, _ = match.groups()
    return int(float(whole + (fraction or "")) * _UNITS[unit.lower()])


def format_size(size: int) -> str:
    """``size`` bytes as people write it, in the largest unit that holds it whole (``64G``,
    ``1536M``); :func:`parse_size` reads it back."""
    for unit in ("T", "G", "M", "K"):
        factor = _UNITS[unit.lower()]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)

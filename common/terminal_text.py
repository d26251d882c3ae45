"""A log line as a terminal shows it.

Progress bars (pip, conda, curl) draw one line again and again, each
redraw after a carriage return. BuildKit's plain progress keeps those
carriage returns inside one log line, after its step prefix
(``#7 1.23 ``), so the stored log holds every redraw. What a person
reads, on the build page or from the command line, is the line as a
terminal leaves it: the step prefix, then the last redraw. The stored log
and its text download keep every byte.
"""

from __future__ import annotations

import re

#: What BuildKit's plain progress puts before each line a step printed.
STEP_PREFIX = re.compile(r"#\d+ \d+\.\d+ ")


def shown_line(text: str) -> str:
    """``text`` as a terminal leaves it: the last non-empty redraw after a carriage return.

    A redraw shorter than the one before is not padded with what it did not
    overwrite: progress bars redraw whole lines, and the remains of an
    earlier redraw would only read as noise.
    """
    if "\r" not in text:
        return text
    prefix = STEP_PREFIX.match(text)
    head = prefix.group(0) if prefix else ""
    redraws = [part for part in text[len(head):].split("\r") if part]
    return head + (redraws[-1] if redraws else "")


__all__ = ["STEP_PREFIX", "shown_line"]

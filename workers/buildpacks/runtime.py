"""``runtime.txt``: which Python or R a repository asks for.

``python-X.Y`` (or ``python-X.Y.Z``) asks for that Python (``python-3`` alone
for the base image's, ``python-2`` for 2.7, as repo2docker reads them; a
``-YYYY-MM-DD`` after it, or alone, is accepted and unused, as there); the base image's
own (3.11) is used as it is, any other comes from the conda channels of
``BINDER_CONDA_CHANNELS``. ``r-[X.Y-]YYYY-MM-DD`` asks for R, with packages
from the CRAN snapshot of that date; as in repo2docker, the date is
required. Anything else fails the build with a sentence.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from common.errors import BuildFailure

#: The Python of the base image (Debian bookworm's).
BASE_PYTHON = "3.11"
#: The R Debian ships (bookworm's r-base-core).
DEBIAN_R = "4.2"

#: A few ASCII digits each: Python turns no more than 4300 digits into an integer. A
#: date may follow (or stand for) the version, as repo2docker reads ``name-version-date``
#: for every runtime; a Python has no use for it.
_PYTHON = re.compile(r"^python-(?:([0-9]{1,4})(?:\.([0-9]{1,4})(?:\.([0-9]{1,4}))?)?"
                     r"(?:-([0-9]{4}-[0-9]{2}-[0-9]{2}))?|([0-9]{4}-[0-9]{2}-[0-9]{2}))$")
#: The Python a major version alone stands for.
MAJOR_PYTHONS = {2: "2.7", 3: BASE_PYTHON}
_R = re.compile(r"^r-(?:(\d+)\.(\d+)(?:\.\d+)?-)?(\d{4}-\d{2}-\d{2})$")
_R_NO_DATE = re.compile(r"^r-(\d+(?:\.\d+)*)?$")

SUPPORTED = ("python-X.Y (for example python-3.12) or r-YYYY-MM-DD "
             "(for example r-2024-01-01, R with packages from that day)")


@dataclass(frozen=True)
class Runtime:
    """What ``runtime.txt`` asks for: ``language`` is ``python`` or ``r``."""

    language: str
    version: str | None = None  # X.Y
    date: str | None = None  # YYYY-MM-DD, R only

    @property
    def is_base_python(self) -> bool:
        return self.language == "python" and self.version == BASE_PYTHON


def parse_runtime(text: str, name: str = "runtime.txt") -> Runtime:
    """The runtime of a ``runtime.txt``; raises ``BuildFailure`` with a sentence."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    if len(lines) != 1:
        raise BuildFailure(f"{name} must hold one line, such as {SUPPORTED}.")
    line = lines[0]
    match = _PYTHON.match(line)
    if match and (match.group(4) or match.group(5)):
        _check_date(match.group(4) or match.group(5), name)
    if match and match.group(5):  # python-YYYY-MM-DD: no version, the default Python
        return Runtime("python", BASE_PYTHON)
    if match and match.group(2) is not None:
        return Runtime("python", f"{int(match.group(1))}.{int(match.group(2))}")
    if match and int(match.group(1)) in MAJOR_PYTHONS:
        return Runtime("python", MAJOR_PYTHONS[int(match.group(1))])
    match = _R.match(line)
    if match:
        date = match.group(3)
        _check_date(date, name)
        version = f"{match.group(1)}.{match.group(2)}" if match.group(1) else None
        if version and version != DEBIAN_R:
            raise BuildFailure(
                f"{name} asks for R {version}, but this farm provides R {DEBIAN_R} only "
                f"(Debian's); write r-{DEBIAN_R}-{date} or r-{date}.")
        return Runtime("r", version or DEBIAN_R, date)
    if _R_NO_DATE.match(line):
        raise BuildFailure(f"{name} asks for R without a date; write r-YYYY-MM-DD "
                           "(for example r-2024-01-01): the date picks the CRAN snapshot "
                           "packages come from.")
    raise BuildFailure(f"{name} says `{line[:60]}`, which this farm cannot build; "
                       f"it understands {SUPPORTED}.")


def _check_date(date: str, name: str) -> None:
    try:
        datetime.date.fromisoformat(date)
    except ValueError:
        raise BuildFailure(f"{name}: {date} is not a date (YYYY-MM-DD).") from None

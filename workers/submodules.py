"""Git submodules: never fetched, and the build log says which folders stay empty.

A submodule may live at any URL, relative ones included, and each would need the
address checks and allowed hosts of the main fetch (``common/addresses.py``) and a
share of the download limit. The farm fetches only the repository's own commit, so
a submodule's folder is empty in the image; the log names those folders, so that a
user reading it knows why their files are missing.
"""

from __future__ import annotations

from collections.abc import Callable

from workers.repo_yaml import shorten

#: How many submodule folders the log names before it counts the rest.
MAX_NAMED = 5


def submodule_notice(paths: list[str]) -> str | None:
    """The build-log line naming the submodules left empty; ``None`` without any."""
    if not paths:
        return None
    named = ", ".join(shorten(path) for path in paths[:MAX_NAMED])
    more = f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else ""
    return (f"this farm does not fetch Git submodules: {named}{more} "
            f"{'is an empty folder' if len(paths) == 1 else 'are empty folders'} "
            "in the image")


def report_submodules(paths: list[str], say: Callable[[str], None]) -> None:
    """Say which of the checkout's folders are submodules left empty (``paths``, from
    the tree's listing: ``workers.git.Tree``)."""
    notice = submodule_notice(paths)
    if notice is not None:
        say(notice)

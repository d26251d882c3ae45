"""Where code comes from: the base class of every source.

A source recognises repository URLs it owns (``parse``), names the build,
and says how to clone. Git does the fetching for every source (see
``workers/git.py``); a source only turns a URL into a ``RepoSpec``.

To add a source: write a subclass in its own module and put it in
``SOURCES`` in ``workers/sources/__init__.py`` (order is precedence; the
generic Git source stays last).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from urllib.parse import urlsplit

from common.addresses import check_url
from common.config import Config
from common.errors import BadRepoSource
from common.naming import build_name, display_name

# A ref must look like a Git ref or SHA: no leading dash (option injection),
# no "..", no control characters, no ref-spec syntax.
_REF_OK = re.compile(r"^(?![-/])(?!.*\.\.)(?!.*//)[A-Za-z0-9._/+@-]{1,200}(?<![./])$")
# A path segment; never "." or ".." (they would let git fetch another path).
_PART_OK = re.compile(r"^(?!-)(?!\.{1,2}$)[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class RepoSpec:
    """A repository request, understood: what to clone and what to call it."""

    source: str
    repository: str  # the URL as the user gave it, normalised
    clone_url: str
    owner: str
    repo: str
    ref: str | None

    @property
    def name(self) -> str:
        return build_name(self.owner, self.repo, self.ref)

    @property
    def display_name(self) -> str:
        return display_name(self.owner, self.repo, self.ref)


def check_ref(ref: str | None) -> str | None:
    if ref is None or ref == "":
        return None
    if not _REF_OK.match(ref):
        raise BadRepoSource(f"{ref!r} is not a valid branch, tag or commit.",
                            suggestions=["Use a branch or tag name, or a 40-character SHA."])
    return ref


def check_part(part: str, what: str) -> str:
    if not _PART_OK.match(part):
        raise BadRepoSource(f"{part!r} is not a valid {what}.",
                            suggestions=["Use https://github.com/OWNER/REPO."])
    return part


def check_url_policy(url: str, config: Config) -> None:
    """Refuse schemes and hosts that may not reach git (see the security model).

    Addresses written in the URL are checked here, at once; host names are
    resolved, checked and pinned by the fetch (``common/addresses.py``).
    """
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1].lower()
    allowed = {h.lower() for h in config.allowed_source_hosts}
    if (parts.scheme == "https" and host) or (parts.scheme == "http" and host in allowed):
        check_url(url, config.allowed_source_hosts, resolve=None)
        return
    hint = "Use an https URL" + (
        "" if parts.scheme != "http" else
        "; plain http only for hosts in BINDER_ALLOWED_SOURCE_HOSTS")
    raise BadRepoSource(f"{url!r} is not an allowed repository URL.", suggestions=[hint + "."])


class Source(ABC):
    """A kind of repository host."""

    #: short id stored with the build
    id: str = "source"

    def __init__(self, config: Config) -> None:
        self.config = config

    @abstractmethod
    def parse(self, url: str) -> RepoSpec | None:
        """Return a ``RepoSpec`` if ``url`` belongs to this source, else ``None``.

        Raise ``BadRepoSource`` when the URL is this source's but malformed.
        """

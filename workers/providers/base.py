"""Content providers: where a build's content comes from.

A provider owns a family of repository specs (URLs or DOIs) and does three
things with one of them:

``detect(text)``
    Does this spec belong to me? Return a ``Spec`` (the spec understood:
    normalised repository, ref, display name, build name pieces) or
    ``None``; raise ``BadRepoSource`` when the spec is mine but malformed.
    No network: the API calls it inside a request.
``resolve(spec, limits)``
    Turn the spec into an immutable **content id** (a commit SHA for Git,
    a digest of an archive record's version and file list) plus whatever
    ``fetch`` needs. Network, bounded by ``limits.timeout``; the fetch
    phase calls it, and the API's cache-hit fast path may too, with a short
    bound.
``fetch(resolved, dest, limits, say)``
    Put exactly that content into the empty directory ``dest``, within the
    time, size and file-count limits, refusing anything unsafe.

Failures a user can act on raise ``BuildFailure`` (or ``BadRepoSource``
at detect) with a sentence and suggestions; never a raw traceback.

Tokens for private repositories come from ``BINDER_SOURCE_TOKENS`` (see
``FetchLimits.token_for``); a provider sends them to their own host only,
in a header (never in a URL, record, log line or image).

**Adding a provider** is one module and one list entry: write a subclass
of ``ContentProvider`` (or of ``GitProvider`` / ``ArchiveProvider``,
which already resolve and fetch) in ``workers/providers/<name>.py``, and
put it in ``PROVIDERS`` in ``workers/providers/__init__.py``. The list is
precedence: the first provider whose ``detect`` claims a spec wins, so a
specific provider goes before a general one (the generic Git provider
stays last). If it needs a base URL or a list of hosts, declare the
setting in ``common/config.py`` so tests can aim it at a loopback server.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.addresses import CheckedTarget, Resolver, check_url, resolve_host
from common.config import Config
from common.errors import BadRepoSource, BuildFailure
from common.models import FailureCause
from common.naming import preferred_name
from common.quoting import quoted

Say = Callable[[str], None]

# A ref must look like a Git ref or SHA: no leading dash (option injection),
# no "..", no control characters, no ref-spec syntax.
_REF_OK = re.compile(r"^(?![-/])(?!.*\.\.)(?!.*//)[A-Za-z0-9._/+@-]{1,200}(?<![./])$")
# A path segment; never "." or ".." (they would let git fetch another path).
_PART_OK = re.compile(r"^(?!-)(?!\.{1,2}$)[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class Spec:
    """A repository spec, understood (no network yet).

    ``repository`` and ``ref`` together say which content is meant: two
    specs with equal ``repository`` and ``ref`` are the same build, and
    get the same name. ``text`` is the canonical spec: detecting it again
    gives this ``Spec`` back (the fetch phase does that from the record).
    """

    provider: str
    repository: str
    ref: str | None
    text: str
    display_name: str
    #: pieces of the preferred build name, joined with ``-``
    name_parts: tuple[str, ...]
    #: what this provider needs later (clone URL, record id); not identity
    locator: Mapping[str, str] = field(default_factory=dict)

    @property
    def preferred_name(self) -> str:
        return preferred_name(self.name_parts)


@dataclass(frozen=True)
class Resolved:
    """A spec resolved to immutable content: what fetch fetches."""

    spec: Spec
    #: the provider that resolved it (a DOI resolves through Zenodo, ...)
    provider: str
    content_id: str
    #: one line for the log: "commit 1a2b...", "Zenodo record 123 (2 files)"
    description: str
    #: the commit SHA for Git content, else None
    commit: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FetchLimits:
    """Bounds of one resolve or fetch: time, bytes, files, git's memory, and the tokens to
    use."""

    timeout: float
    max_bytes: int
    max_files: int
    max_ratio: int = 100
    git_memory: int = 0  # bytes each git process may allocate; 0 for no bound
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    deadline: float = field(default=0.0)
    #: called between steps; raises to stop (the phase guard: cancel, lease lost)
    interrupt: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.deadline:
            object.__setattr__(self, "deadline", time.monotonic() + self.timeout)

    @classmethod
    def from_config(cls, config: Config, timeout: float | None = None,
                    interrupt: Callable[[], None] | None = None) -> FetchLimits:
        return cls(timeout=float(timeout if timeout is not None else config.clone_timeout),
                   max_bytes=int(config.max_repo_mb) * 1024 * 1024,
                   max_files=int(config.max_repo_files),
                   max_ratio=int(config.max_archive_ratio),
                   git_memory=int(config.git_memory_mb) * 1024 * 1024,
                   tokens=parse_tokens(config.source_tokens), interrupt=interrupt)

    def remaining(self, what: str) -> float:
        """Seconds left; raises ``BuildFailure`` naming ``what`` when none are.

        Also the point where an interrupted fetch (cancelled, lease lost) stops.
        """
        if self.interrupt is not None:
            self.interrupt()
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BuildFailure(f"{what} took longer than {int(self.timeout)} s and was stopped.",
                               suggestions=["Is the content very large or its host slow? "
                                            "Retry later."], cause=FailureCause.TIMEOUT)
        return left

    def token_for(self, host: str) -> str | None:
        """The token configured for ``host`` (``host:port`` first, then the bare host)."""
        host = host.lower()
        return self.tokens.get(host) or self.tokens.get(host.rsplit(":", 1)[0])


def parse_tokens(entries: tuple[str, ...]) -> dict[str, str]:
    """``("host=token", "host:port=user:token")`` as a dict by lower-case host."""
    tokens = {}
    for entry in entries:
        host, sep, token = entry.partition("=")
        if sep and host.strip() and token.strip():
            tokens[host.strip().lower()] = token.strip()
    return tokens


def check_ref(ref: str | None, hint: str = "Use a branch or tag name, or a commit SHA.") \
        -> str | None:
    if ref is None or ref == "":
        return None
    if not _REF_OK.match(ref):
        raise BadRepoSource(f"{quoted(ref)} is not a valid branch, tag or commit.",
                            suggestions=[hint])
    return ref


def check_part(part: str, what: str, hint: str) -> str:
    if not _PART_OK.match(part):
        raise BadRepoSource(f"{quoted(part)} is not a valid {what}.", suggestions=[hint])
    return part


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``, lower-case, without credentials."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1].lower()


def check_url_policy(url: str, config: Config) -> None:
    """Refuse schemes and hosts that may not be fetched from (see the security model).

    Addresses written in the URL are checked here, at once, without DNS;
    host names are resolved, checked and pinned when fetching
    (``checked_target``).
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # brackets without an IPv6 address, a host NFKC would split
        raise BadRepoSource(f"{quoted(url)} is not a repository URL: its host is not valid.",
                            suggestions=["Use an https URL such as "
                                         "https://github.com/OWNER/REPO."]) from exc
    host = host_of(url)
    allowed = {h.lower() for h in config.allowed_source_hosts}
    if (parts.scheme == "https" and host) or (parts.scheme == "http" and host in allowed):
        check_url(url, config.allowed_source_hosts, resolve=None)
        return
    hint = "Use an https URL" + (
        "" if parts.scheme != "http" else
        "; plain http only for hosts in BINDER_ALLOWED_SOURCE_HOSTS")
    raise BadRepoSource(f"{quoted(url)} is not an allowed repository URL.",
                        suggestions=[hint + "."])


def checked_target(url: str, config: Config, resolve: Resolver = resolve_host) -> CheckedTarget:
    """``url`` with its host resolved and checked now; whoever connects uses these addresses.

    A refusal is a ``BuildFailure`` with the address check's sentence.
    """
    try:
        return check_url(url, config.allowed_source_hosts, resolve=resolve)
    except BadRepoSource as exc:
        raise BuildFailure(exc.message, suggestions=exc.suggestions) from exc


def split_base(text: str, base: str) -> str | None:
    """The path after configured ``base`` (scheme and host case-insensitive), else ``None``."""
    base = base.rstrip("/")
    if text.lower().startswith(base.lower() + "/"):
        return text[len(base) + 1:]
    return None


class ContentProvider(ABC):
    """A kind of content source; see the module docstring for the contract."""

    #: short id stored with the build (``provider``)
    id: str = "provider"
    #: how the README and errors name it
    label: str = "provider"

    def __init__(self, config: Config) -> None:
        self.config = config

    @abstractmethod
    def detect(self, text: str) -> Spec | None:
        """The ``Spec`` when ``text`` is this provider's, else ``None`` (no network)."""

    @abstractmethod
    def resolve(self, spec: Spec, limits: FetchLimits) -> Resolved:
        """The immutable content id of ``spec`` (network, within ``limits``)."""

    def resolved_as(self, spec: Spec, content_id: str) -> Resolved | None:
        """``spec`` already resolved to ``content_id`` (by the API, for this same start),
        ready to fetch, its addresses checked now; ``None`` when only ``resolve`` can
        tell what to fetch (the default)."""
        return None

    @abstractmethod
    def fetch(self, resolved: Resolved, dest: Path, limits: FetchLimits, say: Say) -> None:
        """Put the resolved content into the empty directory ``dest``."""

    def with_ref(self, spec: Spec, ref: str) -> str:
        """``spec`` at ``ref``, spelled as this provider's URLs spell a ref (the default:
        it has none; ``BadRepoSource``)."""
        raise BadRepoSource(f"{quoted(spec.text)} is {self.label} content, which has no branches "
                            "or tags to choose.",
                            suggestions=["Leave the ref out; name the version in the "
                                         "repository itself."])

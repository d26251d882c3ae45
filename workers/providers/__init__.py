"""Content providers by precedence: the first whose ``detect`` claims a spec wins.

``parse_spec`` is the one entry point from a repository spec (a URL or a
DOI, as a launcher sends it) to a ``Spec``; the API calls it (no network),
and so does anything that maps other spec syntaxes (BinderHub's
``gh/...``, ``zenodo/...`` prefixes) onto these providers. ``provider_for``
gives the provider that owns a stored build, for the fetch phase. How to
add a provider: see ``workers/providers/base.py``.
"""

from __future__ import annotations

from common.config import Config, get_config
from common.errors import BadRepoSource
from common.quoting import quoted
from workers.providers.base import ContentProvider, FetchLimits, Resolved, Spec
from workers.providers.dataverse import DataverseProvider
from workers.providers.doi import DoiProvider
from workers.providers.figshare import FigshareProvider
from workers.providers.gist import GistProvider
from workers.providers.git import GitProvider
from workers.providers.github import GitHubProvider
from workers.providers.gitlab import GitLabProvider
from workers.providers.zenodo import ZenodoProvider

#: Precedence order: providers with their own hosts or DOI prefixes first,
#: then any DOI, then any Git URL (last, it takes every https URL).
PROVIDERS: list[type[ContentProvider]] = [
    GitHubProvider,
    GitLabProvider,
    GistProvider,
    ZenodoProvider,
    FigshareProvider,
    DataverseProvider,
    DoiProvider,
    GitProvider,
]

_HINT = ("Use a repository URL such as https://github.com/OWNER/REPO, a Zenodo, Figshare "
         "or Dataverse record URL, or a DOI.")


def parse_spec(text: str, config: Config | None = None) -> Spec:
    """Understand a repository spec or raise ``BadRepoSource`` saying what to do."""
    config = config or get_config()
    text = text.strip()
    if not text or text.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise BadRepoSource(f"{quoted(text)} is not a repository URL.", suggestions=[_HINT])
    for provider_class in PROVIDERS:
        spec = provider_class(config).detect(text)
        if spec is not None:
            return spec
    raise BadRepoSource(f"No provider handles {quoted(text)}.", suggestions=[_HINT])


def provider_by_id(provider_id: str, config: Config | None = None) -> ContentProvider:
    """The provider named ``provider_id``; ``BadRepoSource`` for an unknown one."""
    for provider_class in PROVIDERS:
        if provider_class.id == provider_id:
            return provider_class(config or get_config())
    raise BadRepoSource(f"No content provider is called {quoted(provider_id)}.",
                        suggestions=["Start the build again from its repository URL."])


def provider_for(spec: Spec, config: Config | None = None) -> ContentProvider:
    return provider_by_id(spec.provider, config)


__all__ = ["PROVIDERS", "ContentProvider", "FetchLimits", "Resolved", "Spec", "parse_spec",
           "provider_by_id", "provider_for"]

"""Sources by precedence: the first whose ``parse`` claims a URL wins."""

from __future__ import annotations

from common.config import Config, get_config
from common.errors import BadRepoSource
from workers.sources.base import RepoSpec, Source
from workers.sources.git import GitSource
from workers.sources.github import GitHubSource

#: Precedence order; the generic Git source stays last.
SOURCES: list[type[Source]] = [GitHubSource, GitSource]


def parse_repository(url: str, config: Config | None = None) -> RepoSpec:
    """Understand a repository URL or raise ``BadRepoSource`` saying what to do."""
    config = config or get_config()
    url = url.strip()
    if not url or url.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise BadRepoSource(f"{url!r} is not a repository URL.",
                            suggestions=["Use https://github.com/OWNER/REPO."])
    for source_class in SOURCES:
        spec = source_class(config).parse(url)
        if spec is not None:
            return spec
    raise BadRepoSource(f"No source handles {url!r}.",
                        suggestions=["Use https://github.com/OWNER/REPO or an https Git URL."])


__all__ = ["SOURCES", "RepoSpec", "Source", "parse_repository"]

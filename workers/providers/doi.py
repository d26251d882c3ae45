"""Any DOI: ``doi:10.NNNN/SUFFIX``, ``10.NNNN/SUFFIX`` or ``https://doi.org/10.NNNN/SUFFIX``.

What a DOI holds is known only once its resolver answers, so this
provider accepts every DOI no more specific provider claims (Zenodo and
Figshare know their own prefixes) and, when resolving, follows the
resolver's redirects (``BINDER_DOI_RESOLVER_URL``, each hop checked before
anything connects to it) until a data-repository provider recognises the
landing page: Zenodo, Figshare, or one of the Dataverse installations in
``BINDER_DATAVERSE_URLS``. Anywhere else fails the build with a sentence.
The build name is ``doi-<doi>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from common.config import Config
from common.errors import BuildFailure
from workers.providers.archive import ArchiveProvider, doi_of
from workers.providers.base import (
    ContentProvider,
    FetchLimits,
    Resolved,
    Say,
    Spec,
    host_of,
)
from workers.providers.http import MAX_HOPS, HttpClient


def follow_doi(doi: str, config: Config, limits: FetchLimits,
               providers: Sequence[ArchiveProvider]) -> Spec:
    """The landing spec of ``doi`` among ``providers``, following the resolver's redirects.

    Each hop goes on only while it stays on the resolver's host or a
    provider's (a landing can redirect once more, as Zenodo's ``/doi/``
    pages do); the first location one of ``providers`` recognises is the
    answer. Raises
    ``BuildFailure`` for a DOI that does not resolve, or that leads anywhere else.
    """
    resolver = config.doi_resolver_url.rstrip("/")
    client = HttpClient(config, limits, "the DOI resolver")
    url = f"{resolver}/{quote(doi, safe='/:;()._-')}"
    hosts = {host_of(resolver)}.union(*(provider.hosts() for provider in providers))
    for _hop in range(MAX_HOPS):
        location = client.redirect_of(url, f"the DOI {doi}")
        if location is None:
            break
        for provider in providers:
            spec = provider.landing(location)
            if spec is not None:
                return spec
        if host_of(location) not in hosts:
            names = ", ".join(provider.label for provider in providers)
            raise BuildFailure(
                f"The DOI {doi} leads to {host_of(location)}, which is not a provider this "
                f"farm builds from ({names}).",
                suggestions=["Use a DOI of a Zenodo, Figshare or Dataverse record, or the "
                             "repository's own URL (operators: add Dataverse installations "
                             "to BINDER_DATAVERSE_URLS)."])
        url = location
    raise BuildFailure(f"The DOI {doi} does not lead to a record (the resolver did not "
                       "redirect to one).",
                       suggestions=["Check the DOI; a new DOI can take a while to register."])


class DoiProvider(ContentProvider):
    id = "doi"
    label = "DOI"

    def detect(self, text: str) -> Spec | None:
        doi = doi_of(text, self.config.doi_resolver_url)
        if doi is None:
            return None
        return Spec(provider=self.id, repository=f"doi:{doi.lower()}", ref=None,
                    text=f"doi:{doi}", display_name=f"doi:{doi}", name_parts=("doi", doi),
                    locator={"doi": doi})

    def _landing_providers(self) -> list[ArchiveProvider]:
        from workers.providers import PROVIDERS

        return [provider(self.config) for provider in PROVIDERS
                if issubclass(provider, ArchiveProvider)]

    def resolve(self, spec: Spec, limits: FetchLimits) -> Resolved:
        landing = follow_doi(spec.locator["doi"], self.config, limits,
                             self._landing_providers())
        provider = next(p for p in self._landing_providers() if p.id == landing.provider)
        resolved = provider.resolve(landing, limits)
        return Resolved(spec=spec, provider=resolved.provider,
                        content_id=resolved.content_id, commit=resolved.commit,
                        description=f"doi:{spec.locator['doi']} is {resolved.description}",
                        detail={**resolved.detail, "landing": landing})

    def fetch(self, resolved: Resolved, dest: Path, limits: FetchLimits, say: Say) -> None:
        landing: Spec = resolved.detail["landing"]
        provider = next(p for p in self._landing_providers() if p.id == landing.provider)
        provider.fetch(resolved, dest, limits, say)


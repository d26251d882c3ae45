"""Figshare: ``BASE/articles/[TYPE/]TITLE/N[/VERSION]`` or a Figshare DOI.

``BINDER_FIGSHARE_URL`` is the site (``https://figshare.com``) and
``BINDER_FIGSHARE_API_URL`` the API (``https://api.figshare.com/v2``):
``/articles/N`` (the latest version) or ``/articles/N/versions/V`` answers
``version`` and ``files`` (``name``, ``size``, ``computed_md5``,
``download_url``, ``is_link_only``), as Figshare's API documentation and
repo2docker's Figshare provider describe. Link-only files are not
fetched. A DOI (``doi:10.6084/m9.figshare.N[.vV]``) resolves through the
DOI resolver to the article page. The build name is ``figshare-N[-vV]``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from workers.providers.archive import ArchiveFile, ArchiveProvider, ArchiveRecord, shape_error
from workers.providers.base import Spec, check_url_policy, host_of, split_base
from workers.providers.http import HttpClient

_DOI = re.compile(r"^10\.6084/m9\.figshare\.(?P<record>\d{1,20}(?:\.v\d{1,6})?)$",
                  re.IGNORECASE)
_NUMBER = re.compile(r"^\d{1,20}$")
#: Figshare's item types, the first path segment of today's article URLs.
ITEM_TYPES = frozenset({
    "dataset", "figure", "media", "presentation", "poster", "code", "software", "thesis",
    "journal_contribution", "online_resource", "preprint", "book", "chapter", "report",
    "conference_contribution", "peer_review", "educational_resource", "standard",
    "composition", "funding", "physical_object", "data_management_plan", "workflow",
    "monograph", "performance", "event", "service", "model", "dissertation"})


def figshare_auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


class FigshareProvider(ArchiveProvider):
    id = "figshare"
    label = "Figshare"
    auth = staticmethod(figshare_auth)
    doi_pattern = _DOI
    record_word = "article"

    @property
    def base(self) -> str:
        return str(self.config.figshare_url).rstrip("/")

    @property
    def api(self) -> str:
        return str(self.config.figshare_api_url).rstrip("/")

    def hosts(self) -> set[str]:
        return {host_of(self.base), host_of(self.api)}

    def sites(self) -> list[str]:
        return [self.base]

    def hint(self) -> str:
        return f"Use {self.base}/articles/TYPE/TITLE/N[/VERSION] or a Figshare DOI."

    def landing(self, url: str) -> Spec | None:
        rest = split_base(url, self.base)
        if rest is None or urlsplit(url).query:
            return None
        parts = [part for part in urlsplit(rest).path.split("/") if part]
        if not parts or parts[0] != "articles":
            return None
        parts = parts[1:]
        if parts and parts[0] in ITEM_TYPES and len(parts) > 1:
            parts = parts[1:]
        # TITLE/N[/VERSION], or N[/VERSION] (the canonical form)
        numbers = parts if parts and _NUMBER.match(parts[0]) else parts[1:]
        if not 1 <= len(numbers) <= 2 or not all(_NUMBER.match(n) for n in numbers):
            return None
        check_url_policy(self.base, self.config)
        article = str(int(numbers[0]))
        version = str(int(numbers[1])) if len(numbers) == 2 else None
        path = f"articles/{article}" + (f"/{version}" if version else "")
        return Spec(provider=self.id, repository=f"{self.base}/{path}".lower(), ref=None,
                    text=f"{self.base}/{path}", display_name=f"figshare/{path}",
                    name_parts=("figshare", article, *([f"v{version}"] if version else [])),
                    locator={"article": article, **({"version": version} if version else {})})

    def list_record(self, spec: Spec, client: HttpClient) -> ArchiveRecord:
        article, version = spec.locator["article"], spec.locator.get("version")
        what = f"article {article}" + (f" version {version}" if version else "")
        url = f"{self.api}/articles/{article}" + (f"/versions/{version}" if version else "")
        data = client.get_json(url, what)
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list):
            raise shape_error(self.label, what)
        result = []
        for item in files:
            if not isinstance(item, dict) or item.get("is_link_only"):
                continue
            name, download = item.get("name"), item.get("download_url")
            if not isinstance(name, str) or not isinstance(download, str):
                raise shape_error(self.label, what)
            size = item.get("size")
            result.append(ArchiveFile(name, download, size if isinstance(size, int) else None,
                                      str(item.get("computed_md5") or "")))
        return ArchiveRecord(article, str(data.get("version") or version or ""), tuple(result))

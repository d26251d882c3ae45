"""Data repositories that publish records of files (Zenodo, Figshare, Dataverse).

An ``ArchiveProvider`` reads a record's file list from the repository's
API (``list_record``); that list, with the record id and version, is the
content: its digest is the content id, so a new version of a record is new
content (a rebuild) and the same version a cache hit.

Fetching downloads every file into the checkout, each name checked as an
archive member would be. When the record is exactly one zip or tar
archive (GitHub's Zenodo integration publishes one), it is unpacked
safely (``workers/unpack.py``) and a lone top-level folder is stripped, as
repo2docker does.

Specs given as DOIs resolve through the DOI resolver first
(``landing_url``): its redirect must lead to this provider's own host.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from common.errors import BadRepoSource, BuildFailure
from common.quoting import quoted
from workers.providers.base import (
    ContentProvider,
    FetchLimits,
    Resolved,
    Say,
    Spec,
    split_base,
)
from workers.providers.http import AuthHeaders, HttpClient, ProviderError, bearer
from workers.unpack import (
    UnpackLimits,
    UnsafeArchive,
    implied_folders,
    is_archive,
    member_path,
    strip_single_folder,
    unpack_archive,
)

#: A DOI as Crossref recommends them: ``10.PREFIX/SUFFIX``.
DOI_RE = re.compile(r"^10\.\d{4,9}/[-._;()/:A-Za-z0-9]{1,200}$")
_DOI_FORMS = re.compile(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)(?P<doi>.+)$", re.IGNORECASE)


def doi_of(text: str, resolver: str) -> str | None:
    """The DOI in ``text`` (``doi:D``, ``D``, ``https://doi.org/D``, ``RESOLVER/D``), if any."""
    resolver = resolver.rstrip("/")
    if text.lower().startswith(resolver.lower() + "/"):
        doi = text[len(resolver) + 1:]
    elif (match := _DOI_FORMS.match(text)) is not None:
        doi = match.group("doi")
    elif text.startswith("10."):
        doi = text
    else:
        return None
    if not DOI_RE.match(doi):
        raise BadRepoSource(f"{quoted(text)} is not a valid DOI.",
                            suggestions=["Give a DOI as doi:10.NNNN/SUFFIX or "
                                         "https://doi.org/10.NNNN/SUFFIX."])
    return doi


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or ``None`` where the JSON has another shape."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def shape_error(service: str, what: str) -> ProviderError:
    return ProviderError(f"{service} answered {what} in a shape this farm does not know.",
                         suggestions=["Retry later; report it if it persists (operators: "
                                      "check the provider's base URL setting)."])


#: Files of a record named one by one in the build log; the rest are counted.
LOGGED_FILES = 50


@dataclass(frozen=True)
class ArchiveFile:
    """One file of a record: where it goes, where it comes from, what it is."""

    path: str
    url: str
    size: int | None = None
    checksum: str = ""


@dataclass(frozen=True)
class ArchiveRecord:
    record_id: str
    version: str
    files: tuple[ArchiveFile, ...]


def record_entries(files: tuple[ArchiveFile, ...]) -> int:
    """How many files and folders fetching ``files`` makes (each folder a path implies
    counts, as when unpacking); a path ``member_path`` refuses is left to the fetch."""
    folders: set[PurePosixPath] = set()
    for item in files:
        try:
            relative = member_path(item.path)
        except UnsafeArchive:
            continue
        if relative is not None:
            folders.update(implied_folders(relative))
    return len(files) + len(folders)


class ArchiveProvider(ContentProvider):
    """Base of the data-repository providers; subclasses read their API."""

    #: the HTTP headers that carry a token to this service
    auth: AuthHeaders = staticmethod(bearer)
    #: DOIs of the provider's own prefix; the group ``record`` names the record
    doi_pattern: re.Pattern[str] | None = None
    #: what one record is called there ("record", "article", "dataset")
    record_word = "record"

    @abstractmethod
    def sites(self) -> list[str]:
        """Base URLs of the provider's pages (where its specs and landing pages live)."""

    @abstractmethod
    def hint(self) -> str:
        """How a spec of this provider is written, for error suggestions."""

    def detect(self, text: str) -> Spec | None:
        if self.doi_pattern is not None:
            spec = self.doi_spec(text, self.doi_pattern)
            if spec is not None:
                return spec
        if not any(split_base(text, site) is not None for site in self.sites()):
            return None
        spec = self.landing(text)
        if spec is None:
            raise BadRepoSource(f"{quoted(text)} is not a {self.label} {self.record_word}.",
                                suggestions=[self.hint()])
        return spec

    @abstractmethod
    def hosts(self) -> set[str]:
        """The ``host[:port]`` names this provider serves pages and API from."""

    @abstractmethod
    def landing(self, url: str) -> Spec | None:
        """The spec of a landing page URL of this provider (where a DOI leads), if it is one."""

    @abstractmethod
    def list_record(self, spec: Spec, client: HttpClient) -> ArchiveRecord:
        """The record's id, version and files, from the provider's API."""

    def doi_spec(self, text: str, prefix: re.Pattern[str]) -> Spec | None:
        """A spec for a DOI of this provider's own prefix (``prefix`` matches the DOI)."""
        doi = doi_of(text, self.config.doi_resolver_url)
        match = prefix.match(doi) if doi else None
        if doi is None or match is None:
            return None
        record = match.group("record")
        return Spec(provider=self.id, repository=f"doi:{doi.lower()}", ref=None,
                    text=f"doi:{doi}", display_name=f"doi:{doi}",
                    name_parts=(self.id, *record.split(".")), locator={"doi": doi})

    def client(self, limits: FetchLimits) -> HttpClient:
        return HttpClient(self.config, limits, self.label, self.auth)

    def resolve(self, spec: Spec, limits: FetchLimits) -> Resolved:
        if "doi" in spec.locator:
            from workers.providers.doi import follow_doi

            spec = follow_doi(spec.locator["doi"], self.config, limits, [self])
        record = self.list_record(spec, self.client(limits))
        if not record.files:
            raise BuildFailure(f"{self.label} record {record.record_id} has no files to build.",
                               suggestions=["Check that the record's files are public, or "
                                            "publish a version with files."])
        entries = record_entries(record.files)
        if entries > limits.max_files:
            raise BuildFailure(f"{self.label} record {record.record_id} has "
                               f"{entries} files and folders, over this farm's limit of "
                               f"{limits.max_files}.",
                               suggestions=["Publish the files as one archive."])
        manifest = {"provider": self.id, "record": record.record_id, "version": record.version,
                    "files": sorted([f.path, f.size, f.checksum] for f in record.files)}
        digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
        count = len(record.files)
        return Resolved(
            spec=spec, provider=self.id, content_id=digest[:40],
            description=f"{self.label} record {record.record_id} version {record.version} "
                        f"({count} file{'s' if count != 1 else ''})",
            detail={"record": record})

    def fetch(self, resolved: Resolved, dest: Path, limits: FetchLimits, say: Say) -> None:
        record: ArchiveRecord = resolved.detail["record"]
        client = self.client(limits)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        if len(record.files) == 1:
            self._fetch_single(record.files[0], dest, client, limits, say)
            return
        budget = limits.max_bytes
        for index, item in enumerate(record.files):
            relative = member_path(item.path)
            if relative is None:
                raise ProviderError(f"{self.label} listed a file without a name.",
                                    suggestions=["Report it to the record's owners."])
            target = dest.joinpath(*relative.parts)
            if index < LOGGED_FILES:
                say(f"downloading {relative}")
            elif index == LOGGED_FILES:
                say(f"downloading {len(record.files) - index} more files")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                budget -= client.download(item.url, target, str(relative), budget)
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                raise ProviderError(f"{self.label} record {record.record_id} lists "
                                    f"{relative} twice, or as both a file and a folder.",
                                    suggestions=["Report it to the record's owners."]) from exc
        strip_single_folder(dest)

    def _fetch_single(self, item: ArchiveFile, dest: Path, client: HttpClient,
                      limits: FetchLimits, say: Say) -> None:
        relative = member_path(item.path)
        if relative is None:
            raise ProviderError(f"{self.label} listed a file without a name.",
                                suggestions=["Report it to the record's owners."])
        download = dest.parent / "download"
        download.mkdir(exist_ok=True)
        archive = download / "content"
        say(f"downloading {relative}")
        client.download(item.url, archive, str(relative), limits.max_bytes)
        if is_archive(archive):
            say(f"unpacking {relative}")
            unpack_archive(archive, dest, UnpackLimits(
                limits.max_bytes, limits.max_files, limits.max_ratio,
                check=lambda: limits.remaining(f"Unpacking {relative}")))
            strip_single_folder(dest)
        else:
            target = dest.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            archive.rename(target)
        shutil.rmtree(download, ignore_errors=True)

"""Zenodo: ``BASE/records/N`` or a Zenodo DOI (``doi:10.5281/zenodo.N``).

``BINDER_ZENODO_URL`` is the base (``https://zenodo.org``); the records
API is ``BASE/api/records/N``, whose ``links.files`` lists the files
(``entries``: ``key``, ``size``, ``checksum``, ``links.content``), the
shape repo2docker's Zenodo provider reads. A DOI resolves through the DOI
resolver to ``BASE/records/M``: a concept DOI leads to the latest version,
so publishing a new version rebuilds. The build name is ``zenodo-N``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from workers.providers.archive import (
    ArchiveFile,
    ArchiveProvider,
    ArchiveRecord,
    dig,
    shape_error,
)
from workers.providers.base import Spec, check_url_policy, host_of, split_base
from workers.providers.http import HttpClient

_DOI = re.compile(r"^10\.5281/zenodo\.(?P<record>\d{1,20})$", re.IGNORECASE)
_RECORD_PATH = re.compile(r"^records?/(?P<record>\d{1,20})/?$")


class ZenodoProvider(ArchiveProvider):
    id = "zenodo"
    label = "Zenodo"
    doi_pattern = _DOI

    @property
    def base(self) -> str:
        return str(self.config.zenodo_url).rstrip("/")

    def hosts(self) -> set[str]:
        return {host_of(self.base)}

    def sites(self) -> list[str]:
        return [self.base]

    def hint(self) -> str:
        return f"Use {self.base}/records/N or a Zenodo DOI."

    def landing(self, url: str) -> Spec | None:
        rest = split_base(url, self.base)
        match = _RECORD_PATH.match(urlsplit(rest).path) if rest is not None else None
        if match is None or urlsplit(url).query:
            return None
        check_url_policy(self.base, self.config)
        record = str(int(match.group("record")))
        return Spec(provider=self.id, repository=f"{self.base}/records/{record}".lower(),
                    ref=None, text=f"{self.base}/records/{record}",
                    display_name=f"zenodo/records/{record}", name_parts=("zenodo", record),
                    locator={"record": record})

    def list_record(self, spec: Spec, client: HttpClient) -> ArchiveRecord:
        record_id = spec.locator["record"]
        what = f"record {record_id}"
        data = client.get_json(f"{self.base}/api/records/{record_id}", what)
        files_url = dig(data, "links", "files")
        if not isinstance(files_url, str) or host_of(files_url) not in self.hosts():
            raise shape_error(self.label, what)
        real_id = str(data.get("id") or record_id)
        listing = client.get_json(files_url, f"the files of record {real_id}")
        entries = listing.get("entries") if isinstance(listing, dict) else None
        if isinstance(entries, dict):  # the record's own embedded listing
            entries = list(entries.values())
        if not isinstance(entries, list):
            raise shape_error(self.label, f"the files of record {real_id}")
        files = []
        for entry in entries:
            key, url = dig(entry, "key"), dig(entry, "links", "content")
            if not isinstance(key, str) or not isinstance(url, str):
                raise shape_error(self.label, f"the files of record {real_id}")
            size = entry.get("size")
            files.append(ArchiveFile(key, url, size if isinstance(size, int) else None,
                                     str(entry.get("checksum") or "")))
        version = dig(data, "metadata", "version")
        return ArchiveRecord(real_id, str(version) if version else real_id, tuple(files))

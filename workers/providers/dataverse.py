"""Dataverse: a dataset on one of the installations in ``BINDER_DATAVERSE_URLS``.

Given as ``INSTALLATION/dataset.xhtml?persistentId=PID``, or as a DOI
(see ``workers/providers/doi.py``) whose resolver leads to such a page
(a file page, ``file.xhtml?persistentId=DATASET/FILE``, means its
dataset). The native API ``/api/datasets/:persistentId?persistentId=PID``
answers ``data.latestVersion`` with ``versionNumber``,
``versionMinorNumber`` and ``files`` (``label``, ``directoryLabel``,
``restricted``, ``dataFile.id``, ``dataFile.filesize``, ``dataFile.md5``),
as the Dataverse API guide and repo2docker's Dataverse provider show;
files come from ``/api/access/datafile/ID``. Restricted files are fetched
only with a token (``X-Dataverse-key``). The build name is
``dataverse-<pid>``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

from workers.providers.archive import ArchiveFile, ArchiveProvider, ArchiveRecord, shape_error
from workers.providers.base import Spec, check_url_policy, host_of, split_base
from workers.providers.http import HttpClient

_PID = re.compile(r"^(?:doi:10\.\d{4,9}|hdl:\d[\d.]*)/[-._;()/:A-Za-z0-9]{1,200}$",
                  re.IGNORECASE)


def dataverse_auth(token: str) -> dict[str, str]:
    return {"X-Dataverse-key": token}


class DataverseProvider(ArchiveProvider):
    id = "dataverse"
    label = "Dataverse"
    auth = staticmethod(dataverse_auth)
    record_word = "dataset"

    def sites(self) -> list[str]:
        return [str(url).rstrip("/") for url in self.config.dataverse_urls]

    def hosts(self) -> set[str]:
        return {host_of(url) for url in self.sites()}

    def hint(self) -> str:
        return "Use INSTALLATION/dataset.xhtml?persistentId=doi:... or the dataset's DOI."

    def landing(self, url: str) -> Spec | None:
        base = next((b for b in self.sites() if split_base(url, b) is not None), None)
        if base is None:
            return None
        parts = urlsplit(url)
        page = split_base(f"{parts.scheme}://{parts.netloc}{parts.path}", base)
        pids = parse_qs(parts.query).get("persistentId", [])
        if page not in ("dataset.xhtml", "file.xhtml") or len(pids) != 1:
            return None
        pid = pids[0]
        if page == "file.xhtml":
            pid = pid.rsplit("/", 1)[0]
        if not _PID.match(pid):
            return None
        check_url_policy(base, self.config)
        text = f"{base}/dataset.xhtml?persistentId={pid}"
        return Spec(provider=self.id, repository=text.lower(), ref=None, text=text,
                    display_name=f"dataverse/{pid}",
                    name_parts=("dataverse", pid.split(":", 1)[1]),
                    locator={"installation": base, "pid": pid})

    def list_record(self, spec: Spec, client: HttpClient) -> ArchiveRecord:
        base, pid = spec.locator["installation"], spec.locator["pid"]
        what = f"dataset {pid}"
        data = client.get_json(
            f"{base}/api/datasets/:persistentId?persistentId={quote(pid, safe=':/')}", what)
        latest = data.get("data", {}).get("latestVersion") if isinstance(data, dict) else None
        if not isinstance(latest, dict) or not isinstance(latest.get("files"), list):
            raise shape_error(self.label, what)
        can_read_restricted = client.limits.token_for(host_of(base)) is not None
        files = []
        for item in latest["files"]:
            datafile = item.get("dataFile") if isinstance(item, dict) else None
            if not isinstance(datafile, dict) or not isinstance(item.get("label"), str) \
                    or not isinstance(datafile.get("id"), int):
                raise shape_error(self.label, what)
            if item.get("restricted") and not can_read_restricted:
                continue
            folder = item.get("directoryLabel")
            path = f"{folder}/{item['label']}" if isinstance(folder, str) and folder \
                else item["label"]
            size = datafile.get("filesize")
            checksum = datafile.get("md5") or (datafile.get("checksum") or {}).get("value")
            files.append(ArchiveFile(path, f"{base}/api/access/datafile/{datafile['id']}",
                                     size if isinstance(size, int) else None,
                                     str(checksum or "")))
        version = f"{latest.get('versionNumber')}.{latest.get('versionMinorNumber')}"
        return ArchiveRecord(pid, version, tuple(files))

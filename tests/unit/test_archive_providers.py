"""Archive providers against loopback Zenodo, Figshare, Dataverse and DOI servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.config import Config, load_config
from common.errors import BuildFailure
from tests.support.archives import zip_bytes
from tests.support.provider_servers import DataverseFile, ProviderServers
from workers.providers import FetchLimits, parse_spec, provider_for
from workers.providers.base import Resolved
from workers.unpack import UnsafeArchive

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def servers() -> Iterator[ProviderServers]:
    servers = ProviderServers.start()
    yield servers
    servers.stop()


@pytest.fixture
def config(servers: ProviderServers) -> Config:
    return load_config(environ={}, allowed_source_hosts=tuple(servers.hosts),
                       **{key: value for key, value in servers.settings().items()})


def limits(config: Config, **changes: object) -> FetchLimits:
    base = FetchLimits.from_config(config, timeout=20)
    return FetchLimits(**{**base.__dict__, "deadline": 0.0, **changes})  # type: ignore[arg-type]


def resolve(config: Config, text: str, **changes: object) -> Resolved:
    spec = parse_spec(text, config)
    return provider_for(spec, config).resolve(spec, limits(config, **changes))


def fetch(config: Config, text: str, dest: Path, **changes: object) -> tuple[Resolved, list[str]]:
    said: list[str] = []
    spec = parse_spec(text, config)
    provider = provider_for(spec, config)
    bounds = limits(config, **changes)
    resolved = provider.resolve(spec, bounds)
    provider.fetch(resolved, dest, bounds, said.append)
    return resolved, said


def files_in(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# Zenodo


def test_zenodo_record_with_one_zip_is_unpacked_and_its_folder_stripped(
        servers: ProviderServers, config: Config, tmp_path: Path) -> None:
    servers.zenodo.publish(101, {"repo-v1.zip": zip_bytes({
        "repo-v1/requirements.txt": "numpy\n", "repo-v1/nb/analysis.ipynb": "{}"})})
    resolved, said = fetch(config, f"{servers.zenodo.url}/records/101", tmp_path / "repo")
    assert files_in(tmp_path / "repo") == {"nb/analysis.ipynb": b"{}",
                                           "requirements.txt": b"numpy\n"}
    assert resolved.provider == "zenodo" and len(resolved.content_id) == 40
    assert "Zenodo record 101" in resolved.description
    assert any("unpacking repo-v1.zip" in line for line in said)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # the download is gone


def test_zenodo_record_of_several_files_keeps_them_as_they_are(
        servers: ProviderServers, config: Config, tmp_path: Path) -> None:
    servers.zenodo.publish(102, {"data.csv": b"1,2\n", "a.zip": zip_bytes({"x": "y"})})
    fetch(config, f"{servers.zenodo.url}/records/102", tmp_path / "repo")
    assert set(files_in(tmp_path / "repo")) == {"data.csv", "a.zip"}


def test_the_content_id_is_stable_and_changes_with_a_new_version(
        servers: ProviderServers, config: Config) -> None:
    servers.zenodo.publish(110, {"a.txt": b"one"}, concept_id=119)
    servers.doi.register("10.5281/zenodo.119", f"{servers.zenodo.url}/records/119")
    first = resolve(config, "doi:10.5281/zenodo.119")
    assert first.content_id == resolve(config, "10.5281/zenodo.119").content_id
    assert first.content_id == resolve(config, f"{servers.zenodo.url}/records/110").content_id
    servers.zenodo.publish(111, {"a.txt": b"two"}, concept_id=119, version="2.0")
    second = resolve(config, "doi:10.5281/zenodo.119")
    assert second.content_id != first.content_id
    assert "record 111" in second.description


def test_a_zenodo_doi_must_lead_to_zenodo(servers: ProviderServers, config: Config) -> None:
    servers.doi.register("10.5281/zenodo.120", "https://elsewhere.example/records/120")
    with pytest.raises(BuildFailure, match="leads to elsewhere.example"):
        resolve(config, "doi:10.5281/zenodo.120")
    assert not any(r.path == "/records/120" for r in servers.zenodo.requests)


def test_a_record_without_files(servers: ProviderServers, config: Config) -> None:
    servers.zenodo.publish(130, {})
    with pytest.raises(BuildFailure, match="record 130 has no files"):
        resolve(config, f"{servers.zenodo.url}/records/130")


def test_an_unknown_record(servers: ProviderServers, config: Config) -> None:
    with pytest.raises(BuildFailure, match="record 999999 was not found on Zenodo"):
        resolve(config, f"{servers.zenodo.url}/records/999999")


@pytest.mark.parametrize(("fault", "message"), [
    ("html", "answered record 140 with a web page instead of JSON"),
    (503, "Zenodo answered HTTP 503 for record 140"),
    (403, "refused access to record 140"),
])
def test_an_api_answering_badly(servers: ProviderServers, config: Config, fault: str | int,
                                message: str) -> None:
    servers.zenodo.publish(140, {"a.txt": b"x"})
    servers.zenodo.faults["/api/records/140"] = fault
    try:
        with pytest.raises(BuildFailure, match=message) as caught:
            resolve(config, f"{servers.zenodo.url}/records/140")
        assert caught.value.suggestions
    finally:
        servers.zenodo.faults.clear()


def test_a_private_record_needs_its_token_and_it_goes_to_zenodo_only(
        servers: ProviderServers, config: Config, tmp_path: Path) -> None:
    servers.zenodo.publish(150, {"a.txt": b"secret data"}, token="zen-token-150")
    with pytest.raises(BuildFailure, match="not found"):
        resolve(config, f"{servers.zenodo.url}/records/150")
    servers.doi.requests.clear()
    servers.doi.register("10.5281/zenodo.150", f"{servers.zenodo.url}/records/150")
    tokens = {servers.zenodo.host: "zen-token-150"}
    resolved, _ = fetch(config, "doi:10.5281/zenodo.150", tmp_path / "repo", tokens=tokens)
    assert files_in(tmp_path / "repo") == {"a.txt": b"secret data"}
    assert "zen-token-150" not in repr(resolved)
    assert all("authorization" not in r.headers for r in servers.doi.requests)
    assert servers.doi.requests


# Figshare


def test_figshare_latest_and_pinned_versions(servers: ProviderServers, config: Config,
                                             tmp_path: Path) -> None:
    servers.figshare.publish(9782777, {"requirements.txt": b"pandas\n"})
    servers.figshare.publish(9782777, {"requirements.txt": b"pandas==2\n"}, ["elsewhere.dat"])
    page = f"{servers.figshare.url}/articles/dataset/Some_title/9782777"
    latest, _ = fetch(config, page, tmp_path / "latest")
    assert files_in(tmp_path / "latest") == {"requirements.txt": b"pandas==2\n"}
    pinned, _ = fetch(config, f"{page}/1", tmp_path / "pinned")
    assert files_in(tmp_path / "pinned") == {"requirements.txt": b"pandas\n"}
    assert latest.content_id != pinned.content_id
    assert resolve(config, f"{page}/2").content_id == latest.content_id


def test_figshare_doi_through_the_resolver(servers: ProviderServers, config: Config) -> None:
    servers.figshare.publish(5550001, {"a.txt": b"x"})
    servers.doi.register("10.6084/m9.figshare.5550001.v1",
                         f"{servers.figshare.url}/articles/code/Title/5550001/1")
    resolved = resolve(config, "doi:10.6084/m9.figshare.5550001.v1")
    assert (resolved.provider, resolved.spec.locator["version"]) == ("figshare", "1")


# Dataverse and any DOI


def test_dataverse_dataset_through_a_doi_keeps_folders(servers: ProviderServers,
                                                       config: Config, tmp_path: Path) -> None:
    pid = "doi:10.7910/DVN/TEST01"
    servers.dataverse.publish(pid, [
        DataverseFile("requirements.txt", b"scipy\n"),
        DataverseFile("data.csv", b"1\n", directory="input/raw"),
        DataverseFile("secret.csv", b"no\n", restricted=True)])
    servers.doi.register("10.7910/DVN/TEST01",
                         f"{servers.dataverse.url}/dataset.xhtml?persistentId={pid}")
    resolved, _ = fetch(config, "doi:10.7910/DVN/TEST01", tmp_path / "repo")
    assert resolved.spec.provider == "doi" and resolved.provider == "dataverse"
    assert files_in(tmp_path / "repo") == {"input/raw/data.csv": b"1\n",
                                           "requirements.txt": b"scipy\n"}
    servers.dataverse.publish(pid, [DataverseFile("requirements.txt", b"scipy==1\n")])
    assert resolve(config, "doi:10.7910/DVN/TEST01").content_id != resolved.content_id


def test_a_dataverse_path_that_climbs_out_is_refused(servers: ProviderServers, config: Config,
                                                     tmp_path: Path) -> None:
    pid = "doi:10.7910/DVN/EVIL01"
    servers.dataverse.publish(pid, [DataverseFile("evil.txt", b"x", directory="../.."),
                                    DataverseFile("ok.txt", b"y")])
    page = f"{servers.dataverse.url}/dataset.xhtml?persistentId={pid}"
    with pytest.raises(UnsafeArchive):
        fetch(config, page, tmp_path / "work" / "repo")
    assert sorted(os.listdir(tmp_path)) == ["work"]


def test_the_folders_of_a_record_count_toward_the_file_limit(
        servers: ProviderServers, config: Config, tmp_path: Path) -> None:
    pid = "doi:10.7910/DVN/DEEP01"
    servers.dataverse.publish(pid, [DataverseFile(f"f{i}.txt", b"x",
                                                  directory=f"d{i}/a/b/c/d/e/f/g/h")
                                    for i in range(5)])
    page = f"{servers.dataverse.url}/dataset.xhtml?persistentId={pid}"
    with pytest.raises(BuildFailure, match="has 50 files and folders, over this farm's "
                                           "limit of 20"):
        fetch(config, page, tmp_path / "repo", max_files=20)
    assert not (tmp_path / "repo").exists()


def test_a_doi_leading_nowhere_we_know(servers: ProviderServers, config: Config) -> None:
    servers.doi.register("10.21105/joss.01277", "https://joss.example/papers/1277")
    with pytest.raises(BuildFailure, match="leads to joss.example, which is not a provider"):
        resolve(config, "doi:10.21105/joss.01277")
    with pytest.raises(BuildFailure, match="was not found on the DOI resolver"):
        resolve(config, "doi:10.9999/unregistered")


def test_a_download_over_the_limit_stops(servers: ProviderServers, config: Config,
                                         tmp_path: Path) -> None:
    servers.zenodo.publish(160, {"big.bin": os.urandom(3 * MiB), "small.txt": b"x"})
    with pytest.raises(BuildFailure, match="over this farm's limit of 2 MiB"):
        fetch(config, f"{servers.zenodo.url}/records/160", tmp_path / "repo",
              max_bytes=2 * MiB)

"""Every content provider, end to end: spec to image, against loopback servers.

GitHub, GitLab, Gist and plain Git come from the test Git server (smart
HTTP); Zenodo, Figshare, Dataverse and the DOI resolver are the loopback
stand-ins of ``tests/support/provider_servers.py``, which answer with each
service's documented response shapes (the module docstring says where
each shape comes from). The farm reaches them only through the base-URL
settings ``farm_env`` sets (``BINDER_GITLAB_URL``, ``BINDER_ZENODO_URL``...).
"""

from __future__ import annotations

import itertools
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import DATA_DIR, GIT_TOKEN, unique
from tests.support.archives import MiB, make_tar, tar_entry, tar_with, zip_bomb, zip_bytes
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer
from tests.support.images import in_registry, run_in_image
from tests.support.provider_servers import DataverseFile, ProviderServers

_numbers = itertools.count(int(uuid.uuid4().int % 10**6) * 100)


def record_number() -> int:
    """A Zenodo/Figshare record number unique to this test run."""
    return next(_numbers)


def assert_built(api: ApiClient, record: dict, provider: str) -> str:
    """The build completed from ``provider``; its image tag starts with its content id."""
    assert record["status"] == "completed", (record, api.logs(record["name"]))
    assert record["provider"] == provider
    image = record["image-name"]
    assert image.rsplit(":", 1)[1].startswith(f"{record['content-id']}-")
    assert in_registry(image)
    tmpl = api.template(record["name"])
    assert (tmpl["provider"], tmpl["content-id"], tmpl["image-name"]) == (
        provider, record["content-id"], image)
    assert tmpl["repository"] == record["repository"]
    return str(image)


# Git hosts


def test_gitlab_nested_groups_at_a_ref(api: ApiClient, git_server: GitServer) -> None:
    project = unique("proj")
    shas = git_server.make_repo(f"gitlab/group/sub/{project}", {"README.md": "main"},
                                branches={"feature/x": {"README.md": "feature"}})
    record = api.start_and_wait(f"{git_server.url}/gitlab/group/sub/{project}/-/tree/feature/x")
    image = assert_built(api, record, "gitlab")
    assert record["name"] == f"gitlab-group-sub-{project}-feature-x"
    assert record["commit"] == record["content-id"] == shas["feature/x"]
    assert record["ref"] == "feature/x"
    assert record["display-name"] == f"group/sub/{project}/-/tree/feature/x"
    assert run_in_image(image, "cat README.md") == "feature"


def test_gist_at_a_revision(api: ApiClient, git_server: GitServer) -> None:
    gist_id = uuid.uuid4().hex[:20]
    first = git_server.make_repo(f"gist/{gist_id}", {"snippet.py": "print('v1')\n"})["main"]
    git_server.push_commit(f"gist/{gist_id}", {"snippet.py": "print('v2')\n"})
    record = api.start_and_wait(f"{git_server.url}/gist/alice/{gist_id}@{first}")
    image = assert_built(api, record, "gist")
    assert record["name"] == f"gist-alice-{gist_id}-{first}"
    assert record["content-id"] == first
    assert run_in_image(image, "cat snippet.py") == "print('v1')\n"


def test_plain_git_url_at_a_tag(api: ApiClient, git_server: GitServer) -> None:
    repo = unique("tool")
    shas = git_server.make_repo(f"plain/team/{repo}", {"README.md": "tagged"},
                                tags={"v1": "main"})
    git_server.push_commit(f"plain/team/{repo}", {"README.md": "later"})
    record = api.start_and_wait(f"{git_server.url}/plain/team/{repo}.git@v1")
    image = assert_built(api, record, "git")
    assert record["name"] == f"127.0.0.1-{git_server.url.rsplit(':', 1)[1]}-plain-team-{repo}-v1"
    assert record["content-id"] == shas["v1"]
    assert run_in_image(image, "cat README.md") == "tagged"
    # The ref given apart (as the CLI's --ref and the page's form send it) is the same build.
    again = api.request("POST", "/builds/repo",
                        json={"repository": f"{git_server.url}/plain/team/{repo}.git", "ref": "v1"})
    assert again.status_code == 200, again.text
    assert again.json()["name"] == record["name"] and again.json()["cached"] is True


# Archives behind DOIs


def test_zenodo_doi_builds_then_caches_then_rebuilds_a_new_version(
        api: ApiClient, provider_servers: ProviderServers) -> None:
    zenodo, doi = provider_servers.zenodo, provider_servers.doi
    concept, first = record_number(), record_number()
    zenodo.publish(first, {"project-v1.zip": zip_bytes({
        "project-v1/README.md": "version one", "project-v1/data/x.csv": "1\n"})},
        concept_id=concept)
    # doi.org sends a concept DOI to zenodo.org/doi/..., which redirects to the latest record.
    doi.register(f"10.5281/zenodo.{concept}", f"{zenodo.url}/doi/10.5281/zenodo.{concept}")
    spec = f"https://doi.org/10.5281/zenodo.{concept}"

    built = api.start_and_wait(spec)
    image = assert_built(api, built, "zenodo")
    assert built["name"] == f"zenodo-{concept}"
    assert built["repository"] == f"doi:10.5281/zenodo.{concept}"
    assert built["commit"] is None and not built["cached"]
    assert run_in_image(image, "cat README.md; ls data") == \
        "version one" + "x.csv\n"

    again = api.start_and_wait(f"doi:10.5281/zenodo.{concept}")
    assert again["status"] == "completed" and again["cached"] is True, again
    assert (again["name"], again["image-name"]) == (built["name"], image)

    second = record_number()
    zenodo.publish(second, {"project-v2.zip": zip_bytes({"project-v2/README.md": "version two"})},
                   concept_id=concept, version="2.0")
    rebuilt = api.start_and_wait(spec)
    new_image = assert_built(api, rebuilt, "zenodo")
    assert not rebuilt["cached"] and rebuilt["content-id"] != built["content-id"]
    assert f"Zenodo record {second}" in api.logs(rebuilt["name"])
    assert run_in_image(new_image, "cat README.md") == "version two"
    assert in_registry(image)  # the old version's image is still there


def test_figshare_article_at_a_version(api: ApiClient,
                                       provider_servers: ProviderServers) -> None:
    figshare = provider_servers.figshare
    article = record_number()
    figshare.publish(article, {"analysis.py": b"print('one')\n"})
    figshare.publish(article, {"analysis.py": b"print('two')\n", "notes.txt": b"n"},
                     link_only=["huge-elsewhere.dat"])
    record = api.start_and_wait(f"{figshare.url}/articles/dataset/Some_title/{article}/1")
    image = assert_built(api, record, "figshare")
    assert record["name"] == f"figshare-{article}-v1"
    assert run_in_image(image, "cat analysis.py") == "print('one')\n"
    assert run_in_image(image, "ls notes.txt 2>&1 || echo absent").endswith(
        "absent\n")


def test_dataverse_dataset_behind_a_doi(api: ApiClient,
                                        provider_servers: ProviderServers) -> None:
    dataverse, doi = provider_servers.dataverse, provider_servers.doi
    suffix = f"DVN/{uuid.uuid4().hex[:6].upper()}"
    pid = f"doi:10.7910/{suffix}"
    dataverse.publish(pid, [DataverseFile("README.md", b"from dataverse"),
                            DataverseFile("table.csv", b"a,b\n", directory="data/raw")])
    doi.register(f"10.7910/{suffix}", f"{dataverse.url}/dataset.xhtml?persistentId={pid}")
    record = api.start_and_wait(f"doi:10.7910/{suffix}")
    image = assert_built(api, record, "dataverse")
    assert record["name"] == f"doi-10.7910-dvn-{suffix[4:].lower()}"
    assert run_in_image(image, "cat README.md data/raw/table.csv") == \
        "from dataversea,b\n"


# Bad input: a failed build with a sentence, never a stuck one


def failed(api: ApiClient, spec: str) -> dict:
    record = api.start_and_wait(spec, timeout=120)
    assert record["status"] == "failed", record
    assert record["phase"] == "fetching"
    return record


def test_a_doi_of_an_unsupported_provider(api: ApiClient,
                                          provider_servers: ProviderServers) -> None:
    provider_servers.doi.register("10.21105/joss.01277", "https://joss.example/papers/1277")
    record = failed(api, "doi:10.21105/joss.01277")
    assert record["error"].startswith("The DOI 10.21105/joss.01277 leads to joss.example, "
                                      "which is not a provider this farm builds from")


def test_a_record_without_files(api: ApiClient, provider_servers: ProviderServers) -> None:
    number = record_number()
    provider_servers.zenodo.publish(number, {})
    record = failed(api, f"{provider_servers.zenodo.url}/records/{number}")
    assert record["error"] == f"Zenodo record {number} has no files to build."


@pytest.mark.parametrize(("fault", "says"), [("html", "with a web page instead of JSON"),
                                             (500, "answered HTTP 500")])
def test_a_provider_api_answering_badly(api: ApiClient, provider_servers: ProviderServers,
                                        fault: str | int, says: str) -> None:
    number = record_number()
    provider_servers.figshare.publish(number, {"a.txt": b"x"})
    provider_servers.figshare.faults[f"/v2/articles/{number}"] = fault
    record = failed(api, f"{provider_servers.figshare.url}/articles/t/{number}")
    assert f"article {number}" in record["error"] and says in record["error"], record["error"]


# Hostile archives: refused, nothing written outside the work dir, the farm fine


@pytest.fixture(scope="module")
def outside() -> Iterator[Path]:
    """A folder next to the work dirs that hostile archives aim at; it must stay empty."""
    path = DATA_DIR / f"outside-{uuid.uuid4().hex[:6]}"
    path.mkdir()
    yield path
    assert list(path.iterdir()) == []


def removed(path: Path, within: float = 10) -> bool:
    """``path`` is gone, or goes within a few seconds (the worker removes it after ending)."""
    deadline = time.monotonic() + within
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not path.exists()


def escape_targets(name: str) -> list[Path]:
    """Where ``../``-climbing members named ``name`` would land from a checkout."""
    work = DATA_DIR / "work"
    return [work / name, DATA_DIR / name, DATA_DIR.parent / name, Path("/tmp") / name]


def hostile_archive(kind: str, tmp: Path, outside: Path, marker: str) -> bytes:
    if kind == "path traversal":
        return zip_bytes({"ok.txt": "x", f"../../{marker}": "x", f"../../../{marker}": "x",
                          f"../../../../{marker}": "x"})
    if kind == "absolute path":
        return make_tar(tmp / "abs.tgz", {f"/tmp/{marker}": "x"}).read_bytes()
    if kind == "symlink out":
        return tar_with(tmp / "sym.tar", [tar_entry("out", tarfile.SYMTYPE, str(outside)),
                                          tar_entry(f"out/{marker}")],
                        {f"out/{marker}": b"x"}).read_bytes()
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["path traversal", "absolute path", "symlink out"])
def test_hostile_archives_fail_cleanly(api: ApiClient, provider_servers: ProviderServers,
                                       tmp_path: Path, outside: Path, kind: str) -> None:
    marker = f"escape-{uuid.uuid4().hex[:8]}"
    number = record_number()
    provider_servers.zenodo.publish(number, {
        "release.bin": hostile_archive(kind, tmp_path, outside, marker)})
    record = failed(api, f"{provider_servers.zenodo.url}/records/{number}")
    assert record["error"].startswith("The archive holds"), record["error"]
    assert not any(path.exists() for path in escape_targets(marker))
    assert list(outside.iterdir()) == []
    assert removed(DATA_DIR / "work" / f"{record['build-id']}-1")


def test_a_zip_bomb_fails_cleanly(api: ApiClient, provider_servers: ProviderServers,
                                  tmp_path: Path) -> None:
    bomb = zip_bomb(tmp_path / "bomb.zip", unpacked=1024 * MiB)
    assert bomb.stat().st_size <= 1.1 * MiB
    number = record_number()
    provider_servers.zenodo.publish(number, {"data.zip": bomb.read_bytes()})
    disk_before = _used_mib(DATA_DIR)
    record = failed(api, f"{provider_servers.zenodo.url}/records/{number}")
    assert "it looks like a zip bomb" in record["error"], record["error"]
    assert removed(DATA_DIR / "work" / f"{record['build-id']}-1")
    assert _used_mib(DATA_DIR) - disk_before < 200


def _used_mib(path: Path) -> int:
    done = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])


def test_after_hostile_archives_a_good_record_builds(api: ApiClient,
                                                     provider_servers: ProviderServers) -> None:
    number = record_number()
    provider_servers.zenodo.publish(number, {"README.md": b"fine"})
    record = api.start_and_wait(f"{provider_servers.zenodo.url}/records/{number}")
    assert run_in_image(assert_built(api, record, "zenodo"), "cat README.md") == "fine"


# Private repositories


def test_a_private_repository_builds_with_the_farm_token_and_keeps_it_out(
        api: ApiClient, git_server: GitServer, farm_env: dict[str, str]) -> None:
    repo = unique("private")
    git_server.make_repo(f"github/private/{repo}", {"README.md": "secret work"})
    record = api.start_and_wait(f"{git_server.url}/github/private/{repo}")
    image = assert_built(api, record, "github")
    assert run_in_image(image, "cat README.md") == "secret work"
    # The token went to the Git server, and nowhere a user or an image can see.
    assert any(header.startswith("Basic ") for header in git_server.authorizations)
    seen = [api.request("GET", f"/builds/{record['name']}").text, api.logs(record["name"]),
            api.request("GET", f"/templates/{record['name']}").text,
            str(docker.from_env().images.get(image).attrs),
            str([layer.get("CreatedBy") for layer in docker.from_env().images.get(image)
                 .history()]),
            run_in_image(image, f"grep -rl {GIT_TOKEN} /home /srv /etc /tmp 2>/dev/null; true")]
    seen += [log.read_text(errors="replace") for log in (DATA_DIR / "logs").glob("*.log")]
    assert not [text for text in seen if GIT_TOKEN in text]


def test_a_private_repository_without_a_token_fails_with_a_sentence(
        api: ApiClient, git_server: GitServer) -> None:
    repo = unique("locked")
    git_server.make_repo(f"github/locked/{repo}", {"README.md": "x"})
    record = failed(api, f"{git_server.url}/github/locked/{repo}")
    assert record["error"] == "The repository does not exist or is not public."


def test_submodules_are_named_in_the_log_and_left_empty(api: ApiClient,
                                                        git_server: GitServer) -> None:
    name = unique("submodules")
    git_server.make_repo(f"github/max/{name}", {"notes.md": "kept\n"},
                         submodules={"vendor/lib": "https://git.example/lib.git",
                                     "theme": "../theme.git"})
    record = api.start_and_wait(f"{git_server.url}/github/max/{name}")
    image = assert_built(api, record, "github")
    assert ("this farm does not fetch Git submodules: theme, vendor/lib are empty folders "
            "in the image") in api.logs(record["name"])
    output = run_in_image(image, "test -d vendor/lib && test -d theme && "
                                 "find vendor/lib theme -mindepth 1 | wc -l; cat notes.md")
    assert output.split() == ["0", "kept"], output

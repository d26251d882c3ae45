"""``workers/providers/``: understanding repository specs (no network), and the URL policy."""

from __future__ import annotations

import re

import pytest

from common.config import Config, load_config
from common.errors import BadRepoSource
from workers.providers import PROVIDERS, Spec, parse_spec, provider_by_id

CONFIG = load_config(environ={})
LOCAL_GITHUB = CONFIG.replace(github_url="http://127.0.0.1:8000/some/prefix",
                              allowed_source_hosts=("127.0.0.1:8000",))
SHA = "0123456789abcdef0123456789abcdef01234567"


def parsed(text: str, config: Config = CONFIG) -> Spec:
    spec = parse_spec(text, config)
    # The canonical text gives the same spec back: the fetch phase relies on it.
    assert parse_spec(spec.text, config) == spec
    return spec


# GitHub


@pytest.mark.parametrize("url", [
    "https://github.com/jupyter/notebook",
    "https://github.com/jupyter/notebook/",
    "https://github.com/jupyter/notebook.git",
    "https://github.com/jupyter/notebook.git/",
    "  https://github.com/jupyter/notebook  ",
])
def test_github_url_variants_name_the_same_repository(url: str) -> None:
    spec = parsed(url)
    assert spec.provider == "github"
    assert (spec.repository, spec.ref) == ("https://github.com/jupyter/notebook", None)
    assert spec.locator["clone_url"] == "https://github.com/jupyter/notebook.git"
    assert spec.preferred_name == "jupyter-notebook"
    assert spec.display_name == "jupyter/notebook"


def test_github_tree_ref() -> None:
    spec = parsed("https://github.com/o/r/tree/v1.2")
    assert (spec.repository, spec.ref) == ("https://github.com/o/r", "v1.2")
    assert spec.text == "https://github.com/o/r/tree/v1.2"
    assert spec.locator["clone_url"] == "https://github.com/o/r.git"
    assert spec.preferred_name == "o-r-v1.2"
    assert spec.display_name == "o/r/tree/v1.2"


def test_github_ref_may_contain_slashes() -> None:
    spec = parsed("https://github.com/o/r/tree/feature/deep/x/")
    assert spec.ref == "feature/deep/x"
    assert spec.preferred_name == "o-r-feature-deep-x"


def test_github_sha_ref() -> None:
    assert parsed(f"https://github.com/o/r/tree/{SHA}").ref == SHA


def test_github_owner_and_repository_compare_case_insensitively_but_refs_do_not() -> None:
    upper = parsed("HTTPS://GitHub.com/Owner/Repo/tree/Feature-X")
    lower = parsed("https://github.com/owner/repo/tree/feature-x")
    assert upper.provider == "github"
    assert upper.repository == lower.repository == "https://github.com/owner/repo"
    assert upper.ref != lower.ref
    assert upper.display_name == "Owner/Repo/tree/Feature-X"
    assert upper.locator["clone_url"] == "https://github.com/Owner/Repo.git"


@pytest.mark.parametrize("url", [
    "https://github.com/o",
    "https://github.com/o/r/blob/main/README.md",
    "https://github.com/o/r/tree/",
    "https://github.com/o/r?tab=readme",
    "https://github.com/-o/r",
    "https://github.com/o/r@v1",
    "https://github.com/o/r/tree/a..b",
    "https://github.com/o/r/tree/-upload-pack=x",
    "https://github.com/o/r/tree/main.",
    "https://github.com/o/r/tree/a//b",
    "https://github.com/o/r/tree/a~1",
    "https://github.com/o/r/tree/HEAD@{1}",
])
def test_malformed_github_urls_are_refused(url: str) -> None:
    with pytest.raises(BadRepoSource) as caught:
        parse_spec(url, CONFIG)
    assert "/tree/REF" in caught.value.suggestions[0]


def test_custom_github_base_with_a_path_prefix() -> None:
    spec = parsed("http://127.0.0.1:8000/some/prefix/o/r/tree/feat/x", LOCAL_GITHUB)
    assert spec.provider == "github"
    assert (spec.ref, spec.preferred_name) == ("feat/x", "o-r-feat-x")
    assert spec.locator["clone_url"] == "http://127.0.0.1:8000/some/prefix/o/r.git"


def test_custom_github_base_over_http_needs_the_host_allowed() -> None:
    config = CONFIG.replace(github_url="http://127.0.0.1:8000/some/prefix")
    with pytest.raises(BadRepoSource) as caught:
        parse_spec("http://127.0.0.1:8000/some/prefix/o/r", config)
    assert "BINDER_ALLOWED_SOURCE_HOSTS" in caught.value.suggestions[0]


def test_github_com_is_plain_git_when_the_base_is_elsewhere() -> None:
    spec = parsed("https://github.com/o/r", LOCAL_GITHUB)
    assert spec.provider == "git"
    assert spec.preferred_name == "github.com-o-r"


# GitLab


def test_gitlab_nested_groups_and_dash_tree_ref() -> None:
    spec = parsed("https://gitlab.com/Group/sub/project/-/tree/feature/x")
    assert spec.provider == "gitlab"
    assert (spec.repository, spec.ref) == ("https://gitlab.com/group/sub/project", "feature/x")
    assert spec.locator["clone_url"] == "https://gitlab.com/Group/sub/project.git"
    assert spec.text == "https://gitlab.com/Group/sub/project/-/tree/feature/x"
    assert spec.preferred_name == "gitlab-group-sub-project-feature-x"
    assert spec.display_name == "Group/sub/project/-/tree/feature/x"


def test_gitlab_without_ref_and_with_dot_git() -> None:
    spec = parsed("https://gitlab.com/group/project.git")
    assert (spec.ref, spec.preferred_name) == (None, "gitlab-group-project")


def test_self_hosted_gitlab() -> None:
    config = CONFIG.replace(gitlab_url="https://git.example.org/gitlab")
    spec = parsed("https://git.example.org/gitlab/team/tool/-/tree/v2", config)
    assert (spec.provider, spec.ref) == ("gitlab", "v2")
    assert spec.locator["clone_url"] == "https://git.example.org/gitlab/team/tool.git"
    assert parse_spec("https://gitlab.com/team/tool", config).provider == "git"


@pytest.mark.parametrize("url", [
    "https://gitlab.com/onlyone",
    "https://gitlab.com/g/p/-/tree/",
    "https://gitlab.com/g/p/-/blob/main/x.py",
    "https://gitlab.com/g/p/-/tree/..",
    "https://gitlab.com/g/-p",
])
def test_malformed_gitlab_urls_are_refused(url: str) -> None:
    with pytest.raises(BadRepoSource):
        parse_spec(url, CONFIG)


# Gist


def test_gist_with_and_without_revision() -> None:
    spec = parsed("https://gist.github.com/Alice/0123abcd")
    assert spec.provider == "gist"
    assert spec.locator["clone_url"] == "https://gist.github.com/0123abcd.git"
    assert (spec.preferred_name, spec.display_name) == ("gist-alice-0123abcd", "Alice/0123abcd")
    with_ref = parsed(f"https://gist.github.com/alice/0123abcd@{SHA}")
    assert with_ref.ref == SHA
    assert with_ref.repository == spec.repository
    assert with_ref.preferred_name == f"gist-alice-0123abcd-{SHA}"


@pytest.mark.parametrize("url", ["https://gist.github.com/alice",
                                 "https://gist.github.com/alice/not-hex",
                                 "https://gist.github.com/alice/abc@-x"])
def test_malformed_gists_are_refused(url: str) -> None:
    with pytest.raises(BadRepoSource):
        parse_spec(url, CONFIG)


# Any Git URL


def test_plain_git_url_with_dot_git_and_at_ref() -> None:
    spec = parsed("https://git.example.org/team/tool.git@v2")
    assert (spec.provider, spec.ref) == ("git", "v2")
    assert spec.repository == "https://git.example.org/team/tool"
    assert spec.locator["clone_url"] == "https://git.example.org/team/tool.git"
    assert spec.preferred_name == "git.example.org-team-tool-v2"
    assert spec.display_name == "git.example.org/team/tool@v2"


def test_plain_git_without_ref() -> None:
    spec = parsed("https://Codeberg.org/o/repo.git/")
    assert (spec.provider, spec.ref) == ("git", None)
    assert spec.repository == "https://codeberg.org/o/repo"
    assert spec.preferred_name == "codeberg.org-o-repo"


def test_plain_git_refuses_a_web_tree_path_and_says_how_to_give_a_ref() -> None:
    with pytest.raises(BadRepoSource) as caught:
        parse_spec("https://codeberg.org/o/r/tree/main", CONFIG)
    assert "@REF" in caught.value.suggestions[0]


@pytest.mark.parametrize(("url", "ref", "spelled"), [
    ("https://github.com/o/r/", "v1", "https://github.com/o/r/tree/v1"),
    ("https://github.com/o/r", "feature/x", "https://github.com/o/r/tree/feature/x"),
    ("https://gitlab.com/g/sub/p", "main", "https://gitlab.com/g/sub/p/-/tree/main"),
    ("https://gist.github.com/u/0123abc", SHA, f"https://gist.github.com/u/0123abc@{SHA}"),
    ("https://git.example.org/o/r.git", "v2", "https://git.example.org/o/r.git@v2"),
])
def test_a_ref_given_apart_is_spelled_as_its_provider_spells_refs(url: str, ref: str,
                                                                  spelled: str) -> None:
    spec = parsed(url)
    assert provider_by_id(spec.provider, CONFIG).with_ref(spec, ref) == spelled
    assert parsed(spelled).ref == ref


@pytest.mark.parametrize(("url", "refused"), [
    ("https://github.com/o/r/tree/main", "already names a ref (main)"),
    ("https://git.example.org/o/r@v1", "already names a ref (v1)"),
    ("https://zenodo.org/records/123", "has no branches or tags"),
])
def test_a_ref_given_apart_is_refused_where_it_cannot_apply(url: str, refused: str) -> None:
    spec = parsed(url)
    with pytest.raises(BadRepoSource, match=re.escape(refused)):
        provider_by_id(spec.provider, CONFIG).with_ref(spec, "v2")


def test_plain_http_git_to_an_allowed_host() -> None:
    config = CONFIG.replace(allowed_source_hosts=("git.internal:8080",))
    spec = parsed("http://GIT.internal:8080/o/r", config)
    assert spec.locator["clone_url"] == "http://git.internal:8080/o/r"
    assert spec.preferred_name == "git.internal-8080-o-r"


# Archives: Zenodo, Figshare, Dataverse, any DOI


@pytest.mark.parametrize("text", ["https://zenodo.org/records/3232985",
                                  "https://zenodo.org/record/3232985/",
                                  "https://ZENODO.org/records/03232985"])
def test_zenodo_record_urls(text: str) -> None:
    spec = parsed(text)
    assert (spec.provider, spec.ref) == ("zenodo", None)
    assert spec.repository == "https://zenodo.org/records/3232985"
    assert spec.preferred_name == "zenodo-3232985"
    assert spec.locator == {"record": "3232985"}


@pytest.mark.parametrize("text", ["doi:10.5281/zenodo.3232985", "10.5281/zenodo.3232985",
                                  "https://doi.org/10.5281/zenodo.3232985",
                                  "https://dx.doi.org/10.5281/ZENODO.3232985"])
def test_zenodo_dois(text: str) -> None:
    spec = parsed(text)
    assert spec.provider == "zenodo"
    assert spec.repository == "doi:10.5281/zenodo.3232985"
    assert spec.preferred_name == "zenodo-3232985"
    assert spec.locator["doi"].lower() == "10.5281/zenodo.3232985"


@pytest.mark.parametrize(("text", "name", "locator"), [
    ("https://figshare.com/articles/dataset/Some_title/9782777", "figshare-9782777",
     {"article": "9782777"}),
    ("https://figshare.com/articles/code/Some_title/9782777/2", "figshare-9782777-v2",
     {"article": "9782777", "version": "2"}),
    ("https://figshare.com/articles/Binder-ready_openSenseMap/9782777/3", "figshare-9782777-v3",
     {"article": "9782777", "version": "3"}),
    ("https://figshare.com/articles/9782777", "figshare-9782777", {"article": "9782777"}),
])
def test_figshare_article_urls(text: str, name: str, locator: dict[str, str]) -> None:
    spec = parsed(text)
    assert (spec.provider, spec.preferred_name, dict(spec.locator)) == ("figshare", name,
                                                                       locator)


@pytest.mark.parametrize(("text", "name"), [("10.6084/m9.figshare.9782777", "figshare-9782777"),
                                            ("doi:10.6084/m9.figshare.9782777.v2",
                                             "figshare-9782777-v2")])
def test_figshare_dois(text: str, name: str) -> None:
    spec = parsed(text)
    assert (spec.provider, spec.preferred_name) == ("figshare", name)


def test_dataverse_dataset_pages_on_configured_installations() -> None:
    spec = parsed("https://dataverse.harvard.edu/dataset.xhtml?persistentId=doi:10.7910/DVN/6ZXAGT")
    assert spec.provider == "dataverse"
    assert spec.locator == {"installation": "https://dataverse.harvard.edu",
                            "pid": "doi:10.7910/DVN/6ZXAGT"}
    assert spec.preferred_name == "dataverse-10.7910-dvn-6zxagt"
    other = "https://data.example.org/dataset.xhtml?persistentId=doi:10.7910/DVN/6ZXAGT"
    with pytest.raises(BadRepoSource):  # not a configured installation
        parse_spec(other, CONFIG)


@pytest.mark.parametrize("text", ["doi:10.7910/DVN/6ZXAGT", "10.7910/DVN/6ZXAGT",
                                  "https://doi.org/10.7910/DVN/6ZXAGT"])
def test_other_dois_are_resolved_later(text: str) -> None:
    spec = parsed(text)
    assert spec.provider == "doi"
    assert spec.repository == "doi:10.7910/dvn/6zxagt"
    assert spec.preferred_name == "doi-10.7910-dvn-6zxagt"


def test_a_configured_resolver_takes_dois_too() -> None:
    config = CONFIG.replace(doi_resolver_url="http://127.0.0.1:9/resolve",
                            allowed_source_hosts=("127.0.0.1:9",))
    assert parse_spec("http://127.0.0.1:9/resolve/10.5281/zenodo.7", config).provider == "zenodo"


@pytest.mark.parametrize("text", ["doi:10.5281", "doi:11.1/x", "10.1234/a b", "doi:10.1/x<y>",
                                  "https://zenodo.org/records/abc",
                                  "https://zenodo.org/records/1?preview=1",
                                  "https://figshare.com/articles/dataset/title",
                                  "https://dataverse.harvard.edu/dataverse/harvard"])
def test_malformed_archive_specs_are_refused(text: str) -> None:
    with pytest.raises(BadRepoSource) as caught:
        parse_spec(text, CONFIG)
    assert caught.value.suggestions


# Refusals


@pytest.mark.parametrize("url", [
    "",
    "   ",
    "file:///etc",
    "file:///srv/repo.git",
    "ext::sh -c touch% /tmp/pwned",
    "ext::sh",
    "ssh://git@github.com/o/r",
    "git://github.com/o/r",
    "git@github.com:o/r.git",
    "http://github.com/o/r",
    "http://evil.example/o/r",
    "http://127.0.0.1:8000/o/r",  # not allowed without BINDER_ALLOWED_SOURCE_HOSTS
    "-uhttps://github.com/o/r",
    "--upload-pack=touch /tmp/x",
    "https://user:secret@gitlab.com/o/r",
    "https://token@git.example/o/r",
    "https://user:secret@github.com/o/r",
    "https://git.example/o/r?ref=main",
    "https://git.example/o/r#main",
    "https:///o/r",
    "https://git.example/repo.git",
    "https://git.example/o/r@..",
    "https://git.example/o/r@-x",
    "https://git.example/o/-r",
    "https://github.com/o\n/r",
    "https://github.com/o/r\tx",
    "https://github.com/o/r/tree/ma\x00in",
    "/etc/passwd",
    "notaurl",
])
def test_refused_specs(url: str) -> None:
    with pytest.raises(BadRepoSource) as caught:
        parse_spec(url, CONFIG)
    assert caught.value.type == "badRepoSource"
    assert caught.value.suggestions


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/o/r", "https://127.1/o/r", "https://2130706433/o/r",
    "https://[::1]/o/r", "https://[::ffff:169.254.169.254]/o/r", "https://169.254.169.254/o/r",
    "https://10.0.0.8/group/repo", "https://0x7f000001/o/r",
])
def test_private_addresses_written_in_the_url_are_refused_without_dns(url: str) -> None:
    with pytest.raises(BadRepoSource, match="loopback, private or link-local"):
        parse_spec(url, CONFIG)


def test_http_host_allowance_is_for_that_host_only() -> None:
    config = CONFIG.replace(allowed_source_hosts=("127.0.0.1:8000",))
    for url in ("http://127.0.0.1:8001/o/r", "http://127.0.0.1/o/r",
                "http://127.0.0.1:8000@evil.example/o/r"):
        with pytest.raises(BadRepoSource):
            parse_spec(url, config)


def test_refusal_message_quotes_the_url() -> None:
    with pytest.raises(BadRepoSource, match="file:///etc"):
        parse_spec("file:///etc", CONFIG)


def test_default_config_comes_from_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.providers as providers

    monkeypatch.setattr(providers, "get_config", lambda: LOCAL_GITHUB)
    assert parse_spec("http://127.0.0.1:8000/some/prefix/o/r").provider == "github"


@pytest.mark.parametrize(("config", "url"), [
    (CONFIG, "https://gitlab.com/evil/../victim/repo"),
    (CONFIG, "https://git.example/evil/../victim/repo"),
    (CONFIG, "https://github.com/../repo"),
    (CONFIG, "https://github.com/o/.."),
    (LOCAL_GITHUB, "http://127.0.0.1:8000/some/prefix/../repo"),
])
def test_dot_segments_are_refused(config: Config, url: str) -> None:
    with pytest.raises(BadRepoSource):
        parse_spec(url, config)


# The list


def test_every_provider_is_found_by_its_id_and_generic_git_is_last() -> None:
    ids = [provider.id for provider in PROVIDERS]
    assert len(set(ids)) == len(ids)
    assert ids[-1] == "git"
    assert ids.index("doi") > max(ids.index("zenodo"), ids.index("figshare"))
    for provider_id in ids:
        assert provider_by_id(provider_id, CONFIG).id == provider_id
    with pytest.raises(BadRepoSource):
        provider_by_id("svn", CONFIG)


def test_colliding_old_names_now_differ_where_the_sources_differ() -> None:
    """The first family of issue: hosts and providers differ, so do preferred names."""
    names = {parse_spec(url, CONFIG).preferred_name for url in (
        "https://evil.example/jupyter/notebook", "https://gitlab.com/jupyter/notebook",
        "https://github.com/jupyter/notebook")}
    assert names == {"evil.example-jupyter-notebook", "gitlab-jupyter-notebook",
                     "jupyter-notebook"}

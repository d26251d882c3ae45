"""``workers/index_scope.py``: the proxy forwards the index and what it links to, no more."""

from __future__ import annotations

import json

from workers.index_scope import IndexScope, page_links

ORIGIN = "https://index.example"


def test_json_pages_and_base_tags_name_links_as_pip_reads_them() -> None:
    page = json.dumps({"name": "pkg", "files": [
        {"filename": "pkg-1.whl", "url": "../../files/pkg-1.whl"},
        {"filename": "pkg-2.whl", "url": "https://index.example/files/pkg-2.whl"}]})
    assert page_links(f"{ORIGIN}/simple/pkg/", "application/vnd.pypi.simple.v1+json",
                      page) == [f"{ORIGIN}/files/pkg-1.whl", f"{ORIGIN}/files/pkg-2.whl"]
    html = '<base href="/mirror/"><a href="pkg-3.tar.gz#sha256=00">3</a><a>none</a>'
    assert page_links(f"{ORIGIN}/simple/pkg/", "text/html", html) == \
        [f"{ORIGIN}/mirror/pkg-3.tar.gz#sha256=00"]
    assert page_links(f"{ORIGIN}/simple/pkg/", "application/json", "not json") == []


def test_links_to_other_hosts_are_not_remembered_and_old_links_are_forgotten() -> None:
    scope = IndexScope(ORIGIN, "/simple/", remembered=4)
    scope.learn_page("/simple/a/", "text/html",
                     '<a href="https://other.example/secret">x</a><a href="/files/a.whl">a</a>')
    assert not scope.allows("/secret")
    assert scope.allows("/files/a.whl") and scope.allows("/files/a.whl.metadata")
    assert scope.allows("/files/a%2Ewhl?x=1")
    scope.learn_redirect("/simple/b/", "/files/b.whl")
    scope.learn_redirect("/simple/c/", "https://INDEX.example/files/c.whl")
    assert scope.allows("/files/b.whl") and scope.allows("/files/c.whl")
    assert not scope.allows("/files/a.whl")


def test_the_index_path_without_a_slash_covers_only_itself_and_below() -> None:
    scope = IndexScope(ORIGIN, "/simple")
    assert scope.allows("/simple") and scope.allows("/simple/") and scope.allows("/simple/x/")
    assert not scope.allows("/simplex") and not scope.allows("/simple/..")
    assert not scope.allows("/simple/a%2f..%2f..%2fadmin") and not scope.allows("/simple\\..")
    assert IndexScope(ORIGIN, "/").allows("/anything")

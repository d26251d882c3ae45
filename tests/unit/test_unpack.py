"""``workers/unpack.py``: archives unpack inside their folder or not at all."""

from __future__ import annotations

import contextlib
import os
import tarfile
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.archives import (
    MiB,
    make_tar,
    make_zip,
    tar_entry,
    tar_with,
    tar_with_record,
    zip_bomb,
    zip_with_symlink,
)
from workers.unpack import (
    UnpackLimits,
    UnsafeArchive,
    is_archive,
    member_path,
    strip_single_folder,
    unpack_archive,
    zip_entries,
)

LIMITS = UnpackLimits(max_bytes=64 * MiB, max_files=1000, max_ratio=100)


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root``: file content, ``->target`` for links, ``/`` for folders."""
    result = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            result[key] = "->" + os.readlink(path)
        elif path.is_dir():
            result[key] = "/"
        else:
            result[key] = path.read_text()
    return result


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A work dir inside a scratch folder whose other contents must never change."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("untouched")
    return tmp_path / "work"


def assert_nothing_outside(work: Path) -> None:
    scratch = work.parent
    assert sorted(p.name for p in scratch.iterdir()) in (["outside"], ["outside", "work"])
    assert tree(scratch / "outside") == {"keep.txt": "untouched"}


def test_zip_and_tar_unpack_with_folders(work: Path, tmp_path: Path) -> None:
    files = {"README.md": "hi", "src/a.py": "print(1)\n", "src/deep/b.txt": "b"}
    for archive in (make_zip(tmp_path / "a.zip", files), make_tar(tmp_path / "a.tgz", files)):
        dest = work / archive.suffix.strip(".")
        assert is_archive(archive)
        unpack_archive(archive, dest, LIMITS)
        assert {k: v for k, v in tree(dest).items() if v != "/"} == files


def test_a_lone_top_folder_is_stripped(work: Path, tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "gh.zip", {"repo-abc123/requirements.txt": "x\n",
                                              "repo-abc123/notebooks/n.ipynb": "{}"})
    unpack_archive(archive, work, LIMITS)
    strip_single_folder(work)
    assert tree(work) == {"notebooks": "/", "notebooks/n.ipynb": "{}",
                          "requirements.txt": "x\n"}
    assert sorted(p.name for p in work.parent.iterdir()) == ["gh.zip", "outside", "work"]


def test_two_top_level_entries_stay_as_they_are(work: Path, tmp_path: Path) -> None:
    unpack_archive(make_zip(tmp_path / "a.zip", {"a/x": "1", "b": "2"}), work, LIMITS)
    strip_single_folder(work)
    assert tree(work) == {"a": "/", "a/x": "1", "b": "2"}


def test_links_inside_the_archive_are_kept(work: Path, tmp_path: Path) -> None:
    archive = tar_with(tmp_path / "links.tar", [
        tar_entry("data/real.csv"), tar_entry("data/alias.csv", tarfile.SYMTYPE, "real.csv"),
        tar_entry("copy.csv", tarfile.LNKTYPE, "data/real.csv")],
        {"data/real.csv": b"1,2\n"})
    unpack_archive(archive, work, LIMITS)
    assert tree(work) == {"copy.csv": "1,2\n", "data": "/", "data/alias.csv": "->real.csv",
                          "data/real.csv": "1,2\n"}


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt", "/tmp/escape.txt",
                                  "C:/escape.txt", "..\\escape.txt", "a/\x00b"])
def test_unsafe_member_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeArchive):
        member_path(name)


def test_plain_member_names_are_normalised() -> None:
    assert member_path("./a//b/./c.txt") == Path("a/b/c.txt")
    assert member_path("./") is None


def hostile_archives(tmp_path: Path) -> dict[str, Path]:
    absolute = tmp_path / "outside" / "absolute.txt"
    return {
        "zip traversal": make_zip(tmp_path / "t.zip", {"ok.txt": "1",
                                                        "../outside/evil.txt": "x"}),
        "tar traversal": make_tar(tmp_path / "t.tgz", {"a/../../outside/evil.txt": "x"}),
        "zip absolute": make_zip(tmp_path / "abs.zip", {str(absolute): "x"}),
        "tar absolute": make_tar(tmp_path / "abs.tar", {str(absolute): "x"}, mode="w"),
        "tar symlink out": tar_with(tmp_path / "sym.tar", [
            tar_entry("out", tarfile.SYMTYPE, str(tmp_path / "outside")),
            tar_entry("out/evil.txt")], {"out/evil.txt": b"x"}),
        "tar relative symlink out": tar_with(tmp_path / "rel.tar", [
            tar_entry("out", tarfile.SYMTYPE, "../outside"), tar_entry("out/evil.txt")],
            {"out/evil.txt": b"x"}),
        "zip symlink out": zip_with_symlink(tmp_path / "sym.zip", "out", "../outside",
                                            {"out/evil.txt": "x"}),
        # Each link alone points inside; together the first leads out.
        "tar link redirected by a later link": tar_with(tmp_path / "two.tar", [
            tar_entry("e", tarfile.SYMTYPE, "d/.."), tar_entry("d", tarfile.SYMTYPE, ".")]),
        "tar hard link out": tar_with(tmp_path / "hard.tar", [
            tar_entry("h", tarfile.LNKTYPE, str(tmp_path / "outside" / "keep.txt"))]),
        "tar device": tar_with(tmp_path / "dev.tar", [tar_entry("null", tarfile.CHRTYPE)]),
        "tar fifo": tar_with(tmp_path / "fifo.tar", [tar_entry("pipe", tarfile.FIFOTYPE)]),
    }


@pytest.mark.parametrize("case", ["zip traversal", "tar traversal", "zip absolute",
                                  "tar absolute", "tar symlink out", "tar relative symlink out",
                                  "zip symlink out", "tar link redirected by a later link",
                                  "tar hard link out", "tar device", "tar fifo"])
def test_hostile_archives_are_refused_and_write_nothing_outside(
        case: str, work: Path, tmp_path: Path) -> None:
    archive = hostile_archives(tmp_path)[case]
    with pytest.raises(UnsafeArchive) as caught:
        unpack_archive(archive, work, LIMITS)
    assert caught.value.suggestions
    for path in tmp_path.iterdir():
        if path.is_file():
            path.unlink()  # the archives themselves
    assert_nothing_outside(work)
    assert not (tmp_path / "outside" / "evil.txt").exists()


def test_a_zip_bomb_stops_at_the_ratio(work: Path, tmp_path: Path) -> None:
    archive = zip_bomb(tmp_path / "bomb.zip", unpacked=128 * MiB)
    assert archive.stat().st_size < MiB
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        unpack_archive(archive, work, UnpackLimits(1024 * MiB, 1000, max_ratio=100))
    written = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
    assert written <= 40 * MiB


def test_the_byte_limit_counts_bytes_written_not_headers(work: Path, tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "big.zip", {"a.bin": os.urandom(3 * MiB)})
    with pytest.raises(UnsafeArchive, match="more than 2 MiB"):
        unpack_archive(archive, work, UnpackLimits(2 * MiB, 1000))


class _Stopped(Exception):
    """What the fetch's check raises: its deadline passed, or the build was cancelled."""


@pytest.mark.parametrize("stop_after", [3, 6])  # between members, inside a large member
def test_unpacking_stops_when_its_check_says_so(work: Path, tmp_path: Path,
                                                stop_after: int) -> None:
    """A large archive takes a while to unpack: a cancel or the fetch's deadline stops it
    part way, with what the check raised, not once every member is written."""
    files = {"a.txt": "a", "b.txt": "b", "big.bin": os.urandom(8 * MiB), "z.txt": "z"}
    checks = []

    def check() -> None:
        checks.append(1)
        if len(checks) >= stop_after:
            raise _Stopped()

    for archive in (make_zip(tmp_path / "a.zip", files), make_tar(tmp_path / "a.tgz", files)):
        checks.clear()
        dest = work / archive.suffix.strip(".")
        with pytest.raises(_Stopped):
            unpack_archive(archive, dest, UnpackLimits(64 * MiB, 1000, check=check))
        assert not (dest / "z.txt").exists()
        assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) < 8 * MiB


def test_the_file_count_limit(work: Path, tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "many.zip", {f"f{i}.txt": "x" for i in range(20)})
    with pytest.raises(UnsafeArchive, match="more than 10 files"):
        unpack_archive(archive, work, UnpackLimits(MiB, 10))


def test_folders_a_path_implies_count_as_members(work: Path, tmp_path: Path) -> None:
    # Twenty members within the limit of fifty, whose paths need 120 folders.
    archive = make_tar(tmp_path / "deep.tar.gz",
                       {f"d{i}/a/b/c/d/e/f.txt": "x" for i in range(20)})
    with pytest.raises(UnsafeArchive, match="more than 50 files"):
        unpack_archive(archive, work, UnpackLimits(MiB, 50))
    assert sum(1 for path in work.rglob("*") if path.is_dir()) <= 50


def test_one_deep_member_cannot_make_thousands_of_folders(work: Path, tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "tower.tar.gz", {"a/" * 1500 + "f": ""}, mode="w:gz")
    with pytest.raises(UnsafeArchive, match="more than 100 files"):
        unpack_archive(archive, work, UnpackLimits(MiB, 100))
    assert sum(1 for _root, dirs, _files in os.walk(work) for _ in dirs) <= 100


def test_listed_folders_are_counted_once(work: Path, tmp_path: Path) -> None:
    files = {"top/": "", "top/sub/": "", "top/sub/a.txt": "a", "top/sub/b.txt": "b"}
    archive = make_zip(tmp_path / "listed.zip", files)
    assert unpack_archive(archive, work, UnpackLimits(MiB, 4)) == 4
    assert tree(work) == {"top": "/", "top/sub": "/", "top/sub/a.txt": "a",
                          "top/sub/b.txt": "b"}


def test_a_zip_of_too_many_entries_is_refused_before_it_is_read_whole(
        work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_zip(tmp_path / "many.zip", {f"f{i}.txt": "x" for i in range(50)})
    assert zip_entries(archive, 1000) == 50 and zip_entries(archive, 10) == 11

    def read_whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile read every entry of the central directory")

    monkeypatch.setattr(zipfile, "ZipFile", read_whole)
    with pytest.raises(UnsafeArchive, match="more than 10 files"):
        unpack_archive(archive, work, UnpackLimits(MiB, 10))
    assert list(work.iterdir()) == []


def test_a_damaged_archive_is_a_clear_failure(work: Path, tmp_path: Path) -> None:
    data = make_zip(tmp_path / "a.zip", {"a.txt": "x" * 5000}).read_bytes()
    broken = tmp_path / "broken.zip"
    broken.write_bytes(data[:30] + b"\xff" * 200 + data[230:])
    with pytest.raises(UnsafeArchive, match="damaged|not a zip"):
        unpack_archive(broken, work, LIMITS)


def test_not_an_archive(work: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("plain")
    assert not is_archive(text)
    with pytest.raises(UnsafeArchive, match="not a zip or tar"):
        unpack_archive(text, work, LIMITS)


def peak_allocation(action: Callable[[], object]) -> int:
    """The most Python held at once while ``action`` ran (bytes above what it held before)."""
    tracemalloc.start()
    try:
        with contextlib.suppress(UnsafeArchive):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
                                  tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_a_huge_name_or_header_record_is_refused_before_it_is_read(
        kind: bytes, work: Path, tmp_path: Path) -> None:
    # 64 MiB of one long name packs into some 64 KiB: read whole, it is held whole.
    archive = tar_with_record(tmp_path / "names.tar.gz", kind, 64 * MiB)
    assert archive.stat().st_size < MiB
    with pytest.raises(UnsafeArchive, match="names or headers") as caught:
        unpack_archive(archive, work, LIMITS)
    assert caught.value.suggestions and len(caught.value.message) < 300
    assert peak_allocation(lambda: unpack_archive(archive, work, LIMITS)) < 8 * MiB
    assert peak_allocation(lambda: is_archive(archive)) < 8 * MiB


def test_a_gnu_sparse_member_is_refused(work: Path, tmp_path: Path) -> None:
    # Each of its extension headers adds entries to a map held in memory, without end.
    archive = tar_with_record(tmp_path / "sparse.tar.gz", tarfile.GNUTYPE_SPARSE, 1024)
    with pytest.raises(UnsafeArchive, match="sparse"):
        unpack_archive(archive, work, LIMITS)


@pytest.mark.parametrize("name", ["a" * 256, "/".join(["d" * 200] * 25) + "/f.txt"])
def test_a_name_longer_than_the_system_takes_is_refused(name: str, work: Path,
                                                        tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "long.tar.gz", {name: "x"})
    with pytest.raises(UnsafeArchive, match="too long") as caught:
        unpack_archive(archive, work, LIMITS)
    assert len(caught.value.message) < 300

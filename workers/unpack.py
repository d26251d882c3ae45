"""Unpacking untrusted zip and tar archives into a work dir, safely.

An archive from a data repository is as untrusted as a Git repository: its
member names, link targets and sizes are chosen by whoever uploaded it. So
every member is checked before a byte lands:

- names are relative, with no ``..`` component, no drive letter, no NUL,
  and no longer than the system takes (``NAME_MAX``, ``PATH_MAX``);
- a tar's records that carry metadata (GNU long names and link targets, pax
  headers) are refused above ``MAX_TAR_RECORD`` before ``tarfile`` reads
  them, which it does whole, into memory (64 KiB of a compressed archive
  would otherwise hold 64 MiB of one name); GNU sparse members, whose maps
  ``tarfile`` also holds whole, are refused;
- symbolic links point inside the destination (checked on the real path,
  and once more over the whole tree at the end, since a later link can
  change where an earlier one leads); hard links only to members already
  unpacked; devices, FIFOs and other special files are refused;
- files are written without following a link at their own name, into a
  parent directory whose real path is inside the destination;
- the bytes actually written (never the sizes the headers claim) stay
  within ``max_bytes`` and within ``max_ratio`` times the archive's own
  size (a zip bomb stops at the first chunk over), and the member count
  within ``max_files``, every folder a member's path implies counting as
  a member too (one short name ``a/a/a/.../f`` would otherwise make
  thousands of folders, each a block of disk, for nothing written); a
  zip's entries are counted before ``zipfile`` reads its central directory,
  which it holds whole in memory (some 500 bytes for each 50-byte entry).

A refused archive raises ``UnsafeArchive`` (a ``BuildFailure``) with a
sentence for the user; what was unpacked so far stays inside the
destination, which the caller removes with the work dir.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from common.errors import BuildFailure

CHUNK = 1024 * 1024
#: Longest tar metadata record (a GNU long name or link target, a pax header) read; a
#: real one holds a path and a few keys.
MAX_TAR_RECORD = 64 * 1024
#: Longest member name component, and whole name, a Linux file system takes.
NAME_MAX = 255
PATH_MAX = 4096
#: Below this many bytes unpacked, the compression ratio is not checked
#: (small, very compressible files such as notebooks full of zeros are fine).
RATIO_FLOOR = 32 * 1024 * 1024


class UnsafeArchive(BuildFailure):
    """The archive breaks a safety rule or a limit; nothing escaped the work dir."""


@dataclass(frozen=True)
class UnpackLimits:
    max_bytes: int
    max_files: int
    max_ratio: int = 100
    #: called before each member and each chunk written; raises to stop the unpacking
    #: (the fetch's deadline, a cancel): a large archive takes a while
    check: Callable[[], object] = lambda: None


@dataclass
class _Member:
    """One archive entry, the same for zip and tar."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink", "other"
    mode: int
    link: str = ""


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a zip or tar archive (by content, not by name)."""
    return zipfile.is_zipfile(path) or _is_tar(path)


def _is_tar(path: Path) -> bool:
    # tarfile.is_tarfile reads the first header with an unbounded TarInfo.
    try:
        with _open_tar(path):
            return True
    except (OSError, tarfile.TarError, EOFError, ValueError):
        return False


def printable(name: str, limit: int = 80) -> str:
    """A member name fit for a message: control characters dropped, length bounded."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in name)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def member_path(name: str) -> PurePosixPath | None:
    """The safe relative path of an archive member, ``None`` for the root itself.

    Raises ``UnsafeArchive`` for an absolute name, a ``..`` component, a
    drive letter or a NUL byte.
    """
    text = name.replace("\\", "/")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if len(text.encode(errors="surrogateescape")) >= PATH_MAX or any(
            len(part.encode(errors="surrogateescape")) > NAME_MAX for part in parts):
        raise _too_long(name)
    if (text.startswith("/") or "\x00" in text or ".." in parts
            or (parts and len(parts[0]) >= 2 and parts[0][1] == ":")):
        raise UnsafeArchive(
            f"The archive holds an unsafe path ({printable(name)}): an absolute path or "
            "one that climbs out with '..'.",
            suggestions=["Repack the archive with relative paths inside one folder."])
    return PurePosixPath(*parts) if parts else None


def _too_long(name: str) -> UnsafeArchive:
    return UnsafeArchive(
        f"The archive holds a path that is too long ({printable(name)}): a file system "
        f"takes names of at most {NAME_MAX} bytes, in paths of less than {PATH_MAX}.",
        suggestions=["Repack the archive with shorter file and folder names."])


#: The tar record types whose bytes are metadata of the next member (or of all).
_METADATA_RECORDS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                     tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header that refuses, before ``tarfile`` reads them, the records it would
    hold whole in memory past ``MAX_TAR_RECORD`` (see the module docstring)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise UnsafeArchive(
                "The archive holds a GNU sparse file, which this farm does not unpack.",
                suggestions=["Repack the archive without --sparse (plain files)."])
        if self.type in _METADATA_RECORDS and self.size > MAX_TAR_RECORD:
            raise UnsafeArchive(
                f"The archive holds names or headers of {self.size} bytes (a tar record "
                f"of long names or pax headers); this farm reads at most {MAX_TAR_RECORD}.",
                suggestions=["Repack the archive with shorter file names and without "
                             "extended attributes."])
        return super()._proc_member(tarfile_)  # type: ignore[misc]

    def _proc_gnusparse_10(self, next_: tarfile.TarInfo, pax_headers: dict[str, str],
                           tarfile_: tarfile.TarFile) -> None:
        # A pax-described sparse map, read from the member's data one block at a time.
        raise UnsafeArchive(
            "The archive holds a sparse file (pax GNU.sparse), which this farm does not "
            "unpack.", suggestions=["Repack the archive without --sparse (plain files)."])


def _open_tar(path: Path) -> tarfile.TarFile:
    """``path`` opened as a tar (any compression) whose headers are read bounded."""
    return tarfile.open(path, "r:*", tarinfo=_BoundedTarInfo)


def implied_folders(relative: PurePosixPath) -> list[PurePosixPath]:
    """The folders that must exist for ``relative`` to be written, outermost first."""
    return [folder for folder in reversed(relative.parents) if folder.parts]


class _Unpacker:
    def __init__(self, dest: Path, limits: UnpackLimits, archive_size: int) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        self.dest = dest
        self.real_dest = os.path.realpath(dest)
        self.limits = limits
        self.archive_size = max(archive_size, 1)
        self.written = 0
        self.count = 0
        self.files: set[PurePosixPath] = set()
        self.folders: set[PurePosixPath] = set()

    def inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self.real_dest or real.startswith(self.real_dest + os.sep)

    def parent_of(self, relative: PurePosixPath) -> Path:
        """Make the parent directory of ``relative``, each new folder counted as a member;
        refuse one that leads outside."""
        for folder in implied_folders(relative):
            if folder not in self.folders:
                self.folders.add(folder)
                self.count_member()
        parent = self.dest.joinpath(*relative.parent.parts)
        if not self.inside(str(parent)):
            raise _escape(str(relative))
        parent.mkdir(parents=True, exist_ok=True)
        if not self.inside(str(parent)):
            raise _escape(str(relative))
        return parent

    def make_dir(self, relative: PurePosixPath) -> None:
        folder = self.parent_of(relative) / relative.name
        if folder.exists() and not folder.is_dir():
            raise UnsafeArchive(
                f"The archive holds {printable(str(relative))} both as a file and a folder.",
                suggestions=["Repack the archive without duplicate entries."])
        folder.mkdir(exist_ok=True)
        if not self.inside(str(folder)):
            raise _escape(str(relative))
        self.folders.add(relative)  # counted as the member it is

    def count_member(self) -> None:
        self.count += 1
        if self.count > self.limits.max_files:
            raise _too_many(self.limits)

    def add(self, member: _Member, source: IO[bytes] | None) -> None:
        self.limits.check()
        self.count_member()
        relative = member_path(member.name)
        if relative is None:
            return
        if member.kind == "dir":
            self.make_dir(relative)
            return
        parent = self.parent_of(relative)
        target = parent / relative.name
        if target.is_symlink() or target.is_dir():
            raise UnsafeArchive(
                f"The archive holds {printable(member.name)} twice, once as a link or folder.",
                suggestions=["Repack the archive without duplicate entries."])
        if member.kind == "file":
            assert source is not None
            self.write(target, source, member.mode)
            self.files.add(relative)
        elif member.kind == "symlink":
            self.symlink(target, member)
        elif member.kind == "hardlink":
            self.hardlink(target, member)
        else:
            raise UnsafeArchive(
                f"The archive holds a device, FIFO or other special file "
                f"({printable(member.name)}).",
                suggestions=["Keep only files, folders and links inside the archive."])

    def write(self, target: Path, source: IO[bytes], mode: int) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(target, flags, 0o755 if mode & 0o111 else 0o644)
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                self.limits.check()
                self.take(len(chunk))
                out.write(chunk)

    def take(self, size: int) -> None:
        self.written += size
        if self.written > self.limits.max_bytes:
            raise UnsafeArchive(
                f"The archive unpacks to more than {self.limits.max_bytes // (1024 * 1024)} "
                "MiB, over this farm's limit.",
                suggestions=["Keep large data out of the archive (operators: "
                             "BINDER_MAX_REPO_MB)."])
        if (self.written > RATIO_FLOOR
                and self.written > self.limits.max_ratio * self.archive_size):
            raise UnsafeArchive(
                f"The archive unpacks to more than {self.limits.max_ratio} times its own "
                "size; it looks like a zip bomb.",
                suggestions=["Publish the files uncompressed, or operators: raise "
                             "BINDER_MAX_ARCHIVE_RATIO."])

    def symlink(self, target: Path, member: _Member) -> None:
        link = member.link
        if len(link.encode(errors="surrogateescape")) >= PATH_MAX:
            raise _too_long(link)
        if not link or link.startswith("/") or "\x00" in link or \
                not self.inside(os.path.join(target.parent, link)):
            raise _escape(member.name)
        os.symlink(link, target)

    def hardlink(self, target: Path, member: _Member) -> None:
        source = member_path(member.link)
        if source is None or source not in self.files:
            raise _escape(member.name)
        origin = self.dest.joinpath(*source.parts)
        if origin.is_symlink() or not self.inside(str(origin)):
            raise _escape(member.name)
        self.take(origin.stat().st_size)
        shutil.copyfile(origin, target, follow_symlinks=False)
        self.files.add(member_path(member.name) or source)

    def verify_links(self) -> None:
        """Every link in the tree resolves inside it (a later link can redirect an earlier)."""
        for root, dirs, files in os.walk(self.dest):
            for name in dirs + files:
                path = os.path.join(root, name)
                if os.path.islink(path) and not self.inside(path):
                    raise _escape(os.path.relpath(path, self.dest))


def _too_many(limits: UnpackLimits) -> UnsafeArchive:
    return UnsafeArchive(
        f"The archive holds more than {limits.max_files} files, over this farm's limit.",
        suggestions=["Publish fewer files (operators: BINDER_MAX_REPO_FILES)."])


def zip_entries(path: Path, stop: int) -> int:
    """How many entries the zip's central directory holds, counted up to ``stop`` + 1
    a header at a time (as ``zipfile`` walks it, without keeping any)."""
    with open(path, "rb") as handle:
        end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]
        if not end:
            return 0  # not a zip: opening it says so
        size = end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
        start = end[zipfile._ECD_LOCATION] - size  # type: ignore[attr-defined]
        if end[0] == zipfile.stringEndArchive64:  # type: ignore[attr-defined]
            start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator  # type: ignore[attr-defined]
        handle.seek(max(start, 0))
        count = read = 0
        while read < size and count <= stop:
            header = handle.read(46)
            if len(header) < 46 or header[:4] != b"PK\x01\x02":
                break
            skip = sum(struct.unpack("<HHH", header[28:34]))  # name, extra field, comment
            handle.seek(skip, os.SEEK_CUR)
            read += 46 + skip
            count += 1
    return count


def _escape(name: str) -> UnsafeArchive:
    return UnsafeArchive(
        f"The archive holds a link or path ({printable(name)}) that leads outside its "
        "own folder.",
        suggestions=["Repack the archive without links that point outside it."])


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[_Member, IO[bytes] | None]]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        if info.is_dir():
            yield _Member(info.filename, "dir", mode), None
        elif stat.S_ISLNK(mode):
            with archive.open(info) as handle:
                target = handle.read(4096).decode("utf-8", errors="replace")
            yield _Member(info.filename, "symlink", mode, target), None
        elif mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            yield _Member(info.filename, "other", mode), None
        else:
            with archive.open(info) as handle:
                yield _Member(info.filename, "file", mode), handle


def _tar_members(archive: tarfile.TarFile) -> Iterator[tuple[_Member, IO[bytes] | None]]:
    for info in archive:
        if info.isdir():
            yield _Member(info.name, "dir", info.mode), None
        elif info.isreg():
            handle = archive.extractfile(info)
            yield _Member(info.name, "file", info.mode), handle
        elif info.issym():
            yield _Member(info.name, "symlink", info.mode, info.linkname), None
        elif info.islnk():
            yield _Member(info.name, "hardlink", info.mode, info.linkname), None
        else:
            yield _Member(info.name, "other", info.mode), None


def unpack_archive(archive: Path, dest: Path, limits: UnpackLimits) -> int:
    """Unpack the zip or tar ``archive`` into ``dest``; return the number of members.

    Raises ``UnsafeArchive`` as the module docstring says, and for a file
    that is neither a readable zip nor tar.
    """
    unpacker = _Unpacker(dest, limits, archive.stat().st_size)
    try:
        if zipfile.is_zipfile(archive):
            if zip_entries(archive, limits.max_files) > limits.max_files:
                raise _too_many(limits)
            with zipfile.ZipFile(archive) as opened:
                for member, handle in _zip_members(opened):
                    unpacker.add(member, handle)
        elif _is_tar(archive):
            with _open_tar(archive) as opened:
                for member, handle in _tar_members(opened):
                    unpacker.add(member, handle)
        else:
            raise UnsafeArchive(f"{printable(archive.name)} is not a zip or tar archive.",
                                suggestions=["Publish a .zip or .tar(.gz) archive."])
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError, RuntimeError,
            NotImplementedError) as exc:  # RuntimeError: an encrypted zip member
        raise UnsafeArchive(f"The archive {printable(archive.name)} is damaged and could "
                            "not be read.",
                            suggestions=["Upload the archive again."]) from exc
    unpacker.verify_links()
    return unpacker.count


def strip_single_folder(dest: Path) -> None:
    """Move the contents of a lone top-level folder up into ``dest``, as repo2docker does."""
    entries = list(dest.iterdir())
    if len(entries) != 1 or entries[0].is_symlink() or not entries[0].is_dir():
        return
    holding = Path(tempfile.mkdtemp(prefix=".strip-", dir=dest.parent)) / "folder"
    entries[0].rename(holding)
    for child in holding.iterdir():
        child.rename(dest / child.name)
    holding.rmdir()
    holding.parent.rmdir()

"""Making zip and tar archives for tests, including hostile ones.

Each hostile maker writes an archive whose extraction, by a naive
unpacker, would write outside the destination or fill the disk.
"""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import zipfile
from pathlib import Path

MiB = 1024 * 1024


def make_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


def make_tar(path: Path, files: dict[str, str | bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def zip_bytes(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def tar_with(path: Path, entries: list[tarfile.TarInfo],
             contents: dict[str, bytes] | None = None) -> Path:
    """A tar of hand-made ``TarInfo`` entries (links, devices, odd names)."""
    contents = contents or {}
    with tarfile.open(path, "w") as archive:
        for info in entries:
            data = contents.get(info.name)
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o777 if kind == tarfile.SYMTYPE else 0o644
    return info


def zip_with_symlink(path: Path, name: str, target: str,
                     then: dict[str, str] | None = None) -> Path:
    """A zip holding a symbolic link ``name -> target`` (and files after it)."""
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, target)
        for file_name, content in (then or {}).items():
            archive.writestr(file_name, content)
    return path


def zip_bomb(path: Path, unpacked: int = 1024 * MiB) -> Path:
    """A zip of one file of ``unpacked`` zero bytes: 1 GiB deflates to about 1 MiB."""
    chunk = bytes(MiB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("zeros.bin", "w", force_zip64=True) as member:
        for _ in range(unpacked // MiB):
            member.write(chunk)
    return path


def tar_with_record(path: Path, kind: bytes, size: int, then: str = "after.txt") -> Path:
    """A gzipped tar whose first entry is a metadata record of type ``kind`` (a GNU long
    name, a pax header, a GNU sparse file) claiming ``size`` bytes, all of them there: a
    reader holding such a record whole holds ``size`` bytes, though the archive, one
    repeated byte compressed, is a thousandth of it. A plain file ``then`` follows."""
    record = tarfile.TarInfo("././@LongLink")
    record.type, record.size = kind, size
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(record.tobuf(format=tarfile.GNU_FORMAT))
        block = b"a" * MiB
        for _ in range(size // MiB):
            out.write(block)
        out.write(b"a" * (size % MiB) + bytes(-size % tarfile.BLOCKSIZE))
        plain = tarfile.TarInfo(then)
        out.write(plain.tobuf(format=tarfile.GNU_FORMAT) + bytes(2 * tarfile.BLOCKSIZE))
    return path

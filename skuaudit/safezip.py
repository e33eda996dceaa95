"""Extract an uploaded zip archive without trusting it.

Refused, each with a message a person can act on (``UnsafeArchiveError``):

- paths that leave the target folder: absolute paths, drive letters, ``..`` components (zip slip);
- symbolic links (a link followed by a file written through it is zip slip again);
- too many entries (a 100,000-file archive exhausts inodes and the file listing);
- zip bombs: a declared total size above ``max_total_bytes``, or an entry whose size over its
  compressed size exceeds ``max_ratio``. Declared sizes can lie, so bytes are also counted while
  extracting and extraction stops as soon as an entry writes more than it declared.

Example:
    >>> files = safe_extract("upload.zip", "data/datasets/upload-1")  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from skuaudit.errors import UserError

_CHUNK = 1024 * 1024


class UnsafeArchiveError(UserError):
    """An archive that will not be extracted; the message names the entry and the limit."""


@dataclass(frozen=True)
class ZipLimits:
    """Limits of ``safe_extract``.

    Attributes:
        max_files: most entries (files and folders).
        max_total_bytes: most uncompressed bytes in all.
        max_ratio: largest uncompressed / compressed size of one entry; entries smaller than
            ``ratio_min_bytes`` are exempt (tiny text files compress very well legitimately).
        ratio_min_bytes: see ``max_ratio``.
    """

    max_files: int = 20_000
    max_total_bytes: int = 4 * 1024**3
    max_ratio: float = 200.0
    ratio_min_bytes: int = 1024 * 1024


def _safe_member_path(name: str) -> PurePosixPath:
    """The entry's relative path, or ``UnsafeArchiveError`` for one that could leave the folder."""
    cleaned = name.replace("\\", "/")
    path = PurePosixPath(cleaned)
    if "\x00" in name or cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise UnsafeArchiveError(f"entry {name!r} has an absolute path; the archive is refused")
    if ".." in path.parts:
        raise UnsafeArchiveError(
            f"entry {name!r} points outside the archive folder ('..'); the archive is refused"
        )
    return path


def check_archive(
    archive: zipfile.ZipFile, limits: ZipLimits = ZipLimits()
) -> list[zipfile.ZipInfo]:
    """Check every entry of an open archive against ``limits`` before anything is written.

    Returns:
        The entries, in archive order.

    Raises:
        UnsafeArchiveError: the first rule an entry breaks.
    """
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise UnsafeArchiveError(
            f"the archive has {len(infos):,} entries; at most {limits.max_files:,} are accepted "
            "(split the dataset into several archives)"
        )
    total = 0
    for info in infos:
        _safe_member_path(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                f"entry {info.filename!r} is a symbolic link; links are not accepted"
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UnsafeArchiveError(
                f"the archive unpacks to more than {limits.max_total_bytes / 1e9:.1f} GB; "
                "it is refused (possible zip bomb)"
            )
        if info.file_size >= limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise UnsafeArchiveError(
                f"entry {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f} times "
                f"(limit {limits.max_ratio:.0f}); the archive is refused (possible zip bomb)"
            )
    return infos


def safe_extract(
    source: str | Path | BinaryIO, dest: str | Path, limits: ZipLimits = ZipLimits()
) -> list[Path]:
    """Extract a zip archive into ``dest`` after checking it (see the module docstring).

    Args:
        source: path or binary file object of the archive (e.g. a Streamlit upload).
        dest: target folder; created if missing. On failure, files written so far are removed.
        limits: the limits to enforce.

    Returns:
        The extracted files (not folders), in archive order.

    Raises:
        UnsafeArchiveError: not a zip file, or an entry breaks a rule.
    """
    dest = Path(dest)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise UnsafeArchiveError(f"not a readable zip archive ({exc})") from exc
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written: list[Path] = []
    try:
        with archive:
            infos = check_archive(archive, limits)
            total = 0
            for info in infos:
                target = root.joinpath(*_safe_member_path(info.filename).parts)
                if not target.resolve().is_relative_to(root):
                    raise UnsafeArchiveError(
                        f"entry {info.filename!r} resolves outside the target folder"
                    )
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                size = 0
                with archive.open(info) as src, open(target, "wb") as out:
                    written.append(target)
                    while chunk := src.read(_CHUNK):
                        size += len(chunk)
                        total += len(chunk)
                        if size > info.file_size or total > limits.max_total_bytes:
                            raise UnsafeArchiveError(
                                f"entry {info.filename!r} unpacks to more than it declares; "
                                "the archive is refused (possible zip bomb)"
                            )
                        out.write(chunk)
    except (UnsafeArchiveError, zipfile.BadZipFile, OSError) as exc:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for path in written:
                path.unlink(missing_ok=True)
        if isinstance(exc, UnsafeArchiveError):
            raise
        raise UnsafeArchiveError(f"the archive could not be extracted ({exc})") from exc
    return written

"""Safe extraction of uploaded zip archives: zip slip, links, bombs, too many files."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from skuaudit.safezip import UnsafeArchiveError, ZipLimits, safe_extract


def _zip(
    entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED
) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def _symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "entries, expected",
    [
        ([], []),
        ([("a.txt", b"x")], ["a.txt"]),
        (
            [
                ("data/", b""),
                ("data/images/1.jpg", b"jpg"),
                ("data/labels/1.txt", b"0 0.5 0.5 0.1 0.1"),
            ],
            ["data/images/1.jpg", "data/labels/1.txt"],
        ),
        (
            [("odd name ü.txt", b"ok"), ("dots..in..name.txt", b"ok")],
            ["odd name ü.txt", "dots..in..name.txt"],
        ),
    ],
)
def test_extracts_ordinary_archives(tmp_path, entries, expected):
    files = safe_extract(_zip(entries), tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in files] == expected
    for path, (_, data) in zip(files, [e for e in entries if not e[0].endswith("/")], strict=True):
        assert path.read_bytes() == data


@pytest.mark.parametrize(
    "entries, message",
    [
        ([("../evil.txt", b"x")], "outside the archive folder"),
        ([("images/../../evil.txt", b"x")], "outside the archive folder"),
        ([("..\\..\\evil.txt", b"x")], "outside the archive folder"),
        ([("/etc/evil.txt", b"x")], "absolute path"),
        ([("C:/evil.txt", b"x")], "absolute path"),
        ([("ok.txt", b"x"), (_symlink("link", "/etc/passwd"), b"/etc/passwd")], "symbolic link"),
        ([("bomb.bin", b"\0" * (20 * 1024 * 1024))], "possible zip bomb"),
        ([("not-a-zip", None)], "not a readable zip"),
    ],
)
def test_refuses_unsafe_archives(tmp_path, entries, message):
    source = io.BytesIO(b"this is not a zip file") if entries[0][1] is None else _zip(entries)
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_refuses_total_size_above_limit(tmp_path):
    archive = _zip([(f"f{i}.bin", bytes(range(256)) * 64) for i in range(4)], zipfile.ZIP_STORED)
    with pytest.raises(UnsafeArchiveError, match="unpacks to more than"):
        safe_extract(archive, tmp_path / "out", ZipLimits(max_total_bytes=40_000))


def test_refuses_entry_that_lies_about_its_size(tmp_path):
    archive = _zip([("big.bin", b"\1" * 100_000)], zipfile.ZIP_STORED)
    raw = bytearray(archive.getvalue())
    # shrink the declared size in the central directory (and the local header) to 1,000 bytes
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        start = raw.find(signature)
        raw[start + offset : start + offset + 4] = (1000).to_bytes(4, "little")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(io.BytesIO(bytes(raw)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_100000_tiny_files(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(100_000):
            archive.writestr(zipfile.ZipInfo(f"f{i}"), b"")
    buffer.seek(0)
    with pytest.raises(UnsafeArchiveError, match="100,000 entries; at most 20,000"):
        safe_extract(buffer, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_folder_keeps_its_files_on_failure(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(_zip([("ok.txt", b"x"), ("../evil.txt", b"x")]), tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "ok.txt").exists()

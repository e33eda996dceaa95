"""Every class of bad input gets a clear message, and nothing already saved is lost.

One parametrized case per class (issue 9). The cases call the same functions the pages and the
CLI call; database cases check the rows saved before the failure are all still there.
"""

from __future__ import annotations

import io
import sqlite3
import struct
import subprocess
import sys
import tomllib
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

from skuaudit.config import REPO_ROOT, get_settings
from skuaudit.datasets.base import DatasetError
from skuaudit.datasets.readers import read_dataset
from skuaudit.images import ImageError, load_image_bytes
from skuaudit.safezip import UnsafeArchiveError, ZipLimits, safe_extract
from skuaudit.storage import models as m
from skuaudit.storage.db import DatabaseError, _engine_for, session_scope


def _jpeg(h: int = 40, w: int = 60) -> bytes:
    return cv2.imencode(".jpg", np.full((h, w, 3), 128, np.uint8))[1].tobytes()


def _png(h: int = 40, w: int = 60) -> bytes:
    return cv2.imencode(".png", np.full((h, w, 3), 128, np.uint8))[1].tobytes()


def _png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` (a decompression bomb's calling card)."""
    data = bytearray(_png())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


IMAGE_CASES = {
    "corrupt jpeg": (lambda: _jpeg()[:30] + b"\x00garbage" * 50, "corrupt|not a readable"),
    "truncated png": (lambda: _png(200, 200)[:200], "corrupt or truncated|not a readable"),
    "20000x20000 bomb": (lambda: _png_claiming_size(20000, 20000), "decompression bomb"),
    # Pillow's own guard (89M pixels) answers first here: still our words, with our limit.
    "12000x9000": (lambda: _png_claiming_size(12000, 9000), "more than the limit of 50,000,000"),
    "non-image named .jpg": (lambda: b"%PDF-1.4 not a photo\n" * 20, "not a readable image"),
    "empty file": (lambda: b"", "empty"),
}


@pytest.mark.parametrize("case", IMAGE_CASES, ids=list(IMAGE_CASES))
def test_bad_images_refused(case):
    make, message = IMAGE_CASES[case]
    with pytest.raises(ImageError, match=message):
        load_image_bytes(make(), name="shelf.jpg")


def test_upload_over_limit_refused_in_code_too():
    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    # The server takes a dataset zip; photo uploaders set their own, smaller, limit (page tests).
    assert config["server"]["maxUploadSize"] == get_settings().max_dataset_mb
    assert get_settings().max_upload_mb < get_settings().max_dataset_mb
    with pytest.raises(ImageError, match="limit"):
        load_image_bytes(_jpeg(), max_bytes=100)


def _zip(entries: dict[str, bytes] | None = None, *, many: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in (entries or {}).items():
            zf.writestr(name, data)
        for i in range(many):
            zf.writestr(zipfile.ZipInfo(f"f/{i}.txt"), b"x")
    return buf.getvalue()


ZIP_CASES = {
    "zip slip ../": (lambda: _zip({"ok.txt": b"x", "../../evil.txt": b"pwned"}), r"\.\."),
    "absolute path": (lambda: _zip({"/etc/evil": b"pwned"}), "absolute"),
    "zip bomb": (lambda: _zip({"bomb.bin": b"\0" * (60 * 2**20)}), "zip bomb"),
    "100,000 tiny files": (lambda: _zip(many=100_000), "entries|files"),
    "not a zip": (lambda: b"PK\x03\x04 broken", "zip"),
}


@pytest.mark.parametrize("case", ZIP_CASES, ids=list(ZIP_CASES))
def test_hostile_zips_refused_and_nothing_written(case, tmp_path):
    make, message = ZIP_CASES[case]
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(io.BytesIO(make()), dest, ZipLimits())
    assert not (tmp_path / "evil.txt").exists() and not Path("/etc/evil").exists()
    assert not dest.exists() or not any(p.is_file() for p in dest.rglob("*"))


def _yolo_set(root: Path, label_text: bytes, classes: bytes = b"product\ngap\n") -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "images" / "a.jpg").write_bytes(_jpeg(100, 100))
    (root / "labels" / "a.txt").write_bytes(label_text)
    (root / "classes.txt").write_bytes(classes)
    return root


ANNOTATION_CASES = {
    "box outside image": (
        b"0 0.5 0.5 0.4 0.4\n0 1.3 0.5 0.2 0.2\n",
        b"product\ngap\n",
        r"a\.txt.*line 2",
    ),
    "unknown class": (b"7 0.5 0.5 0.2 0.2\n", b"product\ngap\n", r"a\.txt.*line 1.*class"),
    "not a number": (b"0 0.5 abc 0.2 0.2\n", b"product\ngap\n", r"a\.txt.*line 1"),
    "wrong encoding": (
        b"0 0.5 0.5 0.2 0.2\n",
        "produkt\u00e9\n".encode("latin-1"),
        "classes.txt.*UTF-8",
    ),
}


@pytest.mark.parametrize("case", ANNOTATION_CASES, ids=list(ANNOTATION_CASES))
def test_malformed_annotations_name_file_and_line(case, tmp_path):
    labels, classes, message = ANNOTATION_CASES[case]
    root = _yolo_set(tmp_path / "ds", labels, classes)
    with pytest.raises(DatasetError, match=message):
        read_dataset(root, "yolo")


def test_empty_dataset_refused(tmp_path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "classes.txt").write_text("product\ngap\n")
    with pytest.raises(DatasetError, match="(?i)empty|no images"):
        read_dataset(tmp_path / "empty", "yolo")


def _audit_count(url: str) -> int:
    with session_scope(url) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(m.Audit))


def _try_saving_a_store(url: str) -> None:
    with session_scope(url) as s:
        s.add(m.Store(name="Written during the failure"))


def test_read_only_database_refuses_writes_and_keeps_data(demo_db_url):
    before = _audit_count(demo_db_url)
    path = demo_db_url.removeprefix("sqlite:///")
    read_only_url = f"sqlite:///file:{path}?mode=ro&uri=true"
    with pytest.raises(DatabaseError, match="read-only"):
        _try_saving_a_store(read_only_url)
    assert _audit_count(demo_db_url) == before


def test_locked_database_gives_clear_error_and_keeps_data(demo_db_url, monkeypatch):
    before = _audit_count(demo_db_url)
    monkeypatch.setenv("SKUAUDIT_DB_BUSY_TIMEOUT_MS", "300")
    _engine_for.cache_clear()  # new connections pick up the short timeout
    holder = sqlite3.connect(demo_db_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(DatabaseError, match="locked"):
            _try_saving_a_store(demo_db_url)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        _engine_for.cache_clear()
    assert _audit_count(demo_db_url) == before
    with session_scope(demo_db_url) as s:
        assert (
            s.scalar(sa.select(m.Store.id).where(m.Store.name == "Written during the failure"))
            is None
        )


MODEL_CASES = {
    "missing weights": ({"config.json": None}, "model.keras is missing"),
    "corrupt weights": (
        {
            "config.json": None,
            "model.keras": b"not a keras zip",
            "model.tflite": b"not a flatbuffer",
        },
        "corrupt",
    ),
    "corrupt config": ({"config.json": b"{broken", "model.keras": b"x"}, "config.json"),
    "no folder": (None, "not found"),
}


@pytest.mark.parametrize("case", MODEL_CASES, ids=list(MODEL_CASES))
def test_broken_model_folder_gives_clear_error(case, tmp_path):
    from skuaudit.detector import Detector, ModelLoadError

    files, message = MODEL_CASES[case]
    folder = tmp_path / "model"
    if files is not None:
        folder.mkdir()
        for name, data in files.items():
            source = REPO_ROOT / "models" / "default" / name
            (folder / name).write_bytes(source.read_bytes() if data is None else data)
    with pytest.raises(ModelLoadError, match=message):
        Detector.load(folder)


@pytest.mark.parametrize("value", ["{not json", '{"urls": "stun:x"}', "[1, 2]"])
def test_bad_ice_server_setting(value):
    from skuaudit.live import ice_servers_from_env

    with pytest.raises(ValueError, match="SKUAUDIT_ICE_SERVERS"):
        ice_servers_from_env({"SKUAUDIT_ICE_SERVERS": value})


def test_cli_audit_of_corrupt_photo_saves_nothing(demo_db_url, tmp_path):
    before = _audit_count(demo_db_url)
    bad = tmp_path / "shelf.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    run = subprocess.run(
        [sys.executable, "-m", "skuaudit", "audit", str(bad), "--store", "Meadow Mart", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "shelf.jpg" in run.stderr
    assert _audit_count(demo_db_url) == before
    assert run.stdout.strip() == ""  # no partial JSON result

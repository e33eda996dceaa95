"""``export_model``: any format into a folder, an earlier export replaced only once the new one is
complete; the Model lab's export folders, their sizes and zips.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from skuaudit.export.base import EXPORT_INFO_FILE, FORMATS, ExportError
from skuaudit.export.savedmodel import export_savedmodel
from skuaudit.export.tfjs import export_tfjs
from skuaudit.export.tflite import export_tflite


def export_model(
    model_dir: str | Path,
    fmt: str,
    out_dir: str | Path,
    *,
    int8: bool = False,
    replace: bool = False,
) -> Path:
    """Export ``model_dir`` to ``fmt`` (one of ``FORMATS``) in ``out_dir``; returns ``out_dir``.

    Args:
        model_dir: the model folder.
        fmt: ``tfjs``, ``tflite`` or ``savedmodel``.
        out_dir: a new or empty folder, or with ``replace`` an earlier export to overwrite.
        int8: tflite only: int8 post-training quantisation.
        replace: write into a new sibling folder, then swap it in for ``out_dir``; a failed export
            leaves the earlier one as it was.

    Raises:
        ValueError: unknown format, or ``int8`` with a format other than tflite.
        ModelLoadError: the model folder is incomplete or corrupt.
        ExportError: the export itself failed, or ``out_dir`` is not empty (without ``replace``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    if int8 and fmt != "tflite":
        raise ValueError("--int8 applies to the tflite format only")
    if not replace:
        return _export(model_dir, fmt, Path(out_dir), int8)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        _export(model_dir, fmt, staging, int8)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, out_dir)
    return out_dir


def _export(model_dir: str | Path, fmt: str, out_dir: Path, int8: bool) -> Path:
    if fmt == "tfjs":
        return export_tfjs(model_dir, out_dir)
    if fmt == "tflite":
        return export_tflite(model_dir, out_dir, int8=int8)
    return export_savedmodel(model_dir, out_dir)


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Put the finished export ``staging`` where ``out_dir`` is, then delete the earlier export.

    Two renames on one file system: if the second fails the earlier export is moved back.
    """
    previous = None
    try:
        if out_dir.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            out_dir.replace(previous)
        staging.replace(out_dir)
    except OSError as exc:
        if previous is not None and not out_dir.exists():
            previous.replace(out_dir)
            previous = None
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(
            f"{out_dir}: the new export could not replace the earlier one: {exc}"
        ) from exc
    finally:
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)


def lab_export_dir(version_name: str, fmt: str, *, int8: bool = False) -> Path:
    """Where the Model lab keeps its export of a model version: ``<models>/exports/NAME-FMT[-int8]``.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` in the name become ``-``.
    """
    import re

    from skuaudit.config import get_settings

    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", version_name).strip("-.") or "model"
    return get_settings().models_dir / "exports" / f"{stem}-{fmt}{'-int8' if int8 else ''}"


def folder_size_bytes(folder: str | Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def human_size(size_bytes: int) -> str:
    """``"4.2 MB"``-style size (powers of 1024).

    Example:
        >>> human_size(5_300_000), human_size(900)
        ('5.1 MB', '900 bytes')
    """
    if size_bytes < 1024:
        return f"{size_bytes} bytes"
    size = float(size_bytes)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def zip_folder(folder: str | Path) -> bytes:
    """A zip of ``folder``: every file, under a top folder of the same name (what a person
    unzips is one folder, not loose files)."""
    import io
    import zipfile

    folder = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()


def lab_exports(version_name: str) -> list[dict]:
    """The Model lab's exports of a model version that exist: ``format`` (e.g. ``"tflite
    int8"``), ``path``, ``size_bytes``; in ``FORMATS`` order."""
    found = []
    for fmt in FORMATS:
        for int8 in (False, True) if fmt == "tflite" else (False,):
            path = lab_export_dir(version_name, fmt, int8=int8)
            if (path / EXPORT_INFO_FILE).is_file():
                found.append(
                    {
                        "format": f"{fmt}{' int8' if int8 else ''}",
                        "path": path,
                        "size_bytes": folder_size_bytes(path),
                    }
                )
    return found

"""Uploaded data sets of the Model lab: extracted safely, checked, and read back the same way."""

from __future__ import annotations

import json
from pathlib import Path

from skuaudit.config import get_settings
from skuaudit.storage.models import utcnow


def datasets_dir() -> Path:
    """Where uploaded datasets are extracted (``<media>/datasets``)."""
    return get_settings().media_dir / "datasets"


DATASET_INFO_SUFFIX = ".skuaudit.json"  # beside an uploaded data set's folder: format, class map


def add_dataset_archive(
    source, name: str, dataset_format: str = "auto", class_map: dict[str, str] | None = None
):
    """Extract an uploaded zip safely into a new dataset folder and check it reads.

    Args:
        source: path or binary file object of the zip.
        name: the upload's file name; the folder is ``<name stem>-<timestamp>``.
        dataset_format: ``auto``, ``yolo``, ``voc``, ``coco`` or ``sku110k``.
        class_map: dataset class id or name -> detector class (``{"0": "gap"}``); every class
            must end up a detector class (or ``ignore``). Kept beside the folder
            (``DATASET_INFO_SUFFIX``) with the format, so training and evaluation read the data
            set the same way (``read_uploaded_dataset``).

    Returns:
        ``(folder, Dataset)``; bad images are skipped and listed in ``Dataset.problems``.

    Raises:
        UnsafeArchiveError: the archive is refused (zip slip, link, bomb, too many files).
        DatasetError: the extracted files are not a dataset of that format, or its classes are
            not detector classes; the folder is removed.
    """
    import re
    import shutil

    from skuaudit.datasets.base import DatasetError
    from skuaudit.datasets.readers import detect_format, read_dataset
    from skuaudit.datasets.splits import to_detector_classes
    from skuaudit.safezip import safe_extract

    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem).strip("-")[:60] or "dataset"
    folder = datasets_dir() / f"{stem}-{utcnow().strftime('%Y%m%d-%H%M%S')}"
    safe_extract(source, folder)
    root = _dataset_root(folder)
    try:
        dataset = read_dataset(root, dataset_format, skip_bad=True, class_map=class_map)
        unknown = [p for p in dataset.problems if "unknown class" in p]
        if unknown:  # skipping them would train on the photos without those boxes
            raise DatasetError(f"{len(unknown)} file(s) name undeclared classes: {unknown[0]}")
        if not dataset.images:
            raise DatasetError(f"{name}: no usable images in the archive")
        to_detector_classes(dataset)  # refused now, not when a training job starts
        labelled = {c for im in dataset.images for c in im.class_names}
        unused = sorted({v for v in (class_map or {}).values()} - labelled)
        if unused:  # such a class would count as labelled everywhere, with no box of it
            entries = ", ".join(f"{k}={v}" for k, v in class_map.items() if v in unused)
            raise DatasetError(
                f"{name}: the class map names {', '.join(unused)}, but no box in the data set "
                f"is of that class; leave out {entries}"
            )
        fmt = detect_format(root) if dataset_format == "auto" else dataset_format
    except (DatasetError, ValueError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise DatasetError(as_uploaded(str(exc), folder, name)) from exc
    dataset.problems[:] = [as_uploaded(p, folder, name) for p in dataset.problems]
    info = {"format": fmt, "class_map": class_map or {}}
    folder.with_name(folder.name + DATASET_INFO_SUFFIX).write_text(json.dumps(info))
    return root, dataset


def as_uploaded(message: str, folder: Path, name: str) -> str:
    """``message`` with the server folder an upload was extracted to replaced by the name the
    user gave it, so a page names ``shelves.zip/labels/a.txt``, not where the file lies.

    Example:
        >>> as_uploaded("/srv/media/datasets/x-1/labels/a.txt line 3: bad", Path("/srv/media/datasets/x-1"), "x.zip")
        'x.zip/labels/a.txt line 3: bad'
    """
    return message.replace(str(folder), name)


def _dataset_root(folder: Path) -> Path:
    """The folder holding the data set: the one folder inside, for a zip of the folder itself."""
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


def read_uploaded_dataset(folder: str | Path, dataset_format: str = "auto"):
    """Read a data set the Model lab extracted, with the format and class map it was added with.

    ``dataset_format`` other than ``auto`` wins over the recorded one. A folder without a record
    (added before records were kept, or by hand) is read with ``dataset_format`` and no map.
    """
    from skuaudit.datasets.readers import FORMATS, read_dataset

    folder = Path(folder)
    info_path = folder.with_name(folder.name + DATASET_INFO_SUFFIX)
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict):
        info = {}
    class_map = info.get("class_map") if isinstance(info.get("class_map"), dict) else None
    if dataset_format == "auto" and info.get("format") in FORMATS:
        dataset_format = info["format"]
    root = _dataset_root(folder) if folder.is_dir() else folder
    return read_dataset(root, dataset_format, skip_bad=True, class_map=class_map or None)


def list_datasets() -> list[Path]:
    """Extracted dataset folders, newest first."""
    base = datasets_dir()
    if not base.is_dir():
        return []
    folders = [p for p in base.iterdir() if p.is_dir()]
    return sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)

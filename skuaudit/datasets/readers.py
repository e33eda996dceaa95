"""Dataset readers: SKU-110K CSV, Pascal VOC XML, YOLO txt and COCO JSON into one ``Dataset``.

Every reader checks what it reads and raises ``DatasetError`` with the file and the line or field
at fault: missing or unreadable images, truncated JPEGs, boxes outside the image or with
``x2 < x1``, unknown classes, text that is not UTF-8, malformed XML/JSON/YAML, an empty dataset.
With ``skip_bad=True`` a bad image (or its bad annotation) is left out and the message is kept in
``Dataset.problems`` instead; file-wide faults (malformed JSON, no images at all) still raise.

``class_map`` maps the dataset's class ids or names to the model's classes, e.g. ``{"0": "gap"}``
for the shelf-gaps YOLO set whose class 0 is ``empty``. With a map, every class found must be in
it. SKU-110K's single class ``object`` is read as ``product`` unless mapped otherwise.

Layouts understood:

- ``yolo``: ``DIR/images/**.jpg`` with ``DIR/labels/**.txt`` (or labels beside the images), class
  names from ``DIR/data.yaml`` (``names``) or ``DIR/classes.txt``; an image without a label file
  has no boxes.
- ``voc``: ``DIR/Annotations/*.xml`` with ``DIR/JPEGImages/`` (or XML files beside the images).
- ``coco``: a JSON file, or ``DIR`` holding one (``annotations.coco.json`` preferred); image
  ``file_name`` relative to the JSON's folder or its ``images/`` subfolder.
- ``sku110k``: a CSV file or ``DIR`` holding one; images in ``images/`` beside the CSV, beside the
  CSV itself, or in ``../images`` (SKU-110K's own layout).

Example:
    >>> data = read_dataset("shelf-gaps", "yolo", class_map={"0": "gap"})  # doctest: +SKIP
    >>> data.classes  # doctest: +SKIP
    ['gap']
"""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from skuaudit.datasets.base import Dataset, DatasetError, LabeledImage
from skuaudit.detections import CLASS_NAMES, IGNORE_CLASS

FORMATS: tuple[str, ...] = ("yolo", "voc", "coco", "sku110k")
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# boxes may stick out of the image by this many pixels (rounding in annotation tools); clipped
BOX_TOLERANCE_PX = 1.0


# --------------------------------------------------------------------------- shared checks


def parse_class_map(text: str | None) -> dict[str, str] | None:
    """Parse ``"0=gap,empty=gap"`` (the ``--class-map`` option) into ``{"0": "gap", ...}``.

    Example:
        >>> parse_class_map("0=gap, 1=product")
        {'0': 'gap', '1': 'product'}
    """
    if text is None or not text.strip():
        return None
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"class map entry {part.strip()!r} is not SOURCE=CLASS (e.g. 0=gap)")
        mapping[key.strip()] = value.strip()
    return mapping


def read_text(path: Path) -> str:
    """A text file as ``str``: UTF-8 (with or without BOM) or UTF-16 with BOM, else DatasetError."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save the file as UTF-8"
        ) from exc


def image_size(path: Path, referenced_by: str, verify: bool = True) -> tuple[int, int]:
    """``(width, height)`` of an image file, checking it exists, is an image and is complete.

    Args:
        path: the image file.
        referenced_by: where the image was named, for the error message.
        verify: also check that a JPEG/PNG is not truncated (reads the file's last bytes).
    """
    if not path.is_file():
        raise DatasetError(f"{referenced_by}: image {path} not found")
    try:
        with Image.open(path) as im:
            width, height = im.size
            kind = im.format
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path}: not an image file (named in {referenced_by})") from exc
    if verify and kind in ("JPEG", "PNG"):
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 64))
            tail = fh.read().rstrip(b"\x00\r\n ")
        complete = tail.endswith(b"\xff\xd9") if kind == "JPEG" else b"IEND" in tail[-12:]
        if not complete:
            raise DatasetError(f"{path}: truncated {kind} file (named in {referenced_by})")
    return width, height


def check_box_xyxy(
    box: Iterable[float], width: int, height: int, where: str
) -> tuple[float, float, float, float]:
    """A validated pixel box, clipped when it sticks out by at most ``BOX_TOLERANCE_PX``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise DatasetError(f"{where}: box has a non-finite coordinate")
    if x2 < x1:
        raise DatasetError(f"{where}: x2 < x1 ({x2:g} < {x1:g})")
    if y2 < y1:
        raise DatasetError(f"{where}: y2 < y1 ({y2:g} < {y1:g})")
    if x2 == x1 or y2 == y1:
        raise DatasetError(f"{where}: box has zero width or height")
    tol = BOX_TOLERANCE_PX
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        raise DatasetError(
            f"{where}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is outside the {width}x{height} image"
        )
    return max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))


class _ClassResolver:
    """Turns a dataset's class ids/names into output class names, honouring ``class_map``."""

    def __init__(
        self,
        source_names: dict[str, str] | None,
        class_map: dict[str, str] | None,
        aliases: dict[str, str] | None = None,
    ) -> None:
        self.source_names = source_names
        self.class_map = {str(k): v for k, v in class_map.items()} if class_map else None
        self.aliases = aliases or {}
        self.seen: list[str] = []

    def resolve(self, raw: str, where: str) -> str:
        raw = str(raw).strip()
        name = self.source_names.get(raw) if self.source_names is not None else raw
        if self.class_map is not None:
            for key in (raw, name):
                if key is not None and key in self.class_map:
                    return self._seen(self.class_map[key])
            shown = raw if name in (None, raw) else f"{raw} ({name})"
            raise DatasetError(
                f"{where}: unknown class {shown}; the class map maps only {sorted(self.class_map)}"
            )
        if name is None:
            known = sorted(self.source_names or {})
            raise DatasetError(
                f"{where}: unknown class {raw}; known ids {known} (add it to data.yaml / "
                f"classes.txt, or give a class map such as {raw}=gap or {raw}=product: "
                "--class-map on the command line, Class map in the Model lab)"
            )
        return self._seen(self.aliases.get(name, name))

    def _seen(self, name: str) -> str:
        if name not in self.seen:
            self.seen.append(name)
        return name

    def classes(self) -> list[str]:
        """Output classes: the model's own first (in model order), then any others."""
        if self.class_map is not None:
            names = list(dict.fromkeys(self.class_map.values()))
        elif self.source_names is not None:
            names = list(dict.fromkeys(self.aliases.get(n, n) for n in self.source_names.values()))
        else:
            names = list(self.seen)
        return [c for c in CLASS_NAMES if c in names] + [c for c in names if c not in CLASS_NAMES]


class _Problems:
    """Raise at once, or record and carry on (``skip_bad``)."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.messages: list[str] = []

    def report(self, exc: DatasetError) -> None:
        if not self.skip_bad:
            raise exc
        self.messages.append(str(exc))


def _finish(
    source: Path,
    fmt: str,
    images: list[LabeledImage],
    resolver: _ClassResolver,
    problems: _Problems,
) -> Dataset:
    if not images:
        detail = (
            f"; {len(problems.messages)} skipped, first: {problems.messages[0]}"
            if (problems.messages)
            else ""
        )
        raise DatasetError(f"{source}: no usable images found ({fmt} format){detail}")
    classes = resolver.classes()
    for item in images:
        item.annotated_classes = tuple(classes)
    return Dataset(classes, images, problems.messages, {"format": fmt, "source": str(source)})


def _find_image(name: str, candidates: Iterable[Path]) -> Path:
    """The first existing ``folder / name``, else the first candidate (for the error message)."""
    paths = [folder / name for folder in candidates]
    return next((p for p in paths if p.is_file()), paths[0])


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: {text!r} is not a number") from exc


# --------------------------------------------------------------------------- YOLO


def _yolo_names(root: Path) -> dict[str, str]:
    """Class names by id; empty when the folder has neither data.yaml nor classes.txt."""
    yaml_path = next((p for p in (root / "data.yaml", root / "dataset.yaml") if p.is_file()), None)
    if yaml_path is not None:
        try:
            doc = yaml.safe_load(read_text(yaml_path))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise DatasetError(f"{yaml_path}{line}: malformed YAML") from exc
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, list):
            return {str(i): str(n) for i, n in enumerate(names)}
        if isinstance(names, dict):
            return {str(k): str(v) for k, v in names.items()}
        raise DatasetError(f"{yaml_path}: field 'names' missing or not a list/mapping")
    for path in (root / "classes.txt", root / "labels" / "classes.txt"):
        if path.is_file():
            lines = [ln.strip() for ln in read_text(path).splitlines()]
            return {str(i): n for i, n in enumerate(ln for ln in lines if ln)}
    return {}


def _yolo_label_path(image: Path, root: Path, labels: str = "labels") -> Path:
    rel = image.relative_to(root)
    parts = list(rel.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        parts[i] = labels
        return (root / Path(*parts)).with_suffix(".txt")
    if labels != "labels":
        return (root / labels / rel).with_suffix(".txt")
    return image.with_suffix(".txt")


@dataclass(frozen=True)
class ScoreBands:
    """How the optional sixth column of a YOLO line (a labelling model's score) is read.

    A box scoring at least ``min_score`` keeps its class; one scoring from ``ignore_score`` up
    to ``min_score`` becomes an ``IGNORE_CLASS`` box (a region trainers learn neither as an
    object nor as background, and evaluation neither rewards nor penalises); a lower one is
    dropped. Lines without a score (human labels) always keep their class.

    Example:
        >>> ScoreBands(0.4, 0.1).name_for("product", 0.2)
        'ignore'
    """

    min_score: float
    ignore_score: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min score must be in [0, 1], got {self.min_score}")
        if self.ignore_score is not None and not 0.0 <= self.ignore_score <= self.min_score:
            raise ValueError(
                f"ignore score must be in [0, min score {self.min_score}], got {self.ignore_score}"
            )

    def name_for(self, name: str, score: float) -> str | None:
        """The class a box of ``name`` scoring ``score`` is read as; ``None``: dropped."""
        if score >= self.min_score:
            return name
        if self.ignore_score is not None and score >= self.ignore_score:
            return IGNORE_CLASS
        return None


def _yolo_image(
    image: Path,
    label: Path,
    root: Path,
    resolver: _ClassResolver,
    verify: bool,
    bands: ScoreBands | None = None,
) -> LabeledImage:
    width, height = image_size(image, str(label if label.is_file() else image), verify)
    boxes, names = [], []
    text = read_text(label) if label.is_file() else ""
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label.relative_to(root)} line {number}"
        if len(fields) not in (5, 6):
            raise DatasetError(
                f"{where}: expected 5 fields 'class cx cy w h' (or 6 with a score), "
                f"got {len(fields)}"
            )
        cx, cy, bw, bh = (_number(f, where) for f in fields[1:5])
        name = resolver.resolve(fields[0], where)
        if len(fields) == 6:
            score = _number(fields[5], where)
            if not 0.0 <= score <= 1.0:
                raise DatasetError(f"{where}: score {score:g} is not in [0, 1]")
            if bands is not None:
                name = bands.name_for(name, score)
                if name is None:
                    continue
        box = (
            (cx - bw / 2) * width,
            (cy - bh / 2) * height,
            (cx + bw / 2) * width,
            (cy + bh / 2) * height,
        )
        boxes.append(check_box_xyxy(box, width, height, where))
        names.append(name)
    return LabeledImage(image, width, height, np.array(boxes, np.float32).reshape(-1, 4), names)


def read_yolo(
    path: str | Path,
    *,
    skip_bad: bool = False,
    class_map: dict[str, str] | None = None,
    verify_images: bool = True,
    labels: str = "labels",
    score_bands: ScoreBands | None = None,
) -> Dataset:
    """Read a YOLO folder (see the module docstring for the layout).

    Args:
        labels: the label folder beside ``images/`` (e.g. ``teacher`` for a labelling model's
            boxes on the same photos).
        score_bands: how a sixth column (a score) is read; ``None`` keeps every box.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (YOLO datasets are folders)")
    if labels != "labels" and not (root / labels).is_dir():
        raise DatasetError(f"{root}: no label folder {labels!r}")
    resolver = _ClassResolver(_yolo_names(root), class_map)
    image_root = root / "images" if (root / "images").is_dir() else root
    image_files = sorted(
        p
        for p in image_root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not {"labels", labels} & set(p.relative_to(root).parts)
    )
    problems = _Problems(skip_bad)
    images: list[LabeledImage] = []
    labels_used: set[Path] = set()
    for image in image_files:
        label = _yolo_label_path(image, root, labels)
        labels_used.add(label)
        try:
            images.append(_yolo_image(image, label, root, resolver, verify_images, score_bands))
        except DatasetError as exc:
            problems.report(exc)
    label_root = root / labels if (root / labels).is_dir() else root
    for label in sorted(label_root.rglob("*.txt")):
        if label in labels_used or label.name == "classes.txt":
            continue
        problems.report(
            DatasetError(
                f"{label.relative_to(root)}: no image for this label file "
                f"(looked for {label.stem}.jpg/.png under {image_root.relative_to(root.parent)})"
            )
        )
    dataset = _finish(root, "yolo", images, resolver, problems)
    if any(IGNORE_CLASS in im.class_names for im in images) and IGNORE_CLASS not in dataset.classes:
        dataset.classes.append(IGNORE_CLASS)
    return dataset


# --------------------------------------------------------------------------- Pascal VOC


def _xml_field(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _voc_image(xml_path: Path, root: Path, resolver: _ClassResolver, verify: bool) -> LabeledImage:
    rel = xml_path.relative_to(root)
    try:
        doc = ET.fromstring(xml_path.read_bytes())
    except ET.ParseError as exc:
        line, col = exc.position
        raise DatasetError(f"{rel} line {line}, column {col}: malformed XML ({exc.msg})") from exc
    filename = _xml_field(doc, "filename", str(rel))
    image = _find_image(
        filename,
        (
            xml_path.parent.parent / "JPEGImages",
            xml_path.parent,
            root / "JPEGImages",
            root / "images",
        ),
    )
    width, height = image_size(image, f"{rel} <filename>", verify)
    size = doc.find("size")
    if size is not None and size.find("width") is not None:
        declared = (
            int(_number(_xml_field(size, "width", f"{rel} <size>"), f"{rel} <size>")),
            int(_number(_xml_field(size, "height", f"{rel} <size>"), f"{rel} <size>")),
        )
        if declared != (width, height):
            raise DatasetError(
                f"{rel} <size>: says {declared[0]}x{declared[1]} but {image.name} is "
                f"{width}x{height}"
            )
    boxes, names = [], []
    for i, obj in enumerate(doc.findall("object"), start=1):
        where = f"{rel} <object> {i}"
        name = _xml_field(obj, "name", where)
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DatasetError(f"{where}: missing <bndbox>")
        coords = [
            _number(_xml_field(bndbox, t, where), f"{where} <{t}>")
            for t in ("xmin", "ymin", "xmax", "ymax")
        ]
        names.append(resolver.resolve(name, where))
        boxes.append(check_box_xyxy(coords, width, height, where))
    return LabeledImage(image, width, height, np.array(boxes, np.float32).reshape(-1, 4), names)


def read_voc(
    path: str | Path,
    *,
    skip_bad: bool = False,
    class_map: dict[str, str] | None = None,
    verify_images: bool = True,
) -> Dataset:
    """Read Pascal VOC XML files (``DIR/Annotations/*.xml`` or any ``*.xml`` under ``DIR``)."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (VOC datasets are folders of XML files)")
    xml_root = root / "Annotations" if (root / "Annotations").is_dir() else root
    resolver = _ClassResolver(None, class_map)
    problems = _Problems(skip_bad)
    images = []
    for xml_path in sorted(xml_root.rglob("*.xml")):
        try:
            images.append(_voc_image(xml_path, root, resolver, verify_images))
        except DatasetError as exc:
            problems.report(exc)
    return _finish(root, "voc", images, resolver, problems)


# --------------------------------------------------------------------------- COCO


def _find_one(root: Path, suffix: str, preferred: tuple[str, ...]) -> Path:
    if root.is_file():
        return root
    if not root.is_dir():
        raise DatasetError(f"{root}: no such file or folder")
    for name in preferred:
        if (root / name).is_file():
            return root / name
    found = sorted(root.glob(f"*{suffix}")) or sorted(root.glob(f"annotations/*{suffix}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DatasetError(f"{root}: no {suffix} annotation file found")
    names = ", ".join(p.name for p in found)
    raise DatasetError(f"{root}: several {suffix} files ({names}); pass the one to read")


def load_json(path: Path) -> Any:
    """Parse a JSON file, naming the line and column of a syntax error."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path} line {exc.lineno}, column {exc.colno}: malformed JSON ({exc.msg})"
        ) from exc


def _coco_list(doc: Any, key: str, path: Path) -> list:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, list):
        raise DatasetError(f"{path}: field '{key}' missing or not a list")
    return value


def read_coco(
    path: str | Path,
    *,
    skip_bad: bool = False,
    class_map: dict[str, str] | None = None,
    verify_images: bool = True,
) -> Dataset:
    """Read a COCO detection JSON; ``attributes.brand`` / ``attributes.shelf_row`` become extras."""
    json_path = _find_one(Path(path), ".json", ("annotations.coco.json", "_annotations.coco.json"))
    doc = load_json(json_path)
    categories = _coco_list(doc, "categories", json_path)
    source_names = {}
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise DatasetError(f"{json_path}: categories[{i}] needs 'id' and 'name'")
        source_names[str(cat["id"])] = str(cat["name"])
    resolver = _ClassResolver(source_names, class_map)
    problems = _Problems(skip_bad)
    entries: dict[Any, dict] = {}
    for i, im in enumerate(_coco_list(doc, "images", json_path)):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            problems.report(
                DatasetError(f"{json_path.name}: images[{i}] needs 'id' and 'file_name'")
            )
            continue
        entries[im["id"]] = {"info": im, "index": i, "anns": [], "error": None}
    has_attributes = False
    for i, ann in enumerate(_coco_list(doc, "annotations", json_path)):
        where = f"{json_path.name}: annotations[{i}]"
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if image_id not in entries:
            problems.report(DatasetError(f"{where}.image_id {image_id!r}: no such image"))
            continue
        entries[image_id]["anns"].append((i, ann))
        has_attributes = has_attributes or "attributes" in ann
    images = []
    for entry in entries.values():
        try:
            images.append(_coco_image(entry, json_path, resolver, verify_images, has_attributes))
        except DatasetError as exc:
            problems.report(exc)
    return _finish(json_path, "coco", images, resolver, problems)


def _coco_image(
    entry: dict, json_path: Path, resolver: _ClassResolver, verify: bool, with_extras: bool
) -> LabeledImage:
    info = entry["info"]
    name = str(info["file_name"])
    image = _find_image(name, (json_path.parent, json_path.parent / "images"))
    width, height = image_size(
        image, f"{json_path.name}: images[{entry['index']}].file_name", verify
    )
    if (
        "width" in info
        and "height" in info
        and (int(info["width"]), int(info["height"])) != (width, height)
    ):
        raise DatasetError(
            f"{json_path.name}: images[{entry['index']}] says {info['width']}x{info['height']} "
            f"but {image.name} is {width}x{height}"
        )
    boxes, names, brands, rows = [], [], [], []
    for i, ann in entry["anns"]:
        where = f"{json_path.name}: annotations[{i}]"
        if ann.get("iscrowd", 0):
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DatasetError(f"{where}.bbox: expected [x, y, width, height]")
        x, y, w, h = (_number(v, f"{where}.bbox") for v in bbox)
        names.append(resolver.resolve(str(ann.get("category_id")), f"{where}.category_id"))
        boxes.append(check_box_xyxy((x, y, x + w, y + h), width, height, f"{where}.bbox"))
        attributes = ann.get("attributes") or {}
        brands.append(str(attributes.get("brand", "")))
        rows.append(int(attributes.get("shelf_row", -1)))
    extras = (
        {"brand": np.array(brands, dtype=object), "shelf_row": np.array(rows, np.int32)}
        if with_extras
        else {}
    )
    return LabeledImage(
        image, width, height, np.array(boxes, np.float32).reshape(-1, 4), names, extras=extras
    )


# --------------------------------------------------------------------------- SKU-110K CSV

_SKU_COLUMNS = ("image_name", "x1", "y1", "x2", "y2", "class", "image_width", "image_height")


def read_sku110k(
    path: str | Path,
    *,
    skip_bad: bool = False,
    class_map: dict[str, str] | None = None,
    verify_images: bool = True,
) -> Dataset:
    """Read a SKU-110K CSV (``image_name,x1,y1,x2,y2,class,image_width,image_height``).

    The original files have no header; a header row naming these columns is accepted.
    """
    csv_path = _find_one(Path(path), ".csv", ("annotations.csv",))
    folders = (csv_path.parent / "images", csv_path.parent, csv_path.parent.parent / "images")
    resolver = _ClassResolver(None, class_map, aliases={"object": "product"})
    problems = _Problems(skip_bad)
    rows_by_image: dict[str, list[tuple[int, list[str]]]] = {}
    bad_images: set[str] = set()
    reader = csv.reader(io.StringIO(read_text(csv_path)))
    for number, fields in enumerate(reader, start=1):
        if not fields or all(not f.strip() for f in fields):
            continue
        if number == 1 and fields[1].strip().lower() == "x1":
            continue
        where = f"{csv_path.name} line {number}"
        if len(fields) != len(_SKU_COLUMNS):
            problems.report(
                DatasetError(
                    f"{where}: expected {len(_SKU_COLUMNS)} fields ({','.join(_SKU_COLUMNS)}), "
                    f"got {len(fields)}"
                )
            )
            bad_images.add(fields[0].strip())
            continue
        rows_by_image.setdefault(fields[0].strip(), []).append((number, fields))
    images = []
    for name, rows in rows_by_image.items():
        if name in bad_images:
            continue
        try:
            images.append(_sku_image(name, rows, csv_path, folders, resolver, verify_images))
        except DatasetError as exc:
            problems.report(exc)
    return _finish(csv_path, "sku110k", images, resolver, problems)


def _sku_image(
    name: str,
    rows: list[tuple[int, list[str]]],
    csv_path: Path,
    folders: tuple[Path, ...],
    resolver: _ClassResolver,
    verify: bool,
) -> LabeledImage:
    first = rows[0][0]
    image = _find_image(name, folders)
    width, height = image_size(image, f"{csv_path.name} line {first}", verify)
    boxes, names = [], []
    for number, fields in rows:
        where = f"{csv_path.name} line {number}"
        x1, y1, x2, y2 = (
            _number(f, f"{where} field {c}")
            for f, c in zip(fields[1:5], _SKU_COLUMNS[1:5], strict=True)
        )
        declared = (
            int(_number(fields[6], f"{where} field image_width")),
            int(_number(fields[7], f"{where} field image_height")),
        )
        if declared != (width, height):
            raise DatasetError(
                f"{where}: image_width/image_height say {declared[0]}x{declared[1]} but {name} is "
                f"{width}x{height}"
            )
        names.append(resolver.resolve(fields[5], f"{where} field class"))
        boxes.append(check_box_xyxy((x1, y1, x2, y2), width, height, where))
    return LabeledImage(image, width, height, np.array(boxes, np.float32).reshape(-1, 4), names)


# --------------------------------------------------------------------------- dispatch

_READERS = {"yolo": read_yolo, "voc": read_voc, "coco": read_coco, "sku110k": read_sku110k}


def detect_format(path: str | Path) -> str:
    """Guess a dataset's format from its files (``.csv`` SKU-110K, ``.json`` COCO, ...)."""
    p = Path(path)
    if p.is_file():
        by_suffix = {".csv": "sku110k", ".json": "coco"}
        if p.suffix.lower() in by_suffix:
            return by_suffix[p.suffix.lower()]
        raise DatasetError(f"{p}: cannot tell the format of a {p.suffix or 'suffix-less'} file")
    if not p.is_dir():
        raise DatasetError(f"{p}: no such file or folder")
    if (p / "data.yaml").is_file() or (p / "classes.txt").is_file() or (p / "labels").is_dir():
        return "yolo"
    if (p / "Annotations").is_dir() or any(p.glob("*.xml")):
        return "voc"
    if any(p.glob("*.json")):
        return "coco"
    if any(p.glob("*.csv")):
        return "sku110k"
    raise DatasetError(f"{p}: cannot tell the dataset format; pass one of {list(FORMATS)}")


def read_dataset(
    path: str | Path,
    format: str = "auto",
    *,
    skip_bad: bool = False,
    class_map: dict[str, str] | None = None,
    verify_images: bool = True,
    labels: str = "labels",
    score_bands: ScoreBands | None = None,
) -> Dataset:
    """Read a dataset in any supported format into the common ``Dataset`` form.

    Args:
        path: the dataset folder or annotation file.
        format: ``yolo``, ``voc``, ``coco``, ``sku110k`` or ``auto``.
        skip_bad: skip bad images and list them in ``Dataset.problems`` instead of raising.
        class_map: dataset class id or name -> model class name.
        verify_images: check that JPEG/PNG files are complete (image headers are always read).
        labels: YOLO only: the label folder beside ``images/`` (default ``labels``).
        score_bands: YOLO only: how a sixth column (a labelling model's score) is read.

    Raises:
        DatasetError: naming the file and line or field at fault.
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in _READERS:
        raise ValueError(f"unknown dataset format {format!r}; use one of {list(FORMATS)} or auto")
    options = {"skip_bad": skip_bad, "class_map": class_map, "verify_images": verify_images}
    if fmt == "yolo":
        options |= {"labels": labels, "score_bands": score_bands}
    elif labels != "labels" or score_bands is not None:
        raise ValueError("a label folder and score bands apply to YOLO data sets only")
    return _READERS[fmt](path, **options)


def merge_labels(datasets: Sequence[Dataset]) -> Dataset:
    """One data set from several label sets of the same photos (e.g. human gap boxes and a
    labelling model's product boxes): images are joined by file, their boxes put together and
    each image annotates the classes of every set that holds it. Images only some sets hold
    keep what those sets say.

    Example:
        >>> a = Dataset(["gap"], [LabeledImage("p.jpg", 9, 9, [[0, 0, 2, 2]], ["gap"], ("gap",))])
        >>> b = Dataset(["product"], [LabeledImage("p.jpg", 9, 9, [[3, 3, 5, 5]], ["product"],
        ...                                        ("product",))])
        >>> merged = merge_labels([a, b])
        >>> merged.classes, merged.images[0].class_names, merged.images[0].annotated_classes
        (['product', 'gap'], ['gap', 'product'], ('product', 'gap'))
    """
    if not datasets:
        raise DatasetError("merge_labels: no data sets to merge")
    by_path: dict[Path, LabeledImage] = {}
    for ds in datasets:
        for im in ds.images:
            annotated = im.annotated_classes if im.annotated_classes is not None else ds.classes
            key = im.path.resolve()
            seen = by_path.get(key)
            if seen is None:
                by_path[key] = LabeledImage(
                    im.path,
                    im.width,
                    im.height,
                    im.boxes_xyxy,
                    im.class_names,
                    tuple(annotated),
                    dict(im.extras),
                )
                continue
            if (seen.width, seen.height) != (im.width, im.height):
                raise DatasetError(
                    f"{im.path}: {im.width}x{im.height} in one label set, "
                    f"{seen.width}x{seen.height} in another"
                )
            by_path[key] = LabeledImage(
                seen.path,
                seen.width,
                seen.height,
                np.concatenate([seen.boxes_xyxy, im.boxes_xyxy]),
                seen.class_names + im.class_names,
                tuple(dict.fromkeys([*seen.annotated_classes, *annotated])),
            )
    names = list(dict.fromkeys(c for ds in datasets for c in ds.classes))
    classes = [c for c in CLASS_NAMES if c in names] + [c for c in names if c not in CLASS_NAMES]
    images = []
    for im in by_path.values():
        ordered = tuple(c for c in classes if c in im.annotated_classes and c != IGNORE_CLASS)
        images.append(
            LabeledImage(im.path, im.width, im.height, im.boxes_xyxy, im.class_names, ordered)
        )
    return Dataset(
        classes,
        images,
        [p for ds in datasets for p in ds.problems],
        {"format": "merged", "source": [ds.meta.get("source") for ds in datasets]},
    )

"""Dataset readers: each format on tiny fixtures, and every malformed input named precisely."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from skuaudit.datasets.base import DatasetError
from skuaudit.datasets.readers import (
    ScoreBands,
    check_box_xyxy,
    detect_format,
    merge_labels,
    parse_class_map,
    read_dataset,
)

W, H = 64, 48


def _image(path: Path, width: int = W, height: int = H) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), 128, np.uint8))
    return path


def make_yolo(
    root: Path, lines: str = "0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.1 0.1\n", names: bool = True
) -> Path:
    _image(root / "images" / "a.jpg")
    _image(root / "images" / "b.jpg")
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text(lines)
    if names:
        (root / "data.yaml").write_text("names:\n  0: product\n  1: gap\n")
    return root


def make_voc(root: Path, xmax: str = "40", name: str = "product", width: int = W) -> Path:
    _image(root / "JPEGImages" / "a.jpg")
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "a.xml").write_text(
        f"<annotation><filename>a.jpg</filename><size><width>{width}</width><height>{H}</height>"
        f"</size><object><name>{name}</name><bndbox><xmin>10</xmin><ymin>5</ymin>"
        f"<xmax>{xmax}</xmax><ymax>30</ymax></bndbox></object></annotation>"
    )
    return root


def make_coco(root: Path, bbox: list | None = None, category_id: int = 1) -> Path:
    _image(root / "images" / "a.jpg")
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": category_id,
                "bbox": bbox or [10, 5, 30, 25],
                "iscrowd": 0,
            }
        ],
        "categories": [{"id": 1, "name": "product"}, {"id": 2, "name": "gap"}],
    }
    (root / "annotations.coco.json").write_text(json.dumps(doc))
    return root


def make_sku(root: Path, rows: str | None = None, header: bool = False) -> Path:
    _image(root / "images" / "a.jpg")
    _image(root / "images" / "b.jpg")
    text = (
        rows
        if rows is not None
        else (
            f"a.jpg,10,5,40,30,object,{W},{H}\na.jpg,1,1,9,9,object,{W},{H}\n"
            f"b.jpg,0,0,64,48,object,{W},{H}\n"
        )
    )
    if header:
        text = "image_name,x1,y1,x2,y2,class,image_width,image_height\n" + text
    (root / "annotations.csv").write_text(text)
    return root


# --------------------------------------------------------------------------- good input


def test_yolo_reads_boxes_in_pixels(tmp_path):
    data = read_dataset(make_yolo(tmp_path), "yolo")
    assert data.classes == ["product", "gap"] and len(data) == 2 and data.num_boxes == 2
    a = data.images[0]
    assert np.allclose(a.boxes_xyxy[0], [24, 12, 40, 36])
    assert a.class_names == ["product", "gap"]
    assert data.images[1].boxes_xyxy.shape == (0, 4)  # no label file: no boxes


def test_yolo_class_map_for_unnamed_classes(tmp_path):
    root = make_yolo(tmp_path, "0 0.5 0.5 0.25 0.5\n", names=False)
    with pytest.raises(DatasetError, match=r"labels/a.txt line 1: unknown class 0"):
        read_dataset(root, "yolo")
    data = read_dataset(root, "yolo", class_map={"0": "gap"})
    assert data.classes == ["gap"] and data.images[0].class_names == ["gap"]
    assert data.images[0].annotated_classes == ("gap",)


def test_voc_reads_boxes(tmp_path):
    data = read_dataset(make_voc(tmp_path), "voc")
    assert data.classes == ["product"]
    assert np.allclose(data.images[0].boxes_xyxy, [[10, 5, 40, 30]])


def test_coco_reads_boxes(tmp_path):
    data = read_dataset(make_coco(tmp_path), "coco")
    assert data.classes == ["product", "gap"]
    assert np.allclose(data.images[0].boxes_xyxy, [[10, 5, 40, 30]])


@pytest.mark.parametrize("header", [False, True])
def test_sku110k_reads_with_or_without_header(tmp_path, header):
    data = read_dataset(make_sku(tmp_path, header=header), "sku110k")
    assert data.classes == ["product"]  # SKU-110K's "object" is a product facing
    assert [len(im.boxes_xyxy) for im in data.images] == [2, 1]


@pytest.mark.parametrize(
    "maker, expected",
    [(make_yolo, "yolo"), (make_voc, "voc"), (make_coco, "coco"), (make_sku, "sku110k")],
)
def test_detect_format(tmp_path, maker, expected):
    assert detect_format(maker(tmp_path)) == expected
    assert len(read_dataset(tmp_path)) >= 1


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, None),
        ("", None),
        ("0=gap", {"0": "gap"}),
        ("0=gap, empty = gap", {"0": "gap", "empty": "gap"}),
    ],
)
def test_parse_class_map(text, expected):
    assert parse_class_map(text) == expected


@pytest.mark.parametrize("text", ["0", "=gap", "0="])
def test_parse_class_map_rejects(text):
    with pytest.raises(ValueError, match="SOURCE=CLASS"):
        parse_class_map(text)


@pytest.mark.parametrize(
    "box, expected",
    [((0, 0, 64, 48), (0, 0, 64, 48)), ((-0.5, 0, 64.5, 48), (0, 0, 64, 48))],
)
def test_check_box_clips_within_tolerance(box, expected):
    assert check_box_xyxy(box, W, H, "x") == expected


# --------------------------------------------------------------------------- bad input


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_CASES = [
    # (name, builder(tmp_path) -> (path, format), error regex)
    (
        "yolo x2<x1",
        lambda p: (make_yolo(p, "0 0.5 0.5 -0.2 0.5\n"), "yolo"),
        r"labels/a.txt line 1: x2 < x1",
    ),
    (
        "yolo outside",
        lambda p: (make_yolo(p, "0 0.9 0.5 0.5 0.5\n"), "yolo"),
        r"line 1: box .* outside the 64x48 image",
    ),
    (
        "yolo unknown class",
        lambda p: (make_yolo(p, "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n"), "yolo"),
        r"a.txt line 2: unknown class 7",
    ),
    ("yolo fields", lambda p: (make_yolo(p, "0 0.5 0.5\n"), "yolo"), r"line 1: expected 5 fields"),
    (
        "yolo not a number",
        lambda p: (make_yolo(p, "0 0.5 x 0.1 0.1\n"), "yolo"),
        r"line 1: 'x' is not a number",
    ),
    (
        "yolo missing image",
        lambda p: (_extra_label(make_yolo(p)), "yolo"),
        r"labels/c.txt: no image for this label file",
    ),
    (
        "yolo non-image",
        lambda p: (_fake_image(make_yolo(p), "images/a.jpg"), "yolo"),
        r"a.jpg: not an image file",
    ),
    (
        "yolo truncated",
        lambda p: (_truncated(make_yolo(p), "images/a.jpg"), "yolo"),
        r"a.jpg: truncated JPEG",
    ),
    (
        "yolo bad yaml",
        lambda p: (_write(make_yolo(p), "data.yaml", "names: [a, b\n"), "yolo"),
        r"data.yaml line \d+: malformed YAML",
    ),
    (
        "yolo latin-1",
        lambda p: (_write_bytes(make_yolo(p), "labels/a.txt", b"0 0.5 0.5 0.1 0.1 \xe9\n"), "yolo"),
        r"a.txt line 1: not UTF-8 text",
    ),
    (
        "voc x2<x1",
        lambda p: (make_voc(p, xmax="5"), "voc"),
        r"Annotations/a.xml <object> 1: x2 < x1",
    ),
    ("voc outside", lambda p: (make_voc(p, xmax="90"), "voc"), r"a.xml <object> 1: box .* outside"),
    (
        "voc size mismatch",
        lambda p: (make_voc(p, width=100), "voc"),
        r"a.xml <size>: says 100x48 but a.jpg is 64x48",
    ),
    (
        "voc malformed",
        lambda p: (_write(make_voc(p), "Annotations/a.xml", "<annotation><filename>"), "voc"),
        r"a.xml line 1, column \d+: malformed XML",
    ),
    (
        "voc missing image",
        lambda p: (_remove(make_voc(p), "JPEGImages/a.jpg"), "voc"),
        r"a.xml <filename>: image .*a.jpg not found",
    ),
    (
        "voc unknown class",
        lambda p: (make_voc(p, name="cat"), "voc:map"),
        r"<object> 1: unknown class cat",
    ),
    (
        "coco x2<x1",
        lambda p: (make_coco(p, bbox=[10, 5, -3, 20]), "coco"),
        r"annotations\[0\].bbox: x2 < x1",
    ),
    (
        "coco outside",
        lambda p: (make_coco(p, bbox=[50, 5, 30, 20]), "coco"),
        r"annotations\[0\].bbox: box .* outside",
    ),
    (
        "coco unknown class",
        lambda p: (make_coco(p, category_id=9), "coco"),
        r"annotations\[0\].category_id: unknown class 9",
    ),
    (
        "coco malformed",
        lambda p: (_write(make_coco(p), "annotations.coco.json", '{"images": [,]}'), "coco"),
        r"line 1, column \d+: malformed JSON",
    ),
    (
        "coco no list",
        lambda p: (_write(make_coco(p), "annotations.coco.json", '{"images": {}}'), "coco"),
        r"field '\w+' missing or not a list",
    ),
    (
        "coco missing image",
        lambda p: (_remove(make_coco(p), "images/a.jpg"), "coco"),
        r"images\[0\].file_name: image .* not found",
    ),
    (
        "sku x2<x1",
        lambda p: (make_sku(p, f"a.jpg,40,5,10,30,object,{W},{H}\n"), "sku110k"),
        r"annotations.csv line 1: x2 < x1",
    ),
    (
        "sku outside",
        lambda p: (make_sku(p, f"a.jpg,10,5,40,60,object,{W},{H}\n"), "sku110k"),
        r"annotations.csv line 1: box .* outside",
    ),
    (
        "sku fields",
        lambda p: (make_sku(p, "a.jpg,10,5,40\n"), "sku110k"),
        r"annotations.csv line 1: expected 8 fields",
    ),
    (
        "sku size mismatch",
        lambda p: (make_sku(p, "a.jpg,10,5,40,30,object,640,480\n"), "sku110k"),
        r"line 1: image_width/image_height say 640x480",
    ),
    (
        "sku missing image",
        lambda p: (make_sku(p, f"zz.jpg,10,5,40,30,object,{W},{H}\n"), "sku110k"),
        r"annotations.csv line 1: image .*zz.jpg not found",
    ),
    (
        "sku cp1252",
        lambda p: (
            _write_bytes(make_sku(p), "annotations.csv", b"caf\xe9.jpg,1,1,2,2,object,64,48\n"),
            "sku110k",
        ),
        r"annotations.csv line 1: not UTF-8 text \(byte 0xe9",
    ),
    (
        "empty yolo",
        lambda p: (_mkdir(p / "empty"), "yolo"),
        r"no usable images found \(yolo format\)",
    ),
    (
        "empty csv",
        lambda p: (_write(make_sku(p), "annotations.csv", ""), "sku110k"),
        r"no usable images found",
    ),
]


def _write(root: Path, rel: str, text: str) -> Path:
    (root / rel).write_text(text)
    return root


def _write_bytes(root: Path, rel: str, data: bytes) -> Path:
    (root / rel).write_bytes(data)
    return root


def _remove(root: Path, rel: str) -> Path:
    (root / rel).unlink()
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _extra_label(root: Path) -> Path:
    return _write(root, "labels/c.txt", "0 0.5 0.5 0.1 0.1\n")


def _fake_image(root: Path, rel: str) -> Path:
    return _write(root, rel, "this is not a picture")


def _truncated(root: Path, rel: str) -> Path:
    cv2.imwrite(str(root / rel), np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8))
    _truncate(root / rel)
    return root


@pytest.mark.parametrize("name, build, error", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_names_file_and_line(tmp_path, name, build, error):
    root, fmt = build(tmp_path)
    class_map = {"product": "product"} if fmt.endswith(":map") else None
    with pytest.raises(DatasetError, match=error):
        read_dataset(root, fmt.split(":")[0], class_map=class_map)


# image-level faults: skip_bad leaves the image out; file-level faults (YAML, JSON, encoding of the
# one CSV, an empty dataset) still raise
SKIPPABLE = [
    c
    for c in BAD_CASES
    if c[0].startswith(("yolo", "sku")) and c[0] not in ("yolo bad yaml", "sku cp1252")
]


@pytest.mark.parametrize("name, build, error", SKIPPABLE, ids=[c[0] for c in SKIPPABLE])
def test_skip_bad_records_and_keeps_good_images(tmp_path, name, build, error):
    root, fmt = build(tmp_path)
    if fmt == "sku110k":
        # add a good image so something is left after skipping
        with (root / "annotations.csv").open("a") as fh:
            fh.write(f"b.jpg,0,0,64,48,object,{W},{H}\n")
    data = read_dataset(root, fmt, skip_bad=True)
    assert len(data) >= 1
    assert any(re.search(error, p) for p in data.problems), data.problems


def test_skip_bad_with_nothing_left_still_fails(tmp_path):
    root = make_voc(tmp_path, xmax="5")
    with pytest.raises(
        DatasetError, match=r"no usable images found .* 1 skipped, first: .*x2 < x1"
    ):
        read_dataset(root, "voc", skip_bad=True)


def test_unknown_format_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset format"):
        read_dataset(make_yolo(tmp_path), "pascal")


@pytest.mark.parametrize(
    "fmt, build",
    [
        ("voc", lambda p: make_voc(p, xmax="5")),
        ("coco", lambda p: make_coco(p, bbox=[10, 5, -3, 20])),
    ],
)
def test_skip_bad_skips_whole_image_for_voc_and_coco(tmp_path, fmt, build):
    root = build(tmp_path / "d")
    with pytest.raises(DatasetError, match="1 skipped"):
        read_dataset(root, fmt, skip_bad=True)


def test_utf16_and_bom_text_is_accepted(tmp_path):
    root = make_sku(tmp_path)
    text = (root / "annotations.csv").read_text()
    (root / "annotations.csv").write_bytes(text.encode("utf-16"))
    assert len(read_dataset(root, "sku110k")) == 2
    (root / "annotations.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert len(read_dataset(root, "sku110k")) == 2


# --------------------------------------------------------------------------- scored labels


def _teacher_labels(root: Path, lines: str, folder: str = "teacher") -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "a.txt").write_text(lines)
    return root


TEACHER_LINES = "0 0.5 0.5 0.25 0.5 0.90\n0 0.2 0.2 0.1 0.1 0.30\n0 0.8 0.8 0.1 0.1 0.05\n"


@pytest.mark.parametrize(
    "bands, expected",
    [
        (None, ["product", "product", "product"]),  # a score column without bands: every box
        (ScoreBands(0.25), ["product", "product"]),
        (ScoreBands(0.4, 0.1), ["product", "ignore"]),
        (ScoreBands(0.4, 0.05), ["product", "ignore", "ignore"]),
        (ScoreBands(0.95), []),
    ],
)
def test_yolo_score_column_and_bands(tmp_path, bands, expected):
    root = _teacher_labels(make_yolo(tmp_path), TEACHER_LINES)
    data = read_dataset(
        root, "yolo", class_map={"0": "product"}, labels="teacher", score_bands=bands
    )
    assert data.images[0].class_names == expected
    assert ("ignore" in data.classes) == ("ignore" in expected)
    # ignore boxes are regions, not a class the image annotates
    assert data.images[0].annotated_classes == ("product",)


def test_yolo_scored_and_human_lines_mix(tmp_path):
    root = _teacher_labels(make_yolo(tmp_path), "0 0.5 0.5 0.25 0.5\n0 0.2 0.2 0.1 0.1 0.2\n")
    data = read_dataset(
        root, "yolo", class_map={"0": "product"}, labels="teacher", score_bands=ScoreBands(0.4)
    )
    assert data.images[0].class_names == ["product"]  # a line without a score always counts


@pytest.mark.parametrize(
    "lines, error",
    [
        ("0 0.5 0.5 0.25 0.5 1.5\n", r"teacher/a.txt line 1: score 1.5 is not in \[0, 1\]"),
        ("0 0.5 0.5 0.25 0.5 high\n", r"teacher/a.txt line 1: 'high' is not a number"),
        ("0 0.5 0.5 0.25 0.5 0.9 7\n", r"teacher/a.txt line 1: expected 5 fields"),
    ],
)
def test_yolo_bad_score_column(tmp_path, lines, error):
    root = _teacher_labels(make_yolo(tmp_path), lines)
    with pytest.raises(DatasetError, match=error):
        read_dataset(root, "yolo", class_map={"0": "product"}, labels="teacher")


@pytest.mark.parametrize("minimum, unsure", [(1.2, None), (-0.1, None), (0.4, 0.5), (0.4, -0.1)])
def test_score_bands_are_checked(minimum, unsure):
    with pytest.raises(ValueError, match="score must be in"):
        ScoreBands(minimum, unsure)


def test_missing_label_folder_and_other_formats(tmp_path):
    with pytest.raises(DatasetError, match="no label folder 'teacher'"):
        read_dataset(make_yolo(tmp_path / "y"), "yolo", labels="teacher")
    with pytest.raises(ValueError, match="YOLO data sets only"):
        read_dataset(make_voc(tmp_path / "v"), "voc", score_bands=ScoreBands(0.4))


def test_merge_labels_joins_the_same_photos(tmp_path):
    root = _teacher_labels(make_yolo(tmp_path, "0 0.5 0.5 0.25 0.5\n", names=False), TEACHER_LINES)
    gaps = read_dataset(root, "yolo", class_map={"0": "gap"})
    products = read_dataset(
        root, "yolo", class_map={"0": "product"}, labels="teacher", score_bands=ScoreBands(0.4, 0.1)
    )
    merged = merge_labels([gaps, products])
    assert merged.classes == ["product", "gap", "ignore"]
    assert len(merged) == 2  # a.jpg and b.jpg, each once
    a, b = sorted(merged.images, key=lambda im: im.path.name)
    assert a.class_names == ["gap", "product", "ignore"]
    assert a.boxes_xyxy.shape == (3, 4)
    assert a.annotated_classes == ("product", "gap") == b.annotated_classes
    assert b.class_names == []  # no label in either set: both classes known to be absent


def test_merge_labels_rejects_disagreeing_sizes(tmp_path):
    from skuaudit.datasets.base import Dataset, LabeledImage

    one = Dataset(["gap"], [LabeledImage(tmp_path / "p.jpg", 10, 10, [], [], ("gap",))])
    two = Dataset(["product"], [LabeledImage(tmp_path / "p.jpg", 20, 10, [], [], ("product",))])
    with pytest.raises(DatasetError, match="20x10 in one label set, 10x10 in another"):
        merge_labels([one, two])
    with pytest.raises(DatasetError, match="no data sets"):
        merge_labels([])

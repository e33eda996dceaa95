"""Synthetic shelves: determinism, box validity, brands and the written dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skuaudit.datasets.readers import read_dataset
from skuaudit.datasets.synth import (
    FAMILIES,
    cli_main,
    default_catalogue,
    generate_dataset,
    make_catalogue,
    render_product,
    render_shelf,
)
from skuaudit.detections import GAP, PRODUCT, box_intersection_xyxy, box_iou_xyxy


def _intersection_over_first(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return box_intersection_xyxy(a, b) / ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]


def test_render_shelf_is_deterministic():
    a, b = render_shelf(11, 320, 240), render_shelf(11, 320, 240)
    assert np.array_equal(a.image_bgr, b.image_bgr)
    assert np.array_equal(a.boxes_xyxy, b.boxes_xyxy)
    assert a.brands == b.brands
    c = render_shelf(12, 320, 240)
    assert not np.array_equal(a.image_bgr, c.image_bgr)


@pytest.mark.parametrize(
    "seed, width, height, n_rows, difficulty",
    [
        (0, 1024, 768, None, 1.0),
        (1, 640, 480, 2, 1.0),
        (2, 640, 480, 7, 0.5),
        (3, 400, 300, 4, 0.0),
    ],
)
def test_render_shelf_boxes_are_valid(seed, width, height, n_rows, difficulty):
    shelf = render_shelf(seed, width, height, n_rows=n_rows, difficulty=difficulty)
    boxes = shelf.boxes_xyxy
    assert shelf.image_bgr.shape == (height, width, 3) and shelf.image_bgr.dtype == np.uint8
    assert boxes.dtype == np.float32 and shelf.class_ids.dtype == np.int32
    assert len(boxes) == len(shelf.class_ids) == len(shelf.brands) == len(shelf.shelf_rows)
    assert (
        (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    )
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    products, gaps = boxes[shelf.class_ids == PRODUCT], boxes[shelf.class_ids == GAP]
    assert len(products) >= 20
    iou = box_iou_xyxy(products, products)
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.08
    if len(gaps):
        assert _intersection_over_first(gaps, products).sum(1).max() < 0.02
    assert all(b for b, c in zip(shelf.brands, shelf.class_ids, strict=True) if c == PRODUCT)
    assert all(not b for b, c in zip(shelf.brands, shelf.class_ids, strict=True) if c == GAP)
    if n_rows is not None:
        assert shelf.shelf_rows.min() >= 0 and shelf.shelf_rows.max() < n_rows


def test_full_size_shelves_are_dense():
    counts = [int((render_shelf(s).class_ids == PRODUCT).sum()) for s in range(4)]
    assert all(40 <= c <= 300 for c in counts), counts


def test_shelf_converts_to_detections_and_labeled_image(tmp_path):
    shelf = render_shelf(5, 320, 240, catalogue=default_catalogue())
    det = shelf.to_detections()
    assert len(det) == len(shelf.boxes_xyxy)
    assert set(det.data) == {"brand", "shelf_row"}
    assert set(shelf.brands) - {""} <= set(default_catalogue().names)
    item = shelf.to_labeled_image(tmp_path / "a.jpg")
    assert (item.width, item.height) == (320, 240)
    assert set(item.class_names) <= {"product", "gap"}
    assert item.annotated_classes == ("product", "gap")


@pytest.mark.parametrize("kwargs", [{"width": 10}, {"difficulty": 2.0}, {"n_rows": 0}])
def test_render_shelf_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        render_shelf(0, **kwargs)


def test_catalogue_is_deterministic_and_unique():
    a, b = make_catalogue(30, seed=4), make_catalogue(30, seed=4)
    assert a.names == b.names and len(set(a.names)) == 30
    assert make_catalogue(30, seed=5).names != a.names
    assert a.by_name(a.names[3]) is a.brands[3]
    with pytest.raises(KeyError):
        a.by_name("nope")
    with pytest.raises(ValueError):
        make_catalogue(0, seed=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_render_product_shape_and_variants(family):
    brand = make_catalogue(1, seed=9).brands[0]
    crop = render_product(brand, family, 40, 90, np.random.default_rng(0))
    assert crop.shape == (90, 40, 3) and crop.dtype == np.uint8
    again = render_product(brand, family, 40, 90, np.random.default_rng(0))
    assert np.array_equal(crop, again)
    other = render_product(brand, family, 40, 90, np.random.default_rng(0), variant=1)
    assert other.shape == crop.shape


def test_render_product_rejects_unknown_family():
    with pytest.raises(ValueError, match="unknown product family"):
        render_product(default_catalogue().brands[0], "crate", 10, 10, np.random.default_rng(0))


def test_generated_dataset_reads_back_in_every_format(tmp_path):
    out = generate_dataset(tmp_path / "synth", n=2, seed=3, width=320, height=240)
    coco = json.loads((out / "annotations.coco.json").read_text())
    assert {a["attributes"]["shelf_row"] for a in coco["annotations"]} >= {0}
    datasets = {f: read_dataset(out, f) for f in ("yolo", "coco", "sku110k")}
    for data in datasets.values():
        assert data.classes == ["product", "gap"] and len(data) == 2
    for a, b in zip(datasets["coco"].images, datasets["sku110k"].images, strict=True):
        assert np.allclose(a.boxes_xyxy, b.boxes_xyxy, atol=0.02)
        assert a.class_names == b.class_names
    for a, b in zip(datasets["coco"].images, datasets["yolo"].images, strict=True):
        assert np.allclose(a.boxes_xyxy, b.boxes_xyxy, atol=0.05)
    assert "brand" in datasets["coco"].images[0].extras


def test_generate_dataset_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown formats"):
        generate_dataset(tmp_path, n=1, seed=0, formats=("tfrecord",))


def test_cli_writes_dataset(tmp_path, capsys):
    assert (
        cli_main(["--out", str(tmp_path / "o"), "--n", "1", "--width", "256", "--height", "192"])
        == 0
    )
    assert (tmp_path / "o" / "images" / "synth_000000.jpg").is_file()
    assert "images/s" in capsys.readouterr().out


def _colour_crops(folder, colours=((0, 0, 255), (255, 0, 0))):
    """Photos of 'real products': flat 40x90 crops of pure colours (BGR)."""
    import cv2

    folder.mkdir()
    for i, colour in enumerate(colours):
        cv2.imwrite(str(folder / f"p{i}.png"), np.full((90, 40, 3), colour, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_render_shelf_repeats_real_product_crops_as_unbranded_facings(tmp_path):
    crops = _colour_crops(tmp_path / "crops")
    shelf = render_shelf(3, 640, 480, crop_dir=crops, difficulty=0.0)
    unbranded = [
        i
        for i, (c, b) in enumerate(zip(shelf.class_ids, shelf.brands, strict=True))
        if c == PRODUCT and b == ""
    ]
    branded = [i for i, c in enumerate(shelf.class_ids) if c == PRODUCT and shelf.brands[i]]
    assert len(unbranded) >= 5 and len(branded) >= 5  # half of the runs, not all
    for i in unbranded:  # each box holds one crop: its centre shows a pure crop colour
        x1, y1, x2, y2 = shelf.boxes_xyxy[i]
        b, g, r = shelf.image_bgr[int((y1 + y2) / 2), int((x1 + x2) / 2)].astype(int)
        assert (r > 120 and max(b, g) < 60) or (b > 120 and max(g, r) < 60), (b, g, r)
    plain = render_shelf(3, 640, 480, difficulty=0.0)
    assert all(b for b, c in zip(plain.brands, plain.class_ids, strict=True) if c == PRODUCT)


def test_crop_dir_errors_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        render_shelf(0, crop_dir=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no readable product photos"):
        generate_dataset(tmp_path / "out", 2, seed=0, crop_dir=tmp_path / "empty")


def test_texture_dir_errors_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match="texture_dir .* is not a folder"):
        render_shelf(0, texture_dir=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="texture_dir .* holds no readable images"):
        render_shelf(0, texture_dir=tmp_path / "empty")
    textured = render_shelf(1, 320, 240, texture_dir=_colour_crops(tmp_path / "photos"))
    assert textured.image_bgr.shape == (240, 320, 3) and len(textured.boxes_xyxy) > 0

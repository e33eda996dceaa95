"""tf.data pipeline shapes, padding, class masks and the tiling helpers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from skuaudit.datasets.base import Dataset, LabeledImage
from skuaudit.datasets.tfdata import (
    TileSpec,
    crop_boxes_xyxy,
    encode_example,
    make_synth_tf_dataset,
    make_tf_dataset,
    random_tile_xyxy,
    tile_grid,
)


@pytest.mark.parametrize(
    "width, height, tile, overlap, expected",
    [
        (100, 80, 320, 0.2, [(0, 0, 100, 80)]),
        (1000, 500, 500, 0.2, [(0, 0, 500, 500), (250, 0, 750, 500), (500, 0, 1000, 500)]),
        (
            640,
            640,
            320,
            0.0,
            [(0, 0, 320, 320), (320, 0, 640, 320), (0, 320, 320, 640), (320, 320, 640, 640)],
        ),
        (700, 300, (400, 300), 0.5, [(0, 0, 400, 300), (150, 0, 550, 300), (300, 0, 700, 300)]),
    ],
)
def test_tile_grid(width, height, tile, overlap, expected):
    assert tile_grid(width, height, tile, overlap) == expected


@pytest.mark.parametrize("args", [(0, 10, 5, 0.1), (10, 10, 0, 0.1), (10, 10, 5, 1.0)])
def test_tile_grid_rejects(args):
    with pytest.raises(ValueError):
        tile_grid(*args)


def test_tile_grid_covers_large_photo():
    tiles = tile_grid(1600, 1200, 640, 0.25)
    covered = np.zeros((1200, 1600), bool)
    for x1, y1, x2, y2 in tiles:
        covered[y1:y2, x1:x2] = True
    assert covered.all()


@pytest.mark.parametrize(
    "boxes, window, expected_kept",
    [
        (np.empty((0, 4)), (0, 0, 10, 10), []),
        ([[0, 0, 10, 10], [8, 0, 18, 10], [50, 50, 60, 60]], (0, 0, 12, 12), [0]),
        ([[0, 0, 10, 10], [4, 0, 14, 10]], (0, 0, 12, 12), [0, 1]),
    ],
)
def test_crop_boxes(boxes, window, expected_kept):
    cropped, kept = crop_boxes_xyxy(boxes, window, 0.5)
    assert kept.tolist() == expected_kept
    assert cropped.shape == (len(expected_kept), 4)


def test_random_tile_small_photo_is_whole():
    rng = np.random.default_rng(0)
    assert random_tile_xyxy(640, 480, TileSpec(), rng) == (0, 0, 640, 480)
    x1, y1, x2, y2 = random_tile_xyxy(1600, 1200, TileSpec((0.3, 0.5)), rng)
    assert 480 <= x2 - x1 <= 800 and x1 >= 0 and x2 <= 1600 and y2 <= 1200


def test_random_tile_zooms_into_small_photos_keeping_their_shape():
    rng = np.random.default_rng(0)
    spec = TileSpec(small_photo_fraction=(0.45, 1.0))
    windows = np.array([random_tile_xyxy(416, 312, spec, rng) for _ in range(200)])
    widths, heights = windows[:, 2] - windows[:, 0], windows[:, 3] - windows[:, 1]
    assert windows[:, :2].min() >= 0 and windows[:, 2].max() <= 416 and windows[:, 3].max() <= 312
    assert widths.min() >= round(0.45 * 416) and widths.max() <= 416 and widths.min() < 250
    np.testing.assert_allclose(widths / heights, 416 / 312, rtol=0.02)


@pytest.mark.parametrize("fraction", [(0.0, 1.0), (0.8, 0.5), (0.5, 1.2)])
def test_tile_spec_rejects_bad_small_photo_fraction(fraction):
    with pytest.raises(ValueError, match="small_photo_fraction"):
        TileSpec(small_photo_fraction=fraction)


@pytest.mark.parametrize("n_boxes", [0, 3, 12])
def test_encode_example_pads(n_boxes):
    image = np.zeros((100, 200, 3), np.uint8)
    boxes = np.tile([[20, 10, 60, 50]], (n_boxes, 1)).astype(np.float32)
    img, yxyx, ids, mask = encode_example(
        image, boxes, np.zeros(n_boxes, np.int32), np.array([1, 0], np.float32), (64, 64), 8
    )
    assert img.shape == (64, 64, 3) and img.dtype == np.float32
    assert (ids >= 0).sum() == min(n_boxes, 8) and (ids[min(n_boxes, 8) :] == -1).all()
    if n_boxes:
        assert np.allclose(yxyx[0], [0.1, 0.1, 0.5, 0.3])
    assert mask.tolist() == [1, 0]


def test_make_tf_dataset_batches_and_masks(tmp_path):
    items = []
    for i, annotated in enumerate([("product", "gap"), ("gap",)]):
        path = tmp_path / f"{i}.jpg"
        cv2.imwrite(str(path), np.full((1200, 1600, 3), 90, np.uint8))
        items.append(
            LabeledImage(
                path,
                1600,
                1200,
                [[100, 100, 300, 400], [800, 600, 900, 700]],
                ["product", "gap"] if i == 0 else ["gap", "gap"],
                annotated,
            )
        )
    ds = make_tf_dataset(
        Dataset(["product", "gap"], items),
        ["product", "gap"],
        image_size=(96, 128),
        batch_size=2,
        shuffle=False,
        max_boxes=16,
        tile=TileSpec(),
    )
    images, targets = next(iter(ds))
    assert images.shape == (2, 96, 128, 3)
    assert targets["boxes_yxyx_norm"].shape == (2, 16, 4)
    assert targets["class_ids"].shape == (2, 16)
    assert targets["class_mask"].numpy().tolist() == [[1, 1], [0, 1]]


def test_make_synth_tf_dataset():
    ds = make_synth_tf_dataset(
        0, image_size=(64, 64), batch_size=2, render_size=(192, 256), n_images=2, max_boxes=300
    )
    images, targets = next(iter(ds))
    assert images.shape == (2, 64, 64, 3)
    assert (targets["class_ids"].numpy() >= 0).sum() > 10


def test_validation_passes_repeat_the_same_crops(tmp_path):
    """Without shuffle, repeat or augmentation every pass gives the same crops in the same order
    (validation losses then compare models, not draws); training passes draw new crops."""
    rng = np.random.default_rng(3)
    items = []
    for i in range(6):
        path = tmp_path / f"{i}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8))
        boxes = [[x, 200, x + 150, 500] for x in range(0, 1500, 160)]
        items.append(LabeledImage(path, 1600, 1200, boxes, ["product"] * len(boxes)))
    data = Dataset(["product", "gap"], items)

    def passes(**kwargs) -> list[np.ndarray]:
        ds = make_tf_dataset(
            data,
            ["product", "gap"],
            image_size=(64, 64),
            batch_size=3,
            max_boxes=16,
            tile=TileSpec(),
            shuffle=False,
            **kwargs,
        )
        return [np.concatenate([b[1]["boxes_yxyx_norm"].numpy() for b in ds]) for _ in range(2)]

    first, second = passes(augment=False)
    np.testing.assert_array_equal(first, second)
    first, second = passes(augment=True)
    assert not np.array_equal(first, second)

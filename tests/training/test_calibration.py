"""Photo-path calibration of a model folder (``skuaudit.training.calibration``)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from skuaudit.datasets.base import DatasetError, LabeledImage
from skuaudit.detections import PRODUCT
from skuaudit.detector import Detector
from skuaudit.detector.detector import read_model_config
from skuaudit.training.calibration import (
    PhotoPath,
    calibrate_model,
    count_matching_threshold,
    greedy_matches,
    single_pass_matching_threshold,
    video_frames,
)


def test_count_matching_threshold(tiny_detector, synth_shelf_dataset):
    """At the returned score the detector's product count equals the true count."""
    detector = Detector.load(tiny_detector[0])
    images = synth_shelf_dataset.images[:3]
    result = count_matching_threshold(detector, images, "product")
    truth = sum(im.class_names.count("product") for im in images)
    assert result["true_count"] == truth
    counted = 0
    for im in images:
        det = detector.detect(cv2.imread(str(im.path)), score_threshold=0.05)
        counted += int(np.sum((det.class_id == PRODUCT) & (det.confidence >= result["threshold"])))
    assert counted == truth or (result["threshold"] == 0.05 and counted < truth)
    assert 0.0 <= result["precision"] <= 1.0 and 0.0 <= result["recall"] <= 1.0
    gap_only = [LabeledImage(images[0].path, 512, 384, [[0, 0, 9, 9]], ["gap"])]
    with pytest.raises(DatasetError, match="no image labels 'product'"):
        count_matching_threshold(detector, gap_only, "product")


@pytest.mark.parametrize(
    "scores, expected",
    [
        # the second box duplicates the first truth: the better-scored one claims it
        ([0.5, 0.9, 0.8, 0.7], [False, True, True, False]),
        ([0.9, 0.5, 0.8, 0.7], [True, False, True, False]),
    ],
)
def test_greedy_matches(scores, expected):
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    boxes = np.array(
        [[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10], [50, 50, 60, 60]], np.float32
    )
    assert greedy_matches(boxes, np.array(scores), truth).tolist() == expected
    assert greedy_matches(np.zeros((0, 4)), np.zeros(0), truth).tolist() == []


def test_calibrate_model_writes_photo_path_and_thresholds(
    tiny_detector, synth_shelf_dataset, tmp_path
):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_detector[0], model_dir)
    weights = (model_dir / "model.tflite").read_bytes()
    images = synth_shelf_dataset.images
    results = calibrate_model(
        model_dir,
        {"product": (images[:2], "two shelves"), "gap": (images[2:4], "two more")},
        PhotoPath(
            tile_above_px=300,
            whole_image_classes=("gap",),
            flip_classes=("gap",),
            class_tile_fractions={"product": (0.5,)},
            empty_classes=("gap",),
        ),
    )
    config = read_model_config(model_dir)  # written through DetectorConfig: it reads back
    assert config.tile_above_px == 300
    assert config.whole_image_classes == ["gap"] and config.flip_classes == ["gap"]
    assert config.class_tile_fractions == {"product": [0.5]}
    assert config.empty_classes == ["gap"]
    for name, result in results.items():
        assert config.class_score_thresholds[name] == round(result["threshold"], 3)
    # the gap threshold was set first: products were counted with the gaps that count
    again = count_matching_threshold(Detector.load(model_dir), images[:2], "product")
    assert again["threshold"] == results["product"]["threshold"]
    saved = json.loads((model_dir / "config.json").read_text())
    calibration = saved["training"]["threshold_calibration"]
    assert calibration["gap"]["images"] == (
        "two more, photo path (tiled above 300 px, with a whole-image pass, with the mirrored view)"
    )
    assert calibration["product"]["images"] == (
        "two shelves, photo path (tiled above 300 px, with tiles of 0.5 x the longer side too, "
        "boxes inside a counted gap dropped)"
    )
    assert saved["training"]["steps_done"] == 40  # the rest of the card is kept
    assert (model_dir / "model.tflite").read_bytes() == weights
    # a second calibration of one class keeps the other's threshold and record
    calibrate_model(model_dir, {"product": (images[:1], "one shelf")})
    again = json.loads((model_dir / "config.json").read_text())
    assert (
        again["detector"]["class_score_thresholds"]["gap"] == config.class_score_thresholds["gap"]
    )
    assert again["training"]["threshold_calibration"]["gap"] == calibration["gap"]
    assert again["detector"]["tile_above_px"] == 300


def test_calibrate_model_rejects_unknown_classes(tiny_detector, synth_shelf_dataset):
    with pytest.raises(ValueError, match=r"cannot calibrate \['shelf'\]"):
        calibrate_model(tiny_detector[0], {"shelf": (synth_shelf_dataset.images[:1], "x")})


def test_single_pass_threshold_makes_one_pass_count_what_the_photo_path_counts(
    tiny_detector, synth_shelf_dataset, tmp_path
):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_detector[0], model_dir)
    rng = np.random.default_rng(0)
    frames = [
        frame
        for im in synth_shelf_dataset.images[:3]
        for frame in video_frames(cv2.imread(str(im.path)), 2, rng, size_wh=(320, 240))
    ]
    assert len(frames) == 6 and {f.shape for f in frames} == {(240, 320, 3)}
    # the photo-path threshold first (the tiny model's scores are low), then the one-pass one
    results = calibrate_model(
        model_dir,
        {"product": (synth_shelf_dataset.images[:3], "three shelves")},
        single_pass_frames=(frames, "six frames"),
    )
    result = results["product (one pass)"]
    config = read_model_config(model_dir)
    assert config.single_pass_class_score_thresholds == {"product": round(result["threshold"], 3)}
    single, photo = config.default_thresholds(single_pass=True), config.default_thresholds()
    assert photo[0] == pytest.approx(results["product"]["threshold"], abs=1e-3)
    assert single[0] == pytest.approx(result["threshold"], abs=1e-3) and single[1] == photo[1]
    detector = Detector.load(model_dir)
    again = single_pass_matching_threshold(detector, frames)
    assert again["photo_path_count"] == result["photo_path_count"] > 0
    one_pass = [detector.detect(f, tiled=False, score_threshold=again["threshold"]) for f in frames]
    counted = sum(int((d.class_id == PRODUCT).sum()) for d in one_pass)
    assert counted == again["photo_path_count"] or again["threshold"] == 0.05
    # detect() uses the one-pass default in one pass
    default = sum(int((detector.detect(f, tiled=False).class_id == PRODUCT).sum()) for f in frames)
    at_single = [
        int(((d.class_id == PRODUCT) & (d.confidence >= single[0])).sum())
        for d in (detector.detect(f, tiled=False, score_threshold=0.05) for f in frames)
    ]
    assert default == sum(at_single)
    saved = json.loads((model_dir / "config.json").read_text())
    record = saved["training"]["threshold_calibration"]["product (one pass)"]
    assert record["images"] == "six frames: one pass against the photo path"
    with pytest.raises(ValueError, match="no frames"):
        single_pass_matching_threshold(detector, [])

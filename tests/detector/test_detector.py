from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from skuaudit.datasets.synth import render_shelf
from skuaudit.detections import Detections, box_iou_xyxy
from skuaudit.detector import Detector, DetectorConfig, ModelLoadError, load_raw_model

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shelf_bgr():
    return render_shelf(seed=123, width=512, height=384).image_bgr


def test_save_load_round_trip_gives_identical_outputs(tiny_detector, shelf_bgr):
    model_dir, _ = tiny_detector
    detector = Detector.load(model_dir, runtime="tf")
    inputs = cv2.resize(shelf_bgr, (128, 128))[None, :, :, ::-1].astype(np.float32)
    reloaded = load_raw_model(model_dir)
    np.testing.assert_array_equal(detector.predict_raw(inputs), reloaded.predict(inputs, verbose=0))
    again = Detector.load(model_dir, runtime="tf").detect(shelf_bgr, score_threshold=0.05)
    first = detector.detect(shelf_bgr, score_threshold=0.05)
    np.testing.assert_array_equal(first.xyxy, again.xyxy)
    np.testing.assert_array_equal(first.confidence, again.confidence)


def test_tflite_runtime_matches_keras(tiny_detector, shelf_bgr):
    model_dir, _ = tiny_detector
    tflite = Detector.load(model_dir)
    assert tflite.runtime == "tflite"
    keras_rt = Detector.load(model_dir, runtime="tf")
    inputs = cv2.resize(shelf_bgr, (128, 128))[None, :, :, ::-1].astype(np.float32)
    np.testing.assert_allclose(tflite.predict_raw(inputs), keras_rt.predict_raw(inputs), atol=2e-3)
    assert tflite.anchors_yxyx_norm.shape == (tflite.predict_raw(inputs).shape[1], 4)


@pytest.mark.parametrize("tiled", [False, True, None])
def test_detect_returns_pixel_boxes(tiny_detector, shelf_bgr, tiled):
    detector = Detector.load(tiny_detector[0])
    det = detector.detect(shelf_bgr, score_threshold=0.01, tiled=tiled)
    assert isinstance(det, Detections)
    h, w = shelf_bgr.shape[:2]
    assert (
        np.all(det.xyxy >= 0)
        and np.all(det.xyxy[:, [0, 2]] <= w)
        and np.all(det.xyxy[:, [1, 3]] <= h)
    )
    assert np.all(np.diff(det.confidence) <= 0)


@pytest.mark.parametrize(
    "bad", [np.zeros((10, 10)), np.zeros((0, 0, 3), np.uint8), np.zeros((5, 5, 4), np.uint8)]
)
def test_detect_rejects_non_bgr_images(tiny_detector, bad):
    with pytest.raises(ValueError, match="BGR image"):
        Detector.load(tiny_detector[0]).detect(bad)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.keras").unlink(), "weights file model.keras is missing"),
        (lambda d: (d / "config.json").unlink(), "config.json is missing"),
        (lambda d: (d / "config.json").write_text("{"), "config.json is corrupt"),
    ],
)
def test_broken_model_folder_raises_model_load_error(tiny_detector, tmp_path, damage, message):
    model_dir = tmp_path / "x"
    shutil.copytree(tiny_detector[0], model_dir)
    damage(model_dir)
    with pytest.raises(ModelLoadError, match=message):
        Detector.load(model_dir)


@pytest.mark.parametrize("runtime, file", [("tf", "model.keras"), ("auto", "model.tflite")])
def test_corrupt_weights_raise_model_load_error(tiny_detector, tmp_path, runtime, file):
    model_dir = tmp_path / "x"
    shutil.copytree(tiny_detector[0], model_dir)
    (model_dir / file).write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match=f"weights file {file} is corrupt"):
        Detector.load(model_dir, runtime=runtime)


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="model folder not found"):
        Detector.load(tmp_path / "nope")


def test_cli_json_and_bad_photos(tiny_detector, tmp_path, capsys, shelf_bgr):
    from skuaudit.cli import main

    photo = tmp_path / "shelf.jpg"
    cv2.imwrite(str(photo), shelf_bgr)
    assert (
        main(
            [
                "detect",
                str(photo),
                "--model",
                str(tiny_detector[0]),
                "--json",
                "--score-threshold",
                "0.01",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in out] == [str(photo)]
    assert all(set(d) == {"xyxy", "class", "score"} for d in out[0]["detections"])
    assert all(d["class"] in ("product", "gap") for d in out[0]["detections"])

    corrupt = tmp_path / "bad.jpg"
    corrupt.write_bytes(b"\xff\xd8garbage")
    for bad in (corrupt, tmp_path / "missing.jpg"):
        assert main(["detect", str(photo), str(bad), "--model", str(tiny_detector[0])]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(bad) in err and "Traceback" not in err
    assert main(["detect", str(photo), "--model", str(tmp_path / "none")]) == 2
    assert "model folder not found" in capsys.readouterr().err


@pytest.mark.parametrize("tiled", [False, True])
def test_nested_box_rules_apply_in_both_modes(tiny_detector, shelf_bgr, tiled):
    detector = Detector.load(tiny_detector[0])
    with_rules = detector.detect(shelf_bgr, score_threshold=0.01, tiled=tiled)
    detector.config.stack_min_contained, detector.config.drop_contained = 0, False
    without = detector.detect(shelf_bgr, score_threshold=0.01, tiled=tiled)
    assert len(with_rules) < len(without)  # a barely trained model nests many boxes
    assert np.all(box_iou_xyxy(with_rules.xyxy, without.xyxy).max(axis=1) > 0.999)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"containment": 0.0}, "containment"),
        ({"containment": 1.5}, "containment"),
        ({"stack_min_contained": -1}, "stack_min_contained"),
        ({"class_score_thresholds": {"shelf": 0.5}}, "unknown classes"),
        ({"single_pass_class_score_thresholds": {"shelf": 0.5}}, "unknown classes"),
        ({"whole_image_classes": ["shelf"]}, "whole_image_classes names unknown classes"),
    ],
)
def test_nested_box_settings_are_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        DetectorConfig(**settings)


def test_whole_image_pass_adds_boxes_of_its_classes_only(tiny_detector, shelf_bgr):
    detector = Detector.load(tiny_detector[0])
    # nested-box rules off: what remains to check is the merge (NMS across tiles and the pass)
    detector.config.stack_min_contained, detector.config.drop_contained = 0, False
    tiles_only = detector.detect(shelf_bgr, score_threshold=0.01, tiled=True)
    one_pass = detector.detect(shelf_bgr, score_threshold=0.01, tiled=False)
    detector.config.whole_image_classes = ["gap"]
    both = detector.detect(shelf_bgr, score_threshold=0.01, tiled=True)
    assert np.all(np.diff(both.confidence) <= 0)
    product, gap = 0, 1
    np.testing.assert_array_equal(
        both[both.class_id == product].xyxy, tiles_only[tiles_only.class_id == product].xyxy
    )
    whole_gaps, merged_gaps = one_pass[one_pass.class_id == gap], both[both.class_id == gap]
    assert len(whole_gaps) > 0 and len(merged_gaps) != len(tiles_only[tiles_only.class_id == gap])
    # every gap of the whole-image pass is kept, or was suppressed by a better overlapping gap
    assert np.all(box_iou_xyxy(whole_gaps.xyxy, merged_gaps.xyxy).max(axis=1) > 0.5 - 1e-6)


def test_config_without_nested_box_settings_loads_defaults():
    config = DetectorConfig.from_dict({"image_size": 128})
    assert (config.containment, config.stack_min_contained, config.drop_contained) == (0.8, 2, True)


@pytest.mark.parametrize(
    "class_thresholds, explicit, expected_min",
    [
        ({}, None, {0: 0.2, 1: 0.2}),
        ({"product": 0.5}, None, {0: 0.5, 1: 0.2}),
        ({"product": 0.5}, 0.3, {0: 0.3, 1: 0.3}),  # an explicit threshold applies to every class
    ],
)
@pytest.mark.parametrize("tiled", [False, True])
def test_class_score_thresholds(
    tiny_detector, shelf_bgr, class_thresholds, explicit, expected_min, tiled
):
    detector = Detector.load(tiny_detector[0])
    detector.config.score_threshold = 0.2
    detector.config.class_score_thresholds = class_thresholds
    det = detector.detect(shelf_bgr, score_threshold=explicit, tiled=tiled)
    low = detector.detect(shelf_bgr, score_threshold=0.01, tiled=tiled)
    for class_id, minimum in expected_min.items():
        expected = low[(low.class_id == class_id) & (low.confidence >= minimum)]
        np.testing.assert_array_equal(det[det.class_id == class_id].xyxy, expected.xyxy)


@pytest.mark.parametrize("flip_classes", [["product", "gap"], ["gap"]])
def test_flip_classes_fuse_the_photo_with_its_mirror(tiny_detector, shelf_bgr, flip_classes):
    """Tiled mode with ``flip_classes`` equals fusing, for those classes, the plain tiled boxes
    of the photo with the mirrored tiled boxes of its mirror image; the other classes keep the
    plain boxes; single-pass mode (video) ignores the setting."""
    from skuaudit.detector.postprocess import fuse_views

    detector = Detector.load(tiny_detector[0])
    detector.config.stack_min_contained, detector.config.drop_contained = 0, False
    width = shelf_bgr.shape[1]
    plain = detector.detect(shelf_bgr, score_threshold=0.05, tiled=True)
    mirrored = detector.detect(
        np.ascontiguousarray(shelf_bgr[:, ::-1]), score_threshold=0.05, tiled=True
    )
    mirrored.xyxy[:, [0, 2]] = width - mirrored.xyxy[:, [2, 0]]
    one_pass = detector.detect(shelf_bgr, score_threshold=0.05, tiled=False)
    detector.config.flip_classes = flip_classes
    result = detector.detect(shelf_bgr, score_threshold=0.05, tiled=True)
    for class_id, name in enumerate(detector.config.class_names):
        got = result[result.class_id == class_id]
        expected = plain[plain.class_id == class_id]
        if name in flip_classes:
            expected = fuse_views(
                [expected, mirrored[mirrored.class_id == class_id]],
                iou_threshold=detector.config.fusion_iou,
            )
            expected = expected[expected.confidence >= 0.05]
        np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=0.5)
        np.testing.assert_allclose(got.confidence, expected.confidence, atol=1e-3)
    assert len(result) > 0 and np.all(np.diff(result.confidence) <= 0)
    again = detector.detect(shelf_bgr, score_threshold=0.05, tiled=False)
    np.testing.assert_array_equal(again.xyxy, one_pass.xyxy)


def test_fusion_min_score_gives_fused_boxes_one_score_at_any_threshold(tiny_detector, shelf_bgr):
    """A fused box's score is the mean of its members' times the share of views that found it,
    so it depends on which weak boxes each view kept. With ``fusion_min_score`` the views of
    fused classes keep their boxes from that score up whatever threshold ``detect`` is asked
    for: the photo path at a high threshold returns the boxes of a low-threshold call (the one
    thresholds are calibrated on) that reach it, with the same scores. The plain view of a class
    that is not fused keeps its boxes from the threshold asked for."""
    detector = Detector.load(tiny_detector[0])
    scores = detector.detect(shelf_bgr, score_threshold=0.01, tiled=True).confidence
    floor, low_threshold = (float(q) for q in np.quantile(scores, [0.3, 0.1]))  # a weak model
    detector.config.flip_classes = ["product", "gap"]
    detector.config.multiscale_classes, detector.config.extra_tile_fractions = ["gap"], [0.25]
    detector.config.fusion_min_score = floor
    low = detector.detect(shelf_bgr, score_threshold=low_threshold, tiled=True)
    assert len(low) > 10
    for q in (0.2, 0.5, 0.8):
        threshold = float(np.quantile(low.confidence, q))
        assert threshold > low_threshold
        high = detector.detect(shelf_bgr, score_threshold=threshold, tiled=True)
        expected = low[low.confidence >= threshold]
        assert len(high) > 0
        np.testing.assert_allclose(high.xyxy, expected.xyxy, atol=0.01)
        np.testing.assert_allclose(high.confidence, expected.confidence, atol=1e-5)
    detector.config.flip_classes = ["gap"]  # products: the plain view from the threshold asked
    threshold = float(np.quantile(low.confidence, 0.5))
    products = detector.detect(shelf_bgr, score_threshold=threshold, tiled=True)
    assert np.all(products.confidence[products.class_id == 0] >= threshold)
    detector.config.fusion_min_score = None
    same = detector.detect(shelf_bgr, score_threshold=threshold, tiled=True)
    np.testing.assert_array_equal(
        same[same.class_id == 0].xyxy, products[products.class_id == 0].xyxy
    )


def test_multiscale_classes_fuse_a_second_tile_size(tiny_detector, shelf_bgr):
    """With ``extra_tile_fractions`` [0.25] and ``multiscale_classes`` [NAME], the tiled photo's
    boxes of NAME are the fusion of the plain tiled boxes with those of a second set of tiles a
    quarter of the photo's longer side (each tile run on its own, boxes merged across tile
    borders); the other class keeps the plain boxes, and one-pass mode (video) ignores the
    setting; a fraction giving tiles within 10 % of the first set's size adds nothing. (The tiny model's boxes
    are mostly products, so products are the fused class here; the default model fuses gaps.)"""
    from skuaudit.detector.postprocess import fuse_views, merge_tile_detections
    from skuaudit.detector.tiling import tile_grid

    detector = Detector.load(tiny_detector[0])
    cfg = detector.config
    cfg.stack_min_contained, cfg.drop_contained = 0, False
    cfg.whole_image_classes = ["gap"]
    height, width = shelf_bgr.shape[:2]
    plain = detector.detect(shelf_bgr, score_threshold=0.05, tiled=True)
    one_pass = detector.detect(shelf_bgr, score_threshold=0.05, tiled=False)
    base_px = max(cfg.image_size, round(max(width, height) * cfg.tile_fraction))
    small = tile_grid(width, height, round(max(width, height) * 0.25), cfg.tile_overlap)
    assert len(small) > len(tile_grid(width, height, base_px, cfg.tile_overlap))
    parts = []
    for x1, y1, x2, y2 in small:
        part = detector.detect(shelf_bgr[y1:y2, x1:x2], score_threshold=0.05, tiled=False)
        part.xyxy += np.array([x1, y1, x1, y1], dtype=np.float32)
        parts.append(part)
    second = merge_tile_detections(parts, np.array(small), (width, height), nms_iou=cfg.nms_iou)
    cfg.extra_tile_fractions, cfg.multiscale_classes = (0.25,), ["product"]
    result = detector.detect(shelf_bgr, score_threshold=0.05, tiled=True)
    fused, kept = cfg.class_names.index("product"), cfg.class_names.index("gap")
    expected = fuse_views(
        [plain[plain.class_id == fused], second[second.class_id == fused]],
        iou_threshold=cfg.fusion_iou,
    )
    expected = expected[expected.confidence >= 0.05]
    got = result[result.class_id == fused]
    assert len(got) > 0 and len(got) != (plain.class_id == fused).sum()
    np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=0.5)
    np.testing.assert_allclose(got.confidence, expected.confidence, atol=1e-3)
    np.testing.assert_array_equal(
        result[result.class_id == kept].xyxy, plain[plain.class_id == kept].xyxy
    )
    assert np.all(np.diff(result.confidence) <= 0)
    again = detector.detect(shelf_bgr, score_threshold=0.05, tiled=False)
    np.testing.assert_array_equal(again.xyxy, one_pass.xyxy)
    # Without multiscale classes the extra tiles are not run at all: the plain result; nor is
    # a set of (nearly) the first set's size.
    cfg.multiscale_classes = []
    np.testing.assert_array_equal(
        detector.detect(shelf_bgr, score_threshold=0.05, tiled=True).xyxy, plain.xyxy
    )
    cfg.multiscale_classes = ["product"]
    cfg.extra_tile_fractions = (1.05 * base_px / max(width, height),)
    np.testing.assert_array_equal(
        detector.detect(shelf_bgr, score_threshold=0.05, tiled=True).xyxy, plain.xyxy
    )


def test_multiscale_settings_are_checked():
    with pytest.raises(ValueError, match="extra_tile_fractions"):
        DetectorConfig(extra_tile_fractions=[1.5])
    with pytest.raises(ValueError, match="multiscale_classes names unknown classes"):
        DetectorConfig(multiscale_classes=["shelf"])
    assert DetectorConfig(extra_tile_fractions=[0.65]).extra_tile_fractions == (0.65,)
    with pytest.raises(ValueError, match="empty_classes names unknown classes"):
        DetectorConfig(empty_classes=["shelf"])
    with pytest.raises(ValueError, match=r"class_tile_fractions\['product'\] must be in"):
        DetectorConfig(class_tile_fractions={"product": [0.1]})
    with pytest.raises(ValueError, match="class_tile_fractions names unknown classes"):
        DetectorConfig(class_tile_fractions={"shelf": [0.3]})
    for malformed in ([0.3], {"product": 0.3}):
        with pytest.raises(ValueError, match="must map class names to lists"):
            DetectorConfig(class_tile_fractions=malformed)
    config = DetectorConfig(class_tile_fractions={"product": (0.33,)}, multiscale_classes=["gap"])
    assert DetectorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.tile_fractions_of("product") == (0.33,) and config.tile_fractions_of("gap") == ()


def test_class_tile_fractions_give_each_class_its_own_tile_sizes(tiny_detector, shelf_bgr):
    """With ``class_tile_fractions`` {product: [0.25], gap: [0.6]} in one call, each class's boxes
    are those it gets from the shared ``extra_tile_fractions`` [its fraction] with
    ``multiscale_classes`` [that class] (whose fusion the test above checks by hand)."""
    detector = Detector.load(tiny_detector[0])
    detector.config.whole_image_classes = ["gap"]

    def run(**changes):
        return detector.with_config(**changes).detect(shelf_bgr, score_threshold=0.05, tiled=True)

    both = run(class_tile_fractions={"product": [0.25], "gap": [0.6]})
    plain = run()
    for class_id, (name, fraction) in enumerate((("product", 0.25), ("gap", 0.6))):
        assert detector.config.class_names[class_id] == name
        alone = run(extra_tile_fractions=(fraction,), multiscale_classes=[name])
        got, expected = both[both.class_id == class_id], alone[alone.class_id == class_id]
        np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=1e-3)
        np.testing.assert_allclose(got.confidence, expected.confidence, atol=1e-6)
    products = both[both.class_id == 0]
    assert len(products) > 0 and len(products) != (plain.class_id == 0).sum()
    # With the mirrored view, a class's own tiles run once: the batch holds the first set twice
    # (plain and mirrored) and the own set once.
    from skuaudit.detector.tiling import tile_grid

    height, width = shelf_bgr.shape[:2]
    cfg = detector.config
    first = len(tile_grid(width, height, round(width * cfg.tile_fraction), cfg.tile_overlap)) + 1
    own = len(tile_grid(width, height, round(width * 0.25), cfg.tile_overlap))
    flipped = detector.with_config(
        flip_classes=["product"], class_tile_fractions={"product": [0.25]}
    )
    batches = []
    run_batch = flipped._runner
    flipped._runner = lambda images: batches.append(len(images)) or run_batch(images)
    flipped.detect(shelf_bgr, score_threshold=0.05, tiled=True)
    assert batches == [2 * first + own]
    # A class's own tiles are never smaller than the input: on a photo whose first tile set is
    # already the input size, a fraction below it adds nothing (a shared one would zoom in).
    small = np.ascontiguousarray(shelf_bgr[:200, :300])
    assert round(300 * detector.config.tile_fraction) < detector.config.image_size
    plain_small = detector.detect(small, score_threshold=0.05, tiled=True)
    own = detector.with_config(class_tile_fractions={"product": [0.25]})
    np.testing.assert_array_equal(
        own.detect(small, score_threshold=0.05, tiled=True).xyxy, plain_small.xyxy
    )
    shared = detector.with_config(extra_tile_fractions=(0.25,), multiscale_classes=["product"])
    assert len(shared.detect(small, score_threshold=0.05, tiled=True)) != len(plain_small)


def test_empty_classes_drop_products_inside_a_counted_gap():
    """The shipped model in Dense shelf mode (tiles of a 640x480 frame) on the live browser
    test's rendered shelf boxes the squares of an empty stretch of grid-patterned back wall as
    tiny products inside the gap it finds there. With ``empty_classes`` ["gap"] (shipped) a
    product inside a higher-scored gap that reaches the gap's default threshold is dropped, at
    any threshold asked for; gaps are kept, and the count comes back to the shelf's."""
    from skuaudit.demo import demo_catalogue
    from skuaudit.detector.postprocess import suppress_inside_empty
    from tests.e2e.conftest import products_in_view

    shelf = render_shelf(11, 664, 480, n_rows=3, difficulty=0.5, catalogue=demo_catalogue())
    frame = np.ascontiguousarray(shelf.image_bgr[:, :640])
    truth = int(products_in_view(shelf, 0, 640).sum())
    shipped = Detector.load(REPO_ROOT / "models" / "default")
    assert shipped.config.empty_classes == ["gap"]
    plain = shipped.with_config(empty_classes=[])
    every = plain.detect(frame, score_threshold=0.05, tiled=True)
    kept = shipped.detect(frame, score_threshold=0.05, tiled=True)
    gap = every.class_id == 1
    counted = gap & (every.confidence >= shipped.config.threshold_map()["gap"])
    expected = suppress_inside_empty(
        every.xyxy, every.confidence, gap, containment=0.8, counted=counted
    )
    np.testing.assert_array_equal(kept.xyxy, every[expected].xyxy)
    np.testing.assert_array_equal(kept[kept.class_id == 1].xyxy, every[gap].xyxy)
    # at the default thresholds: the same rule, then the thresholds
    thresholds = shipped.config.default_thresholds()
    np.testing.assert_array_equal(
        shipped.detect(frame, tiled=True).xyxy,
        kept[kept.confidence >= thresholds[kept.class_id]].xyxy,
    )
    products = (shipped.detect(frame, tiled=True).class_id == 0).sum()
    without = (plain.detect(frame, tiled=True).class_id == 0).sum()
    figures = {"truth": truth, "without": without, "with": products}
    assert without > 1.4 * truth and abs(products - truth) <= 0.2 * truth, figures
    # a gap below its threshold drops nothing
    silent = shipped.with_config(class_score_thresholds={"product": 0.3, "gap": 0.99})
    assert len(silent.detect(frame, score_threshold=0.05, tiled=True)) == len(every)


def test_large_tiles_are_cut_from_halvings_of_the_photo(tiny_detector, shelf_bgr):
    """A tile at least twice the model input is cut from the photo halved (once per call) until
    it is less than twice the input; the region it then shows (its edges rounded to the
    halving's pixels, which its boxes are placed by) looks as if shrunk from full size (the same
    area averages, in two steps). A smaller tile is resized from the photo itself."""
    detector = Detector.load(tiny_detector[0])
    size = detector.config.image_size
    large = cv2.resize(shelf_bgr, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    tiles = np.array(
        [
            [0, 0, 2048, 1536],
            [203, 101, 203 + 5 * size, 101 + 5 * size],
            [10, 21, 10 + size, 21 + size],
        ]
    )
    inputs, covered = detector._tile_inputs(large, tiles)
    for tile, got, region, halvings in zip(tiles, inputs, covered, (3, 2, 0), strict=True):
        x1, y1, x2, y2 = region.astype(int)  # whole pixels here: the halvings are exact
        direct = detector._to_input(large[y1:y2, x1:x2])
        assert np.abs(region - tile).max() <= 0.5 * 2**halvings
        if halvings == 0:
            np.testing.assert_array_equal(got, direct)
            np.testing.assert_array_equal(region, tile)
        else:
            assert np.abs(got - direct).mean() < 2.0  # grey levels of 255


@pytest.mark.parametrize("flag", ["--multiscale", "--no-multiscale"])
def test_cli_multiscale_switch(tiny_detector, tmp_path, capsys, shelf_bgr, flag):
    """``--multiscale`` fuses the model's extra tile sizes for every class (and is refused for a
    model without any), ``--no-multiscale`` runs one tile size."""
    from skuaudit.cli import main

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_detector[0], model_dir)
    photo = tmp_path / "shelf.png"
    cv2.imwrite(str(photo), shelf_bgr)
    argv = ["detect", str(photo), "--model", str(model_dir), "--json", "--tiled", flag]
    argv += ["--score-threshold", "0.05"]
    if flag == "--multiscale":
        assert main(argv) == 2
        assert "no extra_tile_fractions" in capsys.readouterr().err
    config_path = model_dir / "config.json"
    saved = json.loads(config_path.read_text())
    saved["detector"].update(
        extra_tile_fractions=[0.25],
        multiscale_classes=["product"],
        class_tile_fractions={"gap": [0.6]},
    )
    config_path.write_text(json.dumps(saved))
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)[0]["detections"]
    detector = Detector.load(model_dir)
    detector.config.multiscale_classes = ["product", "gap"] if flag == "--multiscale" else []
    if flag == "--no-multiscale":  # the model's class_tile_fractions too
        detector.config.class_tile_fractions = {}
    expected = detector.detect(shelf_bgr, score_threshold=0.05, tiled=True)
    assert len(out) == len(expected) > 0
    np.testing.assert_allclose([d["xyxy"] for d in out], expected.xyxy, atol=0.01)
    if flag == "--multiscale":  # differs from the one-size result
        detector.config.multiscale_classes = []
        assert len(detector.detect(shelf_bgr, score_threshold=0.05, tiled=True)) != len(out)


def test_flip_settings_are_checked():
    with pytest.raises(ValueError, match="fusion_iou"):
        DetectorConfig(fusion_iou=1.0)
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="fusion_min_score"):
            DetectorConfig(fusion_min_score=bad)
    with pytest.raises(ValueError, match="flip_classes names unknown classes"):
        DetectorConfig(flip_classes=["shelf"])


@pytest.mark.parametrize("flag, flip", [("--flip", True), ("--no-flip", False)])
def test_cli_flip_switch(tiny_detector, tmp_path, capsys, shelf_bgr, flag, flip):
    from skuaudit.cli import main

    photo = tmp_path / "shelf.png"
    cv2.imwrite(str(photo), shelf_bgr)
    argv = ["detect", str(photo), "--model", str(tiny_detector[0]), "--json", "--tiled", flag]
    assert main([*argv, "--score-threshold", "0.05"]) == 0
    out = json.loads(capsys.readouterr().out)[0]["detections"]
    detector = Detector.load(tiny_detector[0])
    detector.config.flip_classes = ["product", "gap"] if flip else []
    expected = detector.detect(shelf_bgr, score_threshold=0.05, tiled=True)
    assert len(out) == len(expected)
    np.testing.assert_allclose([d["xyxy"] for d in out], expected.xyxy, atol=0.01)


def test_one_detector_serves_several_threads(tiny_detector):
    # The pages share one cached detector between sessions (each Streamlit session and each live
    # stream's worker is a thread); a TFLite interpreter must not be run by two of them at once.
    from concurrent.futures import ThreadPoolExecutor

    detector = Detector.load(tiny_detector[0])
    assert detector.runtime == "tflite"
    images = [render_shelf(seed=40 + i, width=320, height=240).image_bgr for i in range(4)]
    serial = [detector.detect(image, score_threshold=0.05, tiled=True) for image in images]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(
            pool.map(lambda im: detector.detect(im, score_threshold=0.05, tiled=True), images * 4)
        )
    for i, det in enumerate(parallel):
        np.testing.assert_array_equal(det.xyxy, serial[i % 4].xyxy)
        np.testing.assert_array_equal(det.confidence, serial[i % 4].confidence)


def test_video_detector_modes(tiny_detector, shelf_bgr):
    from skuaudit.live import VideoDetector

    detector = Detector.load(tiny_detector[0])
    detector.config.flip_classes = ["gap"]
    detector.config.class_tile_fractions = {"product": [0.25]}
    one_pass, dense = VideoDetector(detector), VideoDetector(detector, dense=True)
    np.testing.assert_array_equal(
        one_pass.detect(shelf_bgr).xyxy, detector.detect(shelf_bgr, tiled=False).xyxy
    )
    # dense: the photo path's tiles without the mirrored view and the extra tile sizes
    plain = detector.with_config(flip_classes=[], multiscale_classes=[], class_tile_fractions={})
    assert plain._runner is detector._runner and detector.config.flip_classes == ["gap"]
    tiled = dense.detect(shelf_bgr)
    np.testing.assert_array_equal(tiled.xyxy, plain.detect(shelf_bgr, tiled=True).xyxy)
    assert dense.model_dir == one_pass.model_dir == tiny_detector[0]

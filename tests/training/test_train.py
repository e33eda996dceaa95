from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skuaudit.datasets.base import Dataset, DatasetError, LabeledImage
from skuaudit.datasets.splits import split_by_image
from skuaudit.training.train import TrainConfig, train_detector


def test_loss_falls_and_progress_events(tiny_detector):
    model_dir, events = tiny_detector
    steps = [e for e in events if e["event"] == "step"]
    assert steps[-1]["loss"] < 0.8 * steps[0]["loss"]
    for key in ("step", "total_steps", "epoch", "loss", "val_loss", "eta_s", "images_per_s"):
        assert key in steps[-1]
    assert any(e["event"] == "eval" and e["val_loss"] is not None for e in events)
    assert events[-1]["event"] == "done"
    for name in ("model.keras", "model.tflite", "labels.json", "config.json", "MODEL_CARD.md"):
        assert (model_dir / name).is_file()
    assert json.loads((model_dir / "labels.json").read_text()) == ["product", "gap"]
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert "| dataset 0 | product |" in card and "Known limits" in card


def _short_run(out_dir: Path, **settings) -> TrainConfig:
    """A run of a few steps that checks plumbing, not learning: batches of 2 whole images
    (no tiles), no augmentation, no TFLite export; ``settings`` add to or override these."""
    quick = dict(batch_size=2, tile=False, augment=False, export_tflite=False)
    return TrainConfig(out_dir=out_dir, **{**quick, **settings})


@pytest.mark.slow
@pytest.mark.usefixtures("eager_steps")
def test_should_stop_and_resume(tmp_path, synth_shelf_dataset):
    small = Dataset(synth_shelf_dataset.classes, synth_shelf_dataset.images[:4])
    base = dict(steps=4, image_size=64, val_fraction=0.0, eval_every=2, log_every=1)
    events: list[dict] = []
    calls = iter([False, False, True])
    train_detector(
        _short_run(tmp_path / "m", **base),
        [small],
        progress_callback=events.append,
        should_stop=lambda: next(calls),
    )
    # polled after each step: the third call stops the run after step 3
    assert events[-1]["event"] == "stopped" and events[-1]["step"] == 3
    assert (tmp_path / "m" / "model.keras").is_file()
    assert json.loads((tmp_path / "m" / "config.json").read_text())["training"]["steps_done"] == 3
    events.clear()
    train_detector(
        _short_run(tmp_path / "m", **base, resume=True), [small], progress_callback=events.append
    )
    assert [e["step"] for e in events if e["event"] == "step"] == [4]
    assert events[-1]["event"] == "done"
    events.clear()
    train_detector(_short_run(tmp_path / "m", **base), [small], progress_callback=events.append)
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4]


def _images(names):
    return [LabeledImage(f"/x/{n}.jpg", 10, 10, np.empty((0, 4)), []) for n in names]


@pytest.mark.parametrize(
    "n, fraction, n_val", [(0, 0.2, 0), (10, 0.2, 2), (10, 0.0, 0), (7, 0.5, 4)]
)
def test_split_by_image_is_deterministic_and_disjoint(n, fraction, n_val):
    ds = Dataset(["gap"], _images([f"im{i}" for i in range(n)]))
    train, val = split_by_image(ds, fraction, seed=0)
    assert len(val) == n_val and len(train) == n - n_val
    assert not {im.path for im in train} & {im.path for im in val}
    shuffled = Dataset(["gap"], list(reversed(ds.images)))
    assert [im.path for im in split_by_image(shuffled, fraction, seed=0)[1]] == [
        im.path for im in val
    ]


def test_unknown_classes_are_rejected(tmp_path):
    ds = Dataset(["empty"], _images(["a"]))
    with pytest.raises(DatasetError, match="class map"):
        train_detector(TrainConfig(out_dir=tmp_path / "m", steps=1), [ds])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--small-photo-crop", "0.5"], "is not LOW,HIGH"),
        (["--small-photo-crop", "a,b"], "is not LOW,HIGH"),
        (["--small-photo-crop", "0.9,0.5"], "small_photo_fraction must satisfy"),
        (["--mosaic", "1.5"], "mosaic must be a probability"),
        (["--crop-aspect", "1.5,0.5"], "aspect must satisfy"),
        (["--ignore-score", "0.1"], "--ignore-score needs --min-score"),
        (["--min-score", "0.4", "--ignore-score", "0.6"], "ignore score must be in"),
    ],
)
def test_train_cli_rejects_bad_crop_settings(tmp_path, capsys, argv, message):
    from skuaudit.datasets.synth import generate_dataset
    from skuaudit.training.cli import cli_main

    generate_dataset(tmp_path / "d", 2, seed=0, formats=("yolo",), width=256, height=192)
    out = tmp_path / "m"
    code = cli_main(
        ["--dataset", str(tmp_path / "d"), "--format", "yolo", "--out", str(out), *argv]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_train_sources_of_one_folder_are_merged(tmp_path):
    """Two --dataset of one folder (human boxes, scored boxes of a labelling model) become one
    data set whose photos label both classes; another folder stays its own."""
    from skuaudit.datasets.synth import generate_dataset
    from skuaudit.training.cli import build_parser, read_sources

    root = generate_dataset(tmp_path / "d", 2, seed=0, formats=("yolo",), width=256, height=192)
    other = generate_dataset(tmp_path / "e", 1, seed=1, formats=("yolo",), width=256, height=192)
    (root / "teacher").mkdir()
    for label in (root / "labels").glob("*.txt"):
        (root / "teacher" / label.name).write_text("0 0.5 0.5 0.2 0.2 0.9\n0 0.2 0.2 0.1 0.1 0.2\n")
    argv = ["--dataset", str(root), "--format", "yolo", "--class-map", "0=ignore,1=gap"]
    argv += ["--dataset", str(root), "--labels", "teacher", "--class-map", "0=product"]
    argv += ["--min-score", "0.4", "--ignore-score", "0.1", "--dataset", str(other)]
    args = build_parser().parse_args([*argv, "--out", str(tmp_path / "m")])
    for source in args.sources:
        source["format"] = "yolo"
    merged, alone = read_sources(args.sources)
    assert len(merged) == 2 and len(alone) == 1
    assert {im.annotated_classes for im in merged.images} == {("product", "gap")}
    names = merged.images[0].class_names
    assert names.count("product") == 1 and "gap" in names
    assert (
        "labels teacher, class map 0=product, score >= 0.4, ignore from 0.1"
        in (merged.meta["words"])
    )
    assert " + " in merged.meta["words"] and " + " not in alone.meta["words"]


@pytest.mark.slow
@pytest.mark.usefixtures("eager_steps")
def test_train_cli_mosaic_and_separate_towers(tmp_path, capsys):
    """``skuaudit train --mosaic P --separate-towers --loss-normalisation class`` trains on
    mosaics of the small photos with one tower for the boxes and one for the classes, each
    class's loss over its own boxes; the model folder's config, weights and card say so, and it
    loads and detects. ``--mosaic`` with ``--no-tile`` is refused. (One run proves the options:
    each run traces a Keras train step.)"""
    import json

    import cv2

    from skuaudit.datasets.synth import generate_dataset
    from skuaudit.detector import Detector
    from skuaudit.training.cli import cli_main

    generate_dataset(tmp_path / "d", 6, seed=0, formats=("yolo",), width=256, height=192)
    out = tmp_path / "m"
    argv = ["--dataset", str(tmp_path / "d"), "--format", "yolo", "--out", str(out)]
    argv += ["--steps", "2", "--batch-size", "2", "--eval-every", "2", "--mosaic", "1"]
    assert cli_main([*argv, "--no-tile"]) == 2
    assert "mosaic needs tile" in capsys.readouterr().err
    argv += ["--image-size", "64", "--head-depth", "1", "--separate-towers"]
    assert cli_main([*argv, "--loss-normalisation", "class"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["training"]["config"]["mosaic"] == 1.0
    assert saved["training"]["config"]["loss_normalisation"] == "class"
    assert saved["detector"]["separate_towers"] is True
    card = (out / "MODEL_CARD.md").read_text()
    assert "mosaic of them with probability 1.0" in card
    assert "per tower (separate box and class towers)" in card
    assert "loss normalised per class" in card
    detector = Detector.load(out)
    assert detector.config.separate_towers
    image = cv2.imread(str(sorted((tmp_path / "d" / "images").glob("*"))[0]))
    assert detector.detect(image, score_threshold=0.0).xyxy.shape[1] == 4


@pytest.mark.usefixtures("eager_steps")
def test_train_cli_fine_tunes_from_a_model_folder(tiny_detector, tmp_path, capsys):
    """``skuaudit train --init-model DIR`` starts from DIR's weights with DIR's architecture
    (input size, width, head, anchors) unless an option grows it, at the fine-tuning learning
    rate; a folder that is not a model is a one-line error."""
    import json

    from skuaudit.datasets.synth import generate_dataset
    from skuaudit.detector import DetectorConfig
    from skuaudit.detector.detector import CONFIG_FILE
    from skuaudit.training.cli import cli_main
    from skuaudit.training.rates import FINE_TUNE_LEARNING_RATE

    generate_dataset(tmp_path / "d", 4, seed=0, formats=("yolo",), width=256, height=192)
    source = DetectorConfig.from_json(tiny_detector[0] / CONFIG_FILE)
    out = tmp_path / "m"
    argv = ["--dataset", str(tmp_path / "d"), "--format", "yolo", "--out", str(out)]
    argv += ["--steps", "2", "--batch-size", "2", "--no-tile", "--eval-every", "2"]
    assert cli_main([*argv, "--init-model", str(tiny_detector[0]), "--head-depth", "3"]) == 0
    saved = json.loads((out / CONFIG_FILE).read_text())
    tuned = DetectorConfig.from_json(out / CONFIG_FILE)
    assert (tuned.image_size, tuned.alpha, tuned.head_depth) == (source.image_size, 0.35, 3)
    assert tuned.anchor_aspect_ratios == source.anchor_aspect_ratios
    assert saved["training"]["config"]["init_model_dir"] == str(tiny_detector[0])
    assert saved["training"]["config"]["learning_rate"] == FINE_TUNE_LEARNING_RATE
    assert "Fine-tuned from" in (out / "MODEL_CARD.md").read_text()

    for folder, message in (
        (tmp_path / "nowhere", "model folder not found"),
        (tmp_path / "d", "config.json is missing"),
    ):
        capsys.readouterr()
        code = cli_main([*argv[:-2], "--out", str(tmp_path / "x"), "--init-model", str(folder)])
        assert code == 2 and message in capsys.readouterr().err
    code = cli_main([*argv, "--init-model", str(tiny_detector[0]), "--alpha", "0.25"])
    assert code == 2 and "alpha at most the run's" in capsys.readouterr().err


@pytest.mark.usefixtures("eager_steps")
def test_fine_tune_from_a_model_folder_with_repeated_data_sets(
    tiny_detector, tmp_path, synth_shelf_dataset
):
    from skuaudit.detector import Detector, load_raw_model

    products_only = Dataset(
        ["product"],
        [
            LabeledImage(im.path, im.width, im.height, im.boxes_xyxy[keep], ["product"] * sum(keep))
            for im in synth_shelf_dataset.images[4:6]
            for keep in [[n == "product" for n in im.class_names]]
        ],
    )
    small = Dataset(synth_shelf_dataset.classes, synth_shelf_dataset.images[:4])
    out = train_detector(
        _short_run(
            tmp_path / "ft",
            steps=2,
            learning_rate=1e-9,  # Adam moves a weight by about this: it stays as loaded
            image_size=128,
            val_fraction=0.0,
            init_model_dir=tiny_detector[0],
            dataset_repeats=[1, 3],
            anchor_size_factor=2.5,  # other anchor sizes keep the head's shape: the weights load
        ),
        [small, products_only],
    )
    saved = json.loads((out / "config.json").read_text())
    info = saved["training"]
    assert info["train_images"] == 4 + 3 * 2
    assert saved["detector"]["anchor_size_factor"] == 2.5
    assert Detector.load(out).anchors_yxyx_norm.shape == (
        Detector.load(tiny_detector[0]).anchors_yxyx_norm.shape
    )
    kernel = lambda m: next(w for w in m.weights if "kernel" in w.path).numpy()  # noqa: E731
    np.testing.assert_allclose(
        kernel(load_raw_model(out)), kernel(load_raw_model(tiny_detector[0])), atol=1e-6
    )
    card = (out / "MODEL_CARD.md").read_text()
    assert "Fine-tuned from" in card and "side 2.5 x stride" in card
    assert "photos too small to tile [1.0, 1.0]" in card


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"image_size": 64}, "image_size 128 / alpha 0.35 do not fit"),
        ({"image_size": 128, "alpha": 0.25}, "alpha at most the run's"),
        ({"dataset_repeats": [0]}, "dataset_repeats"),
        ({"image_size": 128, "anchor_aspect_ratios": (0.5, 1.0, 3.0)}, "heads .* differ"),
        ({"loss_normalisation": "anchor"}, "loss_normalisation"),
        ({"image_size": 128, "head_depth": 1}, "head has 2 convolutions, more than the run's 1"),
    ],
)
def test_bad_fine_tune_settings(tiny_detector, tmp_path, synth_shelf_dataset, settings, message):
    with pytest.raises(ValueError, match=message):
        train_detector(
            TrainConfig(
                out_dir=tmp_path / "ft", steps=1, init_model_dir=tiny_detector[0], **settings
            ),
            [synth_shelf_dataset],
        )


@pytest.mark.parametrize(
    "growth",
    [{"head_depth": 4}, {"separate_towers": True}, {"head_depth": 3, "separate_towers": True}],
)
def test_grown_head_starts_from_the_same_outputs(tiny_detector, growth):
    """Fine-tuning into a deeper head and/or separate box and class towers copies every layer
    (a shared tower into both towers) and adds identity convolutions: the new model's raw outputs
    equal the source's before any step."""
    from dataclasses import replace

    from skuaudit.detector import DetectorConfig, build_raw_model, load_raw_model
    from skuaudit.detector.detector import CONFIG_FILE
    from skuaudit.training.warm_start import load_initial_weights

    source = DetectorConfig.from_json(tiny_detector[0] / CONFIG_FILE)
    assert not source.separate_towers
    grown = replace(source, **growth)
    model = build_raw_model(grown)
    assert len(model.weights) > len(load_raw_model(tiny_detector[0]).weights)
    if grown.separate_towers:
        names = {layer.name for layer in model.layers}
        assert {"head_box_conv0", "head_class_conv0"} <= names and "head_conv0" not in names
    load_initial_weights(model, grown, tiny_detector[0])
    image = np.random.default_rng(0).uniform(0, 255, (2, 128, 128, 3)).astype(np.float32)
    expected = load_raw_model(tiny_detector[0])(image, training=False).numpy()
    np.testing.assert_allclose(model(image, training=False).numpy(), expected, atol=1e-4)


@pytest.mark.usefixtures("eager_steps")
def test_widened_backbone_starts_from_the_same_outputs(
    tiny_detector, synth_shelf_dataset, tmp_path
):
    """Fine-tuning into a wider backbone (alpha 0.35 -> 0.5, about twice the weights there)
    keeps the source's channels and zeroes what the new channels send to them: the raw outputs
    equal the source's before any step, although the new channels compute something; a few
    training steps then move those zeros."""
    from dataclasses import replace

    import cv2
    import keras

    from skuaudit.detector import DetectorConfig, build_raw_model, load_raw_model
    from skuaudit.detector.detector import CONFIG_FILE
    from skuaudit.training.train import train_detector
    from skuaudit.training.warm_start import _leaf_layers, load_initial_weights

    source = DetectorConfig.from_json(tiny_detector[0] / CONFIG_FILE)
    wider = replace(source, alpha=0.5)
    model = build_raw_model(wider)
    narrow = load_raw_model(tiny_detector[0])
    assert model.count_params() > 1.3 * narrow.count_params()
    load_initial_weights(model, wider, tiny_detector[0])
    image = cv2.imread(str(synth_shelf_dataset.images[0].path))
    batch = cv2.resize(image, (128, 128))[None, :, :, ::-1].astype(np.float32)
    np.testing.assert_allclose(
        model(batch, training=False).numpy(), narrow(batch, training=False).numpy(), atol=1e-4
    )
    # The new channels are alive: the stride-16 feature map differs from zero past the old width.
    tap = keras.Model(model.input, model.get_layer("fpn_lateral4").input)
    old_width = narrow.get_layer("fpn_lateral4").input.shape[-1]
    assert np.abs(tap(batch, training=False).numpy()[..., old_width:]).max() > 1e-3

    out = train_detector(
        _short_run(
            tmp_path / "wider",
            steps=3,
            image_size=128,
            alpha=0.5,
            eval_every=3,
            eval_max_images=1,
            init_model_dir=tiny_detector[0],
        ),
        [synth_shelf_dataset],
    )
    trained = load_raw_model(out)
    lateral = trained.get_layer("fpn_lateral4").get_weights()[0]
    assert DetectorConfig.from_json(out / CONFIG_FILE).alpha == 0.5
    assert np.abs(lateral[:, :, old_width:]).max() > 0  # the zeros moved
    assert len(_leaf_layers(trained)) > len(trained.layers)


def test_grown_anchor_shapes_start_as_copies_of_their_nearest_source_anchor(
    tiny_detector, synth_shelf_dataset
):
    """Fine-tuning into more anchor aspect ratios (the source's, then 8.0 and 0.2): the old
    anchors' outputs are copied, and each new anchor decodes to the same box with the same
    scores as the source anchor of its scale with the nearest ratio (4.0 and 0.33), so the
    detections after NMS are the source's before any step."""
    from dataclasses import replace

    import cv2

    from skuaudit.detector import Detector, DetectorConfig, build_raw_model, load_raw_model
    from skuaudit.detector.boxes import decode_deltas, make_anchors
    from skuaudit.detector.detector import CONFIG_FILE
    from skuaudit.training.warm_start import load_initial_weights

    source = DetectorConfig.from_json(tiny_detector[0] / CONFIG_FILE)
    old = source.anchor_aspect_ratios
    grown = replace(source, anchor_aspect_ratios=(*old, 8.0, 0.2))
    model = build_raw_model(grown)
    load_initial_weights(model, grown, tiny_detector[0])
    image = cv2.imread(str(synth_shelf_dataset.images[0].path))
    batch = cv2.resize(image, (128, 128))[None, :, :, ::-1].astype(np.float32)
    before = load_raw_model(tiny_detector[0])(batch, training=False).numpy()[0]
    after = model(batch, training=False).numpy()[0]
    n_old, n_new, n_scales = len(old), len(old) + 2, len(source.anchor_scales)
    before = before.reshape(-1, n_scales, n_old, before.shape[-1])
    after = after.reshape(-1, n_scales, n_new, after.shape[-1])
    np.testing.assert_allclose(after[:, :, :n_old], before, atol=1e-4)
    anchors_old = make_anchors(source.anchor_spec).reshape(-1, n_scales, n_old, 4)
    anchors_new = make_anchors(grown.anchor_spec).reshape(-1, n_scales, n_new, 4)
    variance = source.box_variance
    for new_index, nearest in ((n_old, old.index(4.0)), (n_old + 1, old.index(0.33))):
        got = decode_deltas(after[:, :, new_index, :4], anchors_new[:, :, new_index], variance)
        want = decode_deltas(before[:, :, nearest, :4], anchors_old[:, :, nearest], variance)
        np.testing.assert_allclose(got, want, atol=1e-4)
        np.testing.assert_allclose(after[:, :, new_index, 4:], before[:, :, nearest, 4:], atol=1e-4)
    plain = Detector.load(tiny_detector[0], runtime="tf").detect(image, score_threshold=0.05)
    again = Detector.from_keras(model, grown).detect(image, score_threshold=0.05)
    assert len(plain) > 0 and len(again) == len(plain)
    np.testing.assert_allclose(again.xyxy, plain.xyxy, atol=0.5)
    np.testing.assert_allclose(again.confidence, plain.confidence, atol=1e-4)


@pytest.mark.parametrize("ratios", [(8.0, 0.33, 0.75, 1.6, 4.0), (0.33, 0.75, 1.6)])
def test_anchor_ratios_can_only_grow_after_the_source_ones(tiny_detector, ratios):
    """New anchor shapes go after the source's, and none can be dropped: otherwise the head's
    outputs have no source anchor to start from. (The same number of shapes with other ratios is
    copied as is; stage C of the default model changed its ratios that way.)"""
    from dataclasses import replace

    from skuaudit.detector import DetectorConfig, build_raw_model
    from skuaudit.detector.detector import CONFIG_FILE
    from skuaudit.training.warm_start import load_initial_weights

    source = DetectorConfig.from_json(tiny_detector[0] / CONFIG_FILE)
    changed = replace(source, anchor_aspect_ratios=ratios)
    with pytest.raises(ValueError, match="pass the same anchor_aspect_ratios"):
        load_initial_weights(build_raw_model(changed), changed, tiny_detector[0])


def test_separate_towers_cannot_be_merged_into_a_shared_one(tiny_detector, tmp_path):
    import json
    import shutil

    from skuaudit.detector import DetectorConfig, build_raw_model
    from skuaudit.detector.detector import CONFIG_FILE
    from skuaudit.training.warm_start import load_initial_weights

    source = tmp_path / "towers"
    shutil.copytree(tiny_detector[0], source)
    raw = json.loads((source / CONFIG_FILE).read_text())
    raw["detector"]["separate_towers"] = True
    (source / CONFIG_FILE).write_text(json.dumps(raw))
    shared = DetectorConfig.from_json(tiny_detector[0] / CONFIG_FILE)
    with pytest.raises(ValueError, match="separate box and class towers, the run shares one"):
        load_initial_weights(build_raw_model(shared), shared, source)


def test_image_normalisation_weighs_a_sparse_image_as_much_as_a_dense_one():
    """Batch normalisation (RetinaNet) lets a dense image's positives drown a sparse image's loss;
    per-image normalisation gives each image the same weight."""
    import tensorflow as tf

    from skuaudit.detector import detection_loss

    anchors, classes = 100, 2
    state = np.zeros((2, anchors), np.float32)
    state[0, :50] = 1  # dense image: 50 positive anchors, every one well predicted
    state[1, :2] = 1  # sparse image: 2 positive anchors, badly predicted
    cls_t = np.zeros((2, anchors, classes), np.float32)
    cls_t[0, :50, 0] = 1
    cls_t[1, :2, 1] = 1
    targets = tf.constant(
        np.concatenate([np.zeros((2, anchors, 4), np.float32), cls_t, state[..., None]], -1)
    )
    logits = np.full((2, anchors, classes), -6.0, np.float32)
    logits[0, :50, 0] = 6.0
    boxes = np.zeros((2, anchors, 4), np.float32)
    boxes[1, :2] = 2.0  # the sparse image's box error
    predictions = tf.constant(np.concatenate([boxes, logits], -1))
    mask = tf.ones((2, classes))
    by_batch = detection_loss(targets, predictions, mask, classes, normalisation="batch")
    by_image = detection_loss(targets, predictions, mask, classes, normalisation="image")
    # Huber(2.0, delta 1) = 1.5 per coordinate, 4 coordinates, 2 anchors = 12 in the sparse image.
    assert float(by_batch[1]) == pytest.approx(12 / 52, rel=1e-5)
    assert float(by_image[1]) == pytest.approx((0 / 50 + 12 / 2) / 2, rel=1e-5)
    assert float(by_image[0]) > 5 * float(by_batch[0])
    with pytest.raises(ValueError, match="normalisation"):
        detection_loss(targets, predictions, mask, classes, normalisation="anchors")


def _focal(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The focal loss of ``detection_loss`` (alpha 0.25, gamma 2), in numpy."""
    prob = 1 / (1 + np.exp(-logits))
    ce = -(target * np.log(prob) + (1 - target) * np.log(1 - prob))
    p_t = target * prob + (1 - target) * (1 - prob)
    return (target * 0.25 + (1 - target) * 0.75) * (1 - p_t) ** 2 * ce


def test_class_normalisation_weighs_a_few_gaps_as_much_as_many_products():
    """On a shelf photo with 50 products and 2 gaps, per-image normalisation divides the gaps'
    loss by all 52 positives; per-class normalisation divides each class by its own."""
    import tensorflow as tf

    from skuaudit.detector import detection_loss

    anchors, classes = 100, 2
    state = np.zeros((1, anchors), np.float32)
    state[0, :52] = 1
    cls_t = np.zeros((1, anchors, classes), np.float32)
    cls_t[0, :50, 0] = 1  # products, well predicted
    cls_t[0, 50:52, 1] = 1  # gaps, missed
    logits = np.full((1, anchors, classes), -6.0, np.float32)
    logits[0, :50, 0] = 6.0
    targets = tf.constant(
        np.concatenate([np.zeros((1, anchors, 4), np.float32), cls_t, state[..., None]], -1)
    )
    predictions = tf.constant(np.concatenate([np.zeros((1, anchors, 4), np.float32), logits], -1))
    mask = tf.ones((1, classes))
    focal = _focal(logits[0].astype(np.float64), cls_t[0]).sum(axis=0)  # per class
    by_image = detection_loss(targets, predictions, mask, classes, normalisation="image")
    by_class = detection_loss(targets, predictions, mask, classes, normalisation="class")
    assert float(by_image[0]) == pytest.approx(focal.sum() / 52, rel=1e-4)
    assert float(by_class[0]) == pytest.approx(focal[0] / 50 + focal[1] / 2, rel=1e-4)
    assert float(by_class[0]) > 20 * float(by_image[0])  # the two gaps now count
    # A class masked out (not labelled on the photo) adds nothing either way.
    only_products = tf.constant([[1.0, 0.0]])
    masked = detection_loss(targets, predictions, only_products, classes, normalisation="class")
    assert float(masked[0]) == pytest.approx(focal[0] / 50, rel=1e-4)


@pytest.mark.slow
@pytest.mark.usefixtures("eager_steps")
def test_train_on_a_dataset_with_ignore_boxes(tmp_path, synth_shelf_dataset):
    """A class mapped to ``ignore`` trains (the batches and the encoder take its id) and
    does not become a detector class."""
    from skuaudit.detections import IGNORE_CLASS

    images = [
        LabeledImage(
            im.path,
            im.width,
            im.height,
            im.boxes_xyxy,
            [IGNORE_CLASS if i % 3 == 0 else name for i, name in enumerate(im.class_names)],
        )
        for im in synth_shelf_dataset.images[:4]
    ]
    out = train_detector(
        _short_run(tmp_path / "ignore", steps=2, image_size=64, val_fraction=0.5, augment=True),
        [Dataset(["product", "gap", IGNORE_CLASS], images)],
    )
    saved = json.loads((out / "config.json").read_text())
    assert saved["detector"]["class_names"] == ["product", "gap"]
    assert np.isfinite(saved["training"]["val_loss"])


def test_harvest_product_crops_cuts_confident_products(tmp_path, synth_shelf_dataset):
    import cv2

    from skuaudit.detector import Detector
    from skuaudit.training.harvest import harvest_product_crops

    detector = Detector.load(Path(__file__).resolve().parents[2] / "models" / "default")
    photos = [im.path for im in synth_shelf_dataset.images[:2]]
    n = harvest_product_crops(detector, photos, tmp_path / "crops", score_threshold=0.7)
    files = sorted((tmp_path / "crops").glob("*.png"))
    assert n == len(files) >= 20
    assert {f.name.rsplit("_", 1)[0] for f in files} == {p.stem for p in photos}
    sides = [min(cv2.imread(str(f)).shape[:2]) for f in files]
    assert min(sides) >= 24
    bigger = harvest_product_crops(
        detector, photos, tmp_path / "more", score_threshold=0.7, min_side_px=60
    )
    assert bigger < n

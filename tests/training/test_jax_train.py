"""The JAX trainer (``training.jax_train``) and the backend-agnostic network pieces it uses.

The TensorFlow side runs in this process; the JAX training itself runs in a subprocess with
``KERAS_BACKEND=jax`` (the backend is fixed when Keras is first imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skuaudit.datasets.base import LabeledImage
from skuaudit.detections import IGNORE_ID
from skuaudit.detector import DetectorConfig, make_anchors, network
from skuaudit.training import jax_train
from skuaudit.training.jax_train import Variant, learning_rate_at

REPO = Path(__file__).resolve().parents[2]
RATIOS = (0.33, 0.75, 1.6, 4.0)


def _random_boxes(rng, batch: int, slots: int, real: list[int]):
    yx = rng.uniform(0, 0.8, (batch, slots, 2))
    hw = rng.uniform(0.02, 0.3, (batch, slots, 2))
    boxes = np.concatenate([yx, np.minimum(yx + hw, 1.0)], -1).astype(np.float32)
    ids = rng.integers(0, 2, (batch, slots)).astype(np.int32)
    for b, n in enumerate(real):
        boxes[b, n:] = 0.0
        ids[b, n:] = -1
    return boxes, ids


def test_encode_targets_equals_the_tensorflow_encoder():
    from skuaudit.detector.model import LabelEncoder

    config = DetectorConfig(image_size=320, anchor_aspect_ratios=RATIOS)
    anchors = make_anchors(config.anchor_spec)
    boxes, ids = _random_boxes(np.random.default_rng(0), 4, 20, [20, 7, 0, 1])
    boxes[1, 3] = [0.5, 0.5, 0.5, 0.6]  # zero height: not a box
    expected = LabelEncoder(anchors, 2, config.box_variance).encode_batch(boxes, ids).numpy()
    got = np.asarray(network.encode_targets(boxes, ids, anchors, 2, config.box_variance))
    assert got.shape == expected.shape == (4, len(anchors), 7)
    np.testing.assert_array_equal(got[..., -1], expected[..., -1])  # positive/negative/ignored
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got[2, :, -1] == 0).all()  # an image without boxes: every anchor negative
    assert (got[0, :, -1] == 1).sum() >= 20  # every box claims at least its best anchor


def test_encode_targets_gives_a_shared_best_anchor_to_the_later_box():
    config = DetectorConfig(image_size=320, anchor_aspect_ratios=RATIOS)
    anchors = make_anchors(config.anchor_spec)
    box = anchors[500] + np.array([0.001, 0.001, 0.0, 0.0], np.float32)
    boxes = np.stack([box, box])[None].astype(np.float32)
    got = np.asarray(network.encode_targets(boxes, np.array([[0, 1]], np.int32), anchors, 2))
    assert got[0, 500, -1] == 1
    np.testing.assert_array_equal(got[0, 500, 4:6], [0.0, 1.0])  # class of box 1


@pytest.mark.parametrize("normalisation", ["image", "batch"])
def test_detection_loss_equals_the_tensorflow_loss(normalisation):
    from skuaudit.detector.model import LabelEncoder, detection_loss

    config = DetectorConfig(image_size=320, anchor_aspect_ratios=RATIOS)
    anchors = make_anchors(config.anchor_spec)
    rng = np.random.default_rng(1)
    boxes, ids = _random_boxes(rng, 3, 12, [12, 5, 0])
    targets = LabelEncoder(anchors, 2, config.box_variance).encode_batch(boxes, ids).numpy()
    predictions = rng.normal(0, 2, (3, len(anchors), 6)).astype(np.float32)
    mask = np.array([[1, 1], [0, 1], [1, 0]], np.float32)
    expected = [
        float(v) for v in detection_loss(targets, predictions, mask, 2, normalisation=normalisation)
    ]
    got = [
        float(v)
        for v in network.detection_loss(targets, predictions, mask, 2, normalisation=normalisation)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert all(v > 0 for v in got)
    with pytest.raises(ValueError, match="normalisation"):
        network.detection_loss(targets, predictions, mask, 2, normalisation="anchor")


def test_learning_rate_warms_up_then_follows_a_cosine_over_the_budget():
    assert learning_rate_at(1e-3, 0, 100, 0.0) == pytest.approx(1e-5)
    assert learning_rate_at(1e-3, 99, 100, 0.0) == pytest.approx(1e-3)
    assert learning_rate_at(1e-3, 500, 100, 0.5) == pytest.approx(5e-4)
    assert learning_rate_at(1e-3, 500, 100, 1.0) == pytest.approx(0.0)
    assert learning_rate_at(1e-3, 500, 100, 2.0) == pytest.approx(0.0)  # past the budget


def test_variant_parsing_and_validation(tmp_path):
    assert Variant.parse("wide:1.0:3e-3") == Variant("wide", 1.0, 3e-3, None)
    assert Variant.parse(f"f:0.35:1e-3:{tmp_path}/f.npz").init_weights == tmp_path / "f.npz"
    for bad in ("wide:1.0", "wide:x:1e-3", "a:b:c:d:e"):
        with pytest.raises(ValueError):
            Variant.parse(bad)
    with pytest.raises(ValueError, match="name"):
        Variant("../evil", 1.0, 1e-3)
    with pytest.raises(ValueError, match="positive"):
        Variant("ok", 0.0, 1e-3)


def test_weights_file_round_trip_and_mismatch(tmp_path):
    from skuaudit.detector.network import build_raw_model

    config = DetectorConfig(image_size=96, alpha=0.35, anchor_aspect_ratios=RATIOS)
    model = build_raw_model(config)
    path = jax_train.save_weights(model, config, tmp_path / "w.npz", {"note": "test"})
    meta, arrays = jax_train.read_weights(path)
    assert meta["detector"]["alpha"] == 0.35 and meta["info"] == {"note": "test"}
    assert len(arrays) == len(model.weights)

    other = build_raw_model(config)  # new random weights
    x = np.random.default_rng(2).uniform(0, 255, (1, 96, 96, 3)).astype(np.float32)
    assert not np.allclose(other(x), model(x))
    jax_train.load_weights(other, path)
    np.testing.assert_array_equal(other(x), model(x))

    wider = build_raw_model(DetectorConfig(image_size=96, alpha=0.5, anchor_aspect_ratios=RATIOS))
    with pytest.raises(ValueError, match="do not match"):
        jax_train.load_weights(wider, path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a skuaudit weights file"):
        jax_train.read_weights(tmp_path / "bad.npz")


def test_model_folder_from_weights_of_a_model_folder(tiny_detector, tmp_path):
    from skuaudit.detector import Detector, load_raw_model

    model_dir, _ = tiny_detector
    weights = jax_train.export_model_weights(model_dir, tmp_path / "tiny.npz")
    out = jax_train.model_folder_from_weights(weights, tmp_path / "folder", with_tflite=False)
    x = np.random.default_rng(3).uniform(0, 255, (2, 128, 128, 3)).astype(np.float32)
    np.testing.assert_allclose(load_raw_model(out)(x), load_raw_model(model_dir)(x), atol=1e-5)
    detector = Detector.load(out)
    assert detector.config.image_size == 128
    assert (out / "MODEL_CARD.md").is_file() and not (out / "model.tflite").exists()


def test_batch_stream_yields_masked_batches_and_fixed_validation(synth_shelf_dataset, tmp_path):
    from skuaudit.datasets.tfdata import TileSpec

    gap_only = [
        LabeledImage(im.path, im.width, im.height, im.boxes_xyxy, im.class_names, ("gap",))
        for im in synth_shelf_dataset.images[:2]
    ]
    items = list(synth_shelf_dataset.images[:4]) + gap_only
    stream = jax_train.BatchStream(
        items,
        4,
        ["product", "gap"],
        image_size=96,
        batch_size=3,
        max_boxes=50,
        tile=TileSpec(),
        augment=True,
        seed=0,
        workers=2,
    )
    try:
        images, boxes, ids, masks = next(stream)
        assert images.shape == (3, 96, 96, 3) and images.dtype == np.uint8
        assert boxes.shape == (3, 50, 4) and ids.shape == (3, 50) and masks.shape == (3, 2)
        assert (masks == 1).all()  # the first four items label both classes
        assert ((boxes >= 0) & (boxes <= 1)).all() and (ids >= 0).any()
        first = stream.fixed_batches([4, 5, 0])
        again = stream.fixed_batches([4, 5, 0])
        assert [len(b[0]) for b in first] == [3]
        np.testing.assert_array_equal(first[0][0], again[0][0])  # same crops every evaluation
        np.testing.assert_array_equal(first[0][3], [[0, 1], [0, 1], [1, 1]])
    finally:
        stream.close()


def test_batch_stream_workers_mosaic_training_photos_with_training_photos_only(tmp_path):
    """A worker's mosaic partners come from the training items: validation items (after
    ``n_train``) get none and are never pasted into a training mosaic."""
    from skuaudit.datasets.tfdata import TileSpec

    items = [
        LabeledImage(tmp_path / f"{i}.png", 416, 416, [[0, 0, 9, 9]], ["gap"], ("gap",))
        for i in range(6)
    ]
    jax_train._init_worker(items, 4, ["product", "gap"], 96, 50, TileSpec(mosaic=0.5), True, 0)
    partners = jax_train._WORKER["partners"]
    assert [[p.path for p in group] for group in partners] == [
        [item.path for item in items[:4]]
    ] * 4 + [[], []]


def test_train_variants_refuses_the_tensorflow_backend(synth_shelf_dataset, tmp_path):
    from skuaudit.training.train import TrainConfig

    with pytest.raises(RuntimeError, match="KERAS_BACKEND=jax"):
        jax_train.train_variants(
            [Variant("a")],
            [synth_shelf_dataset],
            TrainConfig(out_dir=tmp_path),
            budget_s=10,
            out_dir=tmp_path,
        )


def test_jax_training_run_ends_in_a_tensorflow_model_folder(synth_shelf_dataset, tmp_path):
    """Train two variants a few steps on JAX (one from a TensorFlow model's weights), then build
    TensorFlow model folders from the weights: the JAX and TensorFlow networks agree."""
    pytest.importorskip("jax")
    from skuaudit.detector import Detector, load_raw_model
    from skuaudit.detector.network import build_raw_model

    data = tmp_path / "data"
    data.mkdir()
    (data / "images.json").write_text(
        json.dumps(
            [
                {
                    "path": str(im.path),
                    "w": im.width,
                    "h": im.height,
                    "boxes": np.asarray(im.boxes_xyxy).tolist(),
                    "classes": list(im.class_names),
                }
                for im in synth_shelf_dataset.images[:8]
            ]
        )
    )
    config = DetectorConfig(
        image_size=96, alpha=0.35, anchor_aspect_ratios=RATIOS, head_depth=2, separate_towers=True
    )
    init = jax_train.save_weights(build_raw_model(config), config, tmp_path / "init.npz")
    probe = np.random.default_rng(4).uniform(0, 255, (2, 96, 96, 3)).astype(np.float32)
    np.save(tmp_path / "probe.npy", probe)
    runner = f"""
import json, sys, numpy as np
sys.path.insert(0, {str(REPO)!r})
import keras
from skuaudit.datasets.base import Dataset, LabeledImage
from skuaudit.detector.config import DetectorConfig
from skuaudit.detector.network import build_raw_model
from skuaudit.training.jax_train import Variant, train_variants, load_weights, read_weights
from skuaudit.training.train import TrainConfig
rows = json.load(open({str(data / "images.json")!r}))
images = [LabeledImage(r["path"], r["w"], r["h"], np.array(r["boxes"], np.float32).reshape(-1, 4),
                       r["classes"]) for r in rows]
config = TrainConfig(out_dir={str(tmp_path / "run")!r}, batch_size=2, image_size=96,
                     val_fraction=0.25, val_batches=1, max_boxes=60, tile=True,
                     anchor_aspect_ratios={RATIOS!r}, head_depth=2, separate_towers=True)
events = []
train_variants([Variant("a", 0.35, 1e-3, {str(init)!r}), Variant("b", 0.5, 3e-3)],
               [Dataset(["product", "gap"], images)], config, budget_s=600,
               out_dir={str(tmp_path / "run")!r}, workers=2, warmup_steps=2, log_every=2,
               max_steps=4, progress_callback=events.append)
probe = np.load({str(tmp_path / "probe.npy")!r})
for name in ("a", "b"):
    meta, _ = read_weights(f"{tmp_path / "run"}/{{name}}.last.npz")
    model = build_raw_model(DetectorConfig.from_dict(meta["detector"]))
    load_weights(model, f"{tmp_path / "run"}/{{name}}.last.npz")
    np.save(f"{tmp_path / "run"}/{{name}}.probe.npy", np.asarray(model(probe, training=False)))
print(json.dumps({{"backend": keras.backend.backend(), "events": [e["event"] for e in events],
                  "losses": [e["a"]["loss"] for e in events if e["event"] == "step"]}}))
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", runner], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert report["events"][:2] == ["start", "compiled"]
    assert report["events"].count("final") == 2 and len(report["losses"]) == 2
    assert all(np.isfinite(report["losses"]))
    run = tmp_path / "run"
    progress = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    assert progress[-1]["event"] == "final" and progress[-1]["step"] == 4

    for name, alpha in (("a", 0.35), ("b", 0.5)):
        meta, _ = jax_train.read_weights(run / f"{name}.last.npz")
        assert meta["info"]["steps_done"] == 4 and meta["info"]["images_seen"] == 8
        assert meta["info"]["framework"].startswith("Keras ") and "JAX" in meta["info"]["framework"]
        out = jax_train.model_folder_from_weights(
            run / f"{name}.last.npz", tmp_path / name, with_tflite=False
        )
        tf_outputs = np.asarray(load_raw_model(out)(probe, training=False))
        np.testing.assert_allclose(tf_outputs, np.load(run / f"{name}.probe.npy"), atol=1e-4)
        assert Detector.load(out).config.alpha == alpha
        card = (out / "MODEL_CARD.md").read_text()
        assert "JAX" in card and "train_on_accelerator" in card
    # variant a started from init.npz and moved away from it
    init_model = build_raw_model(config)
    jax_train.load_weights(init_model, init)
    assert not np.allclose(np.asarray(init_model(probe)), np.load(run / "a.probe.npy"))


def test_batch_stream_reports_an_unreadable_image(tmp_path):
    from skuaudit.datasets.base import DatasetError

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    item = LabeledImage(broken, 64, 64, np.zeros((0, 4), np.float32), [])
    stream = jax_train.BatchStream(
        [item],
        1,
        ["product", "gap"],
        image_size=64,
        batch_size=1,
        max_boxes=4,
        tile=None,
        augment=False,
        seed=0,
        workers=1,
    )
    try:
        with pytest.raises(DatasetError, match="cannot decode"):
            next(stream)
    finally:
        stream.close()


def test_batch_stream_does_not_run_the_parents_main_file(
    synth_shelf_dataset, tmp_path, monkeypatch
):
    """Streamlit's AppTest leaves ``__main__`` pointing at a page script; workers must not run it."""
    import types

    script = tmp_path / "page.py"
    script.write_text("raise SystemExit('the parent main file ran in a data worker')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    stream = jax_train.BatchStream(
        list(synth_shelf_dataset.images[:2]),
        2,
        ["product", "gap"],
        image_size=64,
        batch_size=2,
        max_boxes=10,
        tile=None,
        augment=False,
        seed=0,
        workers=1,
    )
    try:
        assert next(stream)[0].shape == (2, 64, 64, 3)
    finally:
        stream.close()


def test_encode_targets_equals_the_tensorflow_encoder_with_ignore_boxes():
    """Ignore boxes (``IGNORE_ID``) turn anchors from positive to ignored in both encoders alike."""
    from skuaudit.detector.model import LabelEncoder

    config = DetectorConfig(image_size=320, anchor_aspect_ratios=RATIOS)
    anchors = make_anchors(config.anchor_spec)
    boxes, ids = _random_boxes(np.random.default_rng(1), 3, 12, [12, 5, 0])
    ids[:, ::3] = np.where(ids[:, ::3] >= 0, IGNORE_ID, -1)
    expected = LabelEncoder(anchors, 2, config.box_variance).encode_batch(boxes, ids).numpy()
    got = np.asarray(network.encode_targets(boxes, ids, anchors, 2, config.box_variance))
    np.testing.assert_array_equal(got[..., -1], expected[..., -1])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    as_objects = np.asarray(
        network.encode_targets(boxes, np.abs(ids), anchors, 2, config.box_variance)
    )
    turned = (as_objects[..., -1] == 1) & (got[..., -1] == -1)
    assert turned.sum() >= 4  # at least the best anchor of each of the 4 ignore boxes
    assert (got[..., -1] == 1).sum() < (as_objects[..., -1] == 1).sum()
    assert (got[turned][:, 4:6] == 0).all()

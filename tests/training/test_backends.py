"""One training loop on two Keras backends: the targets and loss in ``keras.ops``, and a run of
``train_detector`` on JAX whose model folder TensorFlow loads and agrees with.

The TensorFlow side runs in this process; the JAX run in a subprocess with ``KERAS_BACKEND=jax``
(the backend is fixed when Keras is first imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skuaudit.detector import DetectorConfig, make_anchors, network

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


def test_encode_targets_of_a_batch_are_those_of_each_image():
    """Padding and batching change nothing: each image's targets are encoded on their own."""
    config = DetectorConfig(image_size=320, anchor_aspect_ratios=RATIOS)
    anchors = make_anchors(config.anchor_spec)
    boxes, ids = _random_boxes(np.random.default_rng(0), 4, 20, [20, 7, 0, 1])
    boxes[1, 3] = [0.5, 0.5, 0.5, 0.6]  # zero height: not a box
    got = np.asarray(network.encode_targets(boxes, ids, anchors, 2, config.box_variance))
    assert got.shape == (4, len(anchors), 7)
    for b in range(4):
        alone = network.encode_targets(boxes[b : b + 1, :20], ids[b : b + 1, :20], anchors, 2)
        np.testing.assert_allclose(got[b], np.asarray(alone)[0], atol=1e-6)
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


@pytest.mark.slow
def test_train_detector_on_jax_writes_a_folder_tensorflow_agrees_with(
    tiny_detector, synth_shelf_dataset, tmp_path
):
    """The same ``train_detector`` on JAX (with the shipped model's per-class loss), fine-tuning
    a TensorFlow-trained folder: its ``model.keras`` loads on TensorFlow and gives the outputs
    the JAX network gave."""
    pytest.importorskip("jax")
    from skuaudit.detector import load_raw_model

    rows = [
        {
            "path": str(im.path),
            "w": im.width,
            "h": im.height,
            "boxes": np.asarray(im.boxes_xyxy).tolist(),
            "classes": list(im.class_names),
        }
        for im in synth_shelf_dataset.images[:6]
    ]
    (tmp_path / "images.json").write_text(json.dumps(rows))
    probe = np.random.default_rng(4).uniform(0, 255, (2, 128, 128, 3)).astype(np.float32)
    np.save(tmp_path / "probe.npy", probe)
    out = tmp_path / "jax-model"
    runner = f"""
import json, sys, numpy as np
sys.path.insert(0, {str(REPO)!r})
import keras
from skuaudit.datasets.base import Dataset, LabeledImage
from skuaudit.training.train import TrainConfig, train_detector
from skuaudit.training.warm_start import architecture_of
rows = json.load(open({str(tmp_path / "images.json")!r}))
images = [LabeledImage(r["path"], r["w"], r["h"], np.array(r["boxes"], np.float32).reshape(-1, 4),
                       r["classes"]) for r in rows]
events = []
config = TrainConfig(out_dir={str(out)!r}, steps=4, batch_size=2, eval_every=2, log_every=1,
                     val_fraction=0.34, val_batches=1, max_boxes=60, tile=False,
                     export_tflite=False, init_model_dir={str(tiny_detector[0])!r},
                     learning_rate=1e-2, loss_normalisation="class",
                     **architecture_of({str(tiny_detector[0])!r}))
train_detector(config, [Dataset(["product", "gap"], images)], progress_callback=events.append)
from skuaudit.detector.network import build_raw_model
model = keras.saving.load_model({str(out / "model.keras")!r})
probe = np.load({str(tmp_path / "probe.npy")!r})
np.save({str(tmp_path / "jax.npy")!r}, np.asarray(model(probe, training=False)))
print(json.dumps({{"backend": keras.backend.backend(), "events": [e["event"] for e in events],
                  "losses": [e["loss"] for e in events if e["event"] == "step"]}}))
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", runner], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert report["events"].count("step") == 4 and report["events"][-1] == "done"
    assert report["events"].count("eval") == 2
    assert all(np.isfinite(report["losses"]))
    saved = json.loads((out / "config.json").read_text())
    assert saved["training"]["framework"].endswith("on jax")
    assert saved["training"]["steps_done"] in (2, 4)  # the last improving evaluation
    assert not (out / "model.tflite").exists()  # TFLite needs TensorFlow: finish writes it
    on_tensorflow = np.asarray(load_raw_model(out)(probe, training=False))
    np.testing.assert_allclose(on_tensorflow, np.load(tmp_path / "jax.npy"), atol=1e-4)
    start = np.asarray(load_raw_model(tiny_detector[0])(probe, training=False))
    assert not np.allclose(start, on_tensorflow, atol=1e-3)  # trained away from the start

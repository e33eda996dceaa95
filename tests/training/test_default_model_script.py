"""``scripts/train_default_model.py``: teacher-labelled real photos into a trained, calibrated
model folder, on a small generated stand-in for ``../shared/data`` (no shared photos needed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from skuaudit.datasets.synth import render_shelf

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_default_model.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_default_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _yolo_lines(boxes, width, height, scores=None) -> str:
    lines = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        line = f"0 {(x1 + x2) / 2 / width:.5f} {(y1 + y2) / 2 / height:.5f} "
        line += f"{(x2 - x1) / width:.5f} {(y2 - y1) / height:.5f}"
        if scores is not None:
            line += f" {scores[i]:.3f}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def shared_standin(tmp_path_factory) -> SimpleNamespace:
    """``shelf-photos`` (large photos, teacher boxes with scores, a row_counts.json) and
    ``shelf-gaps`` (small photos, human gap labels and teacher product boxes)."""
    root = tmp_path_factory.mktemp("shared")
    photos, gaps = root / "shelf-photos", root / "shelf-gaps"
    rng = np.random.default_rng(0)
    for folder, n, size, gap_labels in (
        (photos, 6, (960, 720), False),
        (gaps, 5, (256, 256), True),
    ):
        for sub in ("images", "teacher-tiled", *(["labels"] if gap_labels else [])):
            (folder / sub).mkdir(parents=True)
        for i in range(n):
            shelf = render_shelf(seed=40 + i + 10 * gap_labels, width=size[0], height=size[1])
            name = f"p{i}"
            cv2.imwrite(str(folder / "images" / f"{name}.jpg"), shelf.image_bgr)
            products = shelf.boxes_xyxy[shelf.class_ids == 0]
            scores = rng.uniform(0.05, 1.0, len(products))
            (folder / "teacher-tiled" / f"{name}.txt").write_text(
                _yolo_lines(products, *size, scores)
            )
            if gap_labels:
                (folder / "labels" / f"{name}.txt").write_text(
                    _yolo_lines(shelf.boxes_xyxy[shelf.class_ids == 1], *size)
                )
    (photos / "row_counts.json").write_text(
        json.dumps([{"image": "p0.jpg", "box_xyxy": [0, 0, 960, 360], "count": 9}])
    )
    return SimpleNamespace(photos=photos, gaps=gaps)


def test_real_data_reads_teacher_labels_and_leaves_out_the_counted_rows(shared_standin):
    args = SimpleNamespace(
        photos=shared_standin.photos,
        gaps=shared_standin.gaps,
        exclude=None,
        labels="teacher-tiled",
        min_score=0.4,
        ignore_score=0.1,
    )
    photos, gaps = _script().read_real_data(args)
    assert sorted(im.path.name for im in photos.images) == [f"p{i}.jpg" for i in range(1, 6)]
    assert photos.classes == ["product", "ignore"]
    assert {im.annotated_classes for im in photos.images} == {("product",)}
    assert gaps.classes == ["product", "gap", "ignore"]
    assert {im.annotated_classes for im in gaps.images} == {("product", "gap")}
    teacher = (shared_standin.gaps / "teacher-tiled" / "p0.txt").read_text().splitlines()
    scores = np.array([float(line.split()[5]) for line in teacher])
    first = next(im for im in gaps.images if im.path.name == "p0.jpg")
    assert first.class_names.count("product") == int(np.sum(scores >= 0.4))
    assert first.class_names.count("ignore") == int(np.sum((scores >= 0.1) & (scores < 0.4)))
    gap_lines = (shared_standin.gaps / "labels" / "p0.txt").read_text().splitlines()
    assert first.class_names.count("gap") == len([line for line in gap_lines if line.strip()])


@pytest.mark.slow
def test_script_trains_and_calibrates_on_teacher_labels(shared_standin, tiny_detector, tmp_path):
    out = tmp_path / "model"
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--photos",
            str(shared_standin.photos),
            "--gaps",
            str(shared_standin.gaps),
            "--init-model",
            str(tiny_detector[0]),
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--eval-every",
            "3",
            "--cache-mb",
            "64",
            "--fusion-min-score",
            "0.01",  # a model of a few steps scores low
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [e["class"] for e in events if e["event"] == "calibrated"] == [
        "product",
        "gap",
        "product (one pass)",
    ]
    saved = json.loads((out / "config.json").read_text())
    assert saved["detector"]["image_size"] == 128  # the init model's architecture
    assert saved["training"]["config"]["loss_normalisation"] == "class"  # the shipped recipe
    assert saved["detector"]["tile_above_px"] == 400
    assert saved["detector"]["flip_classes"] == ["product", "gap"]
    assert saved["detector"]["fusion_min_score"] == 0.01
    assert set(saved["detector"]["class_score_thresholds"]) == {"product", "gap"}
    assert set(saved["detector"]["single_pass_class_score_thresholds"]) == {"product"}
    calibration = saved["training"]["threshold_calibration"]
    assert calibration["product"]["images"].startswith("the 1 held-out shelf-photos")
    assert calibration["gap"]["images"].startswith("the 4 shelf-gaps training photos")
    assert calibration["product (one pass)"]["images"].startswith(
        "8 640x480 frames of the 4 training shelf-photos"
    )
    description = saved["training"]["config"]["data_description"]
    assert "the row_counts.json photos left out" in description[0]
    assert "human gap boxes" in description[1]
    assert (out / "model.tflite").is_file()

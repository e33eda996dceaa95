"""The photo-path calibration that ends every run of ``scripts/train_default_model.py``."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_default_model.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_default_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_calibration_writes_the_photo_path_settings(tiny_detector, synth_shelf_dataset, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_detector[0], model_dir)
    results = _script().calibrate_thresholds(
        model_dir, tmp_path / "work", synth_shelf_dataset, n=2, tile_above_px=300
    )
    saved = json.loads((model_dir / "config.json").read_text())
    detector = saved["detector"]
    assert detector["tile_above_px"] == 300
    assert detector["whole_image_classes"] == ["gap"]
    assert set(detector["class_score_thresholds"]) == {"product", "gap"}
    for name, result in results.items():
        assert 0 < detector["class_score_thresholds"][name] < 1
        assert detector["class_score_thresholds"][name] == round(result["threshold"], 3)
    calibration = saved["training"]["threshold_calibration"]
    # the 512x384 shelves exceed 300 px, so the gap threshold was set on tiled photos
    assert calibration["gap"]["images"].endswith(", tiled")
    assert "render seeds 700000-700001" in calibration["product"]["images"]
    assert len(list((tmp_path / "work" / "calibration").glob("*.jpg"))) == 2


def test_calibration_with_the_mirrored_view(tiny_detector, synth_shelf_dataset, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_detector[0], model_dir)
    _script().calibrate_thresholds(
        model_dir,
        tmp_path / "work",
        synth_shelf_dataset,
        n=1,
        tile_above_px=300,
        flip_classes=["gap"],
    )
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["detector"]["flip_classes"] == ["gap"]
    calibration = saved["training"]["threshold_calibration"]
    assert calibration["gap"]["images"].endswith(", tiled, with the mirrored view")
    assert calibration["product"]["images"].endswith(", tiled")


def test_real_crops_need_the_model_that_finds_the_products(tmp_path):
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--real-crops", "0.7", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2
    assert "--real-crops needs --init-model" in run.stderr
    assert "Traceback" not in run.stderr

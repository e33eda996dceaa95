"""What every export shares: the formats, the error, the model it reads and the files beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMATS: tuple[str, ...] = ("tfjs", "tflite", "savedmodel")
EXPORT_INFO_FILE = "export.json"
ANCHORS_FILE = "anchors.json"


class ExportError(RuntimeError):
    """An export that cannot be done; the message says which file or setting to fix."""


def load_model_folder(model_dir: Path):
    """``(raw Keras model, DetectorConfig)`` of a model folder, or a ``ModelLoadError``."""
    from skuaudit.detector.detector import load_raw_model, read_model_config

    config = read_model_config(model_dir)
    return load_raw_model(model_dir), config


def write_sidecars(config, out_dir: Path, info: dict) -> None:
    from skuaudit.detector import make_anchors

    (out_dir / "labels.json").write_text(json.dumps(list(config.class_names), indent=2) + "\n")
    (out_dir / "config.json").write_text(
        json.dumps({"detector": config.to_dict()}, indent=2) + "\n"
    )
    anchors = np.round(make_anchors(config.anchor_spec).astype(np.float64), 7).tolist()
    (out_dir / ANCHORS_FILE).write_text(json.dumps({"format": "yxyx_norm", "anchors": anchors}))
    base = {
        "image_size": config.image_size,
        "class_names": list(config.class_names),
        "score_threshold": config.score_threshold,
        "nms_iou": config.nms_iou,
        "max_detections": config.max_detections,
        "box_variance": list(config.box_variance),
        # What an audit counts (per-class defaults, nested-box and empty-stretch rules): applied
        # after the graph by skuaudit/web/offline_component/counting.js, as Detector.detect does
        # after NMS. The graph runs one pass per frame: the one-pass defaults.
        "counting": {
            "class_score_thresholds": [
                float(t) for t in config.default_thresholds(single_pass=True)
            ],
            "containment": config.containment,
            "stack_min_contained": config.stack_min_contained,
            "drop_contained": config.drop_contained,
            "empty_class_ids": [
                i for i, name in enumerate(config.class_names) if name in config.empty_classes
            ],
        },
    }
    (out_dir / EXPORT_INFO_FILE).write_text(json.dumps({**base, **info}, indent=2) + "\n")


def fresh_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir}: output folder is not empty; choose a new folder or empty it")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir

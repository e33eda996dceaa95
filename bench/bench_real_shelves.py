"""The detector on real shelves: every figure of the model card's "Real shelves" table, one run.

- **Row counts**: the 35 hand-counted rows of ``shelf-photos/row_counts.json`` (15 photos never
  trained on), photo path: row-count error at the model's product threshold and at fixed ones;
  the teacher's own labels on the same rows, for reference.
- **Teacher agreement**: the held-out shelf photos of ``scripts/train_default_model.py`` (the
  photos not in ``row_counts.json``, split 80/20 by photo, seed 0), photo path: product AP50,
  AP50:95 and AR300 against the teacher's boxes (``teacher/`` at score >= 0.25, unsure boxes of
  0.05-0.25 neither rewarded nor penalised; and ``teacher-tiled/`` at >= 0.4 / 0.1-0.4), and the
  mean counting error against the teacher's count per photo.
- **Gaps**: gap AP50 on the shelf-gaps validation split (human gap boxes).
- **Live path**: 640x480 frames cut from the held-out photos (a phone seeing one section of a
  shelf); on each, the product count of one pass (video frames), of the photo path, and of the
  teacher run on that frame (score >= 0.25): their mean relative differences.

Usage::

    python bench/bench_real_shelves.py [--model models/default] [--frames-per-photo 6] \\
        [--draw /tmp/drawn] [--json]

Needs ``../shared/data`` (and ``../shared/teachers`` for the live section's teacher counts);
skips what is missing with a message. ``--draw`` writes the held-out photos with their boxes for
a person to look at (never commit them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from skuaudit.datasets.base import Dataset  # noqa: E402
from skuaudit.datasets.readers import ScoreBands, read_dataset  # noqa: E402
from skuaudit.datasets.splits import split_by_image  # noqa: E402
from skuaudit.detections import PRODUCT, Detections  # noqa: E402
from skuaudit.detector import Detector  # noqa: E402
from skuaudit.training.calibration import video_frames  # noqa: E402
from skuaudit.training.evaluate import (  # noqa: E402
    evaluate_detections,
    image_names,
    keep_images,
    read_row_counts,
    row_count_errors,
)

SHARED = REPO_ROOT.parent / "shared"
DATA = SHARED / "data"
TEACHER = SHARED / "teachers" / "yolov8n-sku110k-int8.tflite"
FIXED_THRESHOLDS = (0.3, 0.4, 0.5)


def held_out_photos() -> list[Path]:
    """The validation photos of the shipped model's shelf-photos split."""
    photos = read_dataset(DATA / "shelf-photos", "yolo", class_map={"0": "shelf"})
    excluded = image_names(DATA / "shelf-photos" / "row_counts.json")
    photos = keep_images(photos, lambda name: name not in excluded)
    _, val = split_by_image(photos, 0.2, seed=0)
    return [im.path for im in val]


def detect_all(detector, paths, **kwargs) -> dict[str, Detections]:
    return {
        p.name: detector.detect(cv2.imread(str(p)), score_threshold=0.05, **kwargs) for p in paths
    }


def section_rows(detector, threshold: float) -> dict:
    rows = read_row_counts(DATA / "shelf-photos" / "row_counts.json")
    photos = sorted({DATA / "shelf-photos" / "images" / r["image"] for r in rows})
    predictions = detect_all(detector, photos)
    out = {
        "model_threshold": {
            "threshold": threshold,
            **row_count_errors(rows, predictions, threshold),
        }
    }
    for t in FIXED_THRESHOLDS:
        out[f"at {t}"] = row_count_errors(rows, predictions, t)
    for labels, minimum in (("teacher", 0.25), ("teacher-tiled", 0.4)):
        teacher = read_dataset(
            DATA / "shelf-photos",
            "yolo",
            class_map={"0": "product"},
            labels=labels,
            score_bands=ScoreBands(minimum),
        )
        boxes = {im.path.name: Detections(im.boxes_xyxy) for im in teacher.images}
        out[f"{labels} labels (score >= {minimum})"] = row_count_errors(rows, boxes, 0.0)
    return out


def section_teacher(detector, photos: list[Path], threshold: float, draw: Path | None) -> dict:
    predictions = detect_all(detector, photos)
    if draw is not None:
        draw.mkdir(parents=True, exist_ok=True)
        for path in photos:
            det = predictions[path.name]
            det = det[(det.class_id == PRODUCT) & (det.confidence >= threshold)]
            canvas = cv2.imread(str(path))
            for x1, y1, x2, y2 in det.xyxy.astype(int):
                cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 200, 0), 2)
            cv2.imwrite(str(draw / path.name), canvas)
    names = {p.name for p in photos}
    out = {}
    for labels, minimum, unsure in (("teacher", 0.25, 0.05), ("teacher-tiled", 0.4, 0.1)):
        truth = read_dataset(
            DATA / "shelf-photos",
            "yolo",
            class_map={"0": "product"},
            labels=labels,
            score_bands=ScoreBands(minimum, unsure),
        )
        images = [im for im in truth.images if im.path.name in names]
        report = evaluate_detections(
            Dataset(truth.classes, images),
            [predictions[im.path.name] for im in images],
            ["product"],
            score_threshold=threshold,
        )
        true = np.array([im.class_names.count("product") for im in images], float)
        found = np.array(
            [
                int(((d.class_id == PRODUCT) & (d.confidence >= threshold)).sum())
                for d in (predictions[im.path.name] for im in images)
            ],
            float,
        )
        out[f"{labels} >= {minimum}"] = {
            "photos": len(images),
            "AP50": report.ap50,
            "AP": report.ap,
            "AR300": report.ar,
            "count_error_pct": 100 * float(np.mean(np.abs(found - true) / true)),
            "signed_count_error_pct": 100 * float(np.mean((found - true) / true)),
            "teacher_products_per_photo": float(true.mean()),
        }
    return out


def section_gaps(model_dir: Path) -> dict:
    from skuaudit.training.evaluate import predict_dataset

    gaps = read_dataset(DATA / "shelf-gaps", "yolo", class_map={"0": "gap"})
    _, val = split_by_image(gaps, 0.2, seed=0)
    gt = Dataset(gaps.classes, val)
    report = evaluate_detections(gt, predict_dataset(model_dir, gt), ["gap"])
    return {"photos": len(val), "AP50": report.ap50, "AP": report.ap, "AR300": report.ar}


def _against_photo_path(mode: str, counts: np.ndarray, photo: np.ndarray) -> dict:
    """A live mode's per-frame counts against the photo path's on the same frames, in percent:
    mean and signed mean of the per-frame error, and (large on frames with few products) its
    median and the error of the totals."""
    error = (counts - photo) / np.maximum(photo, 1)
    return {
        f"{mode}_vs_photo_path_pct": 100 * float(np.mean(np.abs(error))),
        f"{mode}_vs_photo_path_signed_pct": 100 * float(np.mean(error)),
        f"{mode}_vs_photo_path_median_pct": 100 * float(np.median(np.abs(error))),
        f"{mode}_vs_photo_path_total_pct": 100 * float(counts.sum() / max(photo.sum(), 1) - 1),
    }


def section_live(detector, photos: list[Path], per_photo: int) -> dict:
    teacher = None
    if TEACHER.is_file():
        spec = importlib.util.spec_from_file_location("label", SHARED / "teachers" / "label.py")
        label = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(label)
        teacher = label.Teacher(str(TEACHER))
    from skuaudit.live import VideoDetector

    # the live page's two modes (one pass; Dense shelf: tiles) and the photo path
    paths = {
        "one_pass": VideoDetector(detector).detect,
        "dense": VideoDetector(detector, dense=True).detect,
        "photo_path": detector.detect,
    }
    rng = np.random.default_rng(0)
    counts = {"one_pass": [], "dense": [], "photo_path": [], "teacher": []}
    seconds = {key: [] for key in paths}
    for path in photos:
        for frame in video_frames(cv2.imread(str(path)), per_photo, rng):
            for key, detect in paths.items():
                start = time.perf_counter()
                det = detect(frame)  # each path's own default thresholds
                seconds[key].append(time.perf_counter() - start)
                counts[key].append(int((det.class_id == PRODUCT).sum()))
            if teacher is not None:
                boxes, _ = teacher.detect(frame, tiles=1, conf=0.25)
                counts["teacher"].append(len(boxes))
    one, photo = np.array(counts["one_pass"], float), np.array(counts["photo_path"], float)
    dense = np.array(counts["dense"], float)
    out = {
        "frames": len(one),
        "one_pass_per_frame": float(one.mean()),
        "photo_path_per_frame": float(photo.mean()),
        **_against_photo_path("one_pass", one, photo),
        "one_pass_ms": 1000 * float(np.median(seconds["one_pass"])),
        "photo_path_ms": 1000 * float(np.median(seconds["photo_path"])),
        "dense_per_frame": float(dense.mean()),
        **_against_photo_path("dense", dense, photo),
        "dense_ms": 1000 * float(np.median(seconds["dense"])),
    }
    if teacher is not None:
        ref = np.maximum(np.array(counts["teacher"], float), 1)
        out |= {
            "teacher_per_frame": float(ref.mean()),
            "one_pass_vs_teacher_pct": 100 * float(np.mean(np.abs(one - ref) / ref)),
            "photo_path_vs_teacher_pct": 100 * float(np.mean(np.abs(photo - ref) / ref)),
            "dense_vs_teacher_pct": 100 * float(np.mean(np.abs(dense - ref) / ref)),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "default")
    parser.add_argument("--frames-per-photo", type=int, default=6)
    parser.add_argument("--sections", default="rows,teacher,gaps,live")
    parser.add_argument("--draw", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (DATA / "shelf-photos" / "row_counts.json").is_file():
        print(f"skipped: {DATA} not found (the shared real data)")
        return 0
    detector = Detector.load(args.model)
    threshold = detector.config.threshold_map()["product"]
    sections = set(args.sections.split(","))
    photos = held_out_photos()
    results = {"model": str(args.model), "product_threshold": threshold}
    runs = SimpleNamespace(
        rows=lambda: section_rows(detector, threshold),
        teacher=lambda: section_teacher(detector, photos, threshold, args.draw),
        gaps=lambda: section_gaps(args.model),
        live=lambda: section_live(detector, photos, args.frames_per_photo),
    )
    for name in ("rows", "teacher", "gaps", "live"):
        if name in sections:
            start = time.perf_counter()
            results[name] = getattr(runs, name)()
            results[name]["seconds"] = round(time.perf_counter() - start, 1)
            if not args.json:
                print(name, json.dumps(results[name], indent=1, default=float), flush=True)
    if args.json:
        print(json.dumps(results, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Photo-path settings of a trained model folder: per-class score thresholds and tiling views.

A model's default thresholds decide every count the app shows, so each is set where the detected
count equals the true count on held-out labelled photos (``count_matching_threshold``), through
the photo path the app uses (the model's tiling rule and views). ``calibrate_model`` writes them,
and the photo-path settings it was given, into the folder's ``config.json`` through
``DetectorConfig`` and records how each threshold was set under ``training.threshold_calibration``.

Example:
    >>> calibrate_model("models/mine", {"product": (val_photos, "16 held-out photos")},
    ...                 photo_path=PhotoPath(tile_above_px=400))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skuaudit.datasets.base import DatasetError, LabeledImage
from skuaudit.detections import CLASS_NAMES, box_iou_xyxy


@dataclass(frozen=True)
class PhotoPath:
    """How the photo path runs a model (``DetectorConfig`` fields of the same names; ``None``
    keeps the folder's value). ``empty_classes`` applies to one pass as well."""

    tile_above_px: int | None = None
    whole_image_classes: tuple[str, ...] | None = None
    flip_classes: tuple[str, ...] | None = None
    multiscale_classes: tuple[str, ...] | None = None
    extra_tile_fractions: tuple[float, ...] | None = None
    class_tile_fractions: dict[str, tuple[float, ...]] | None = None
    fusion_min_score: float | None = None
    empty_classes: tuple[str, ...] | None = None

    def settings(self) -> dict:
        """The fields that are set, as ``DetectorConfig`` keyword arguments."""
        return {
            f.name: list(v) if isinstance(v, tuple) else v
            for f in dataclasses.fields(self)
            if (v := getattr(self, f.name)) is not None
        }


def greedy_matches(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: each detection (best score first) claims an unclaimed truth at IoU >= 0.5."""
    hit = np.zeros(len(boxes), bool)
    if len(boxes) == 0 or len(truth) == 0:
        return hit
    iou = box_iou_xyxy(boxes, truth)
    free = np.ones(len(truth), bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = np.where(free, iou[i], 0.0)
        j = int(np.argmax(candidates))
        if candidates[j] >= 0.5:
            hit[i], free[j] = True, False
    return hit


def count_matching_threshold(
    detector, images: Sequence[LabeledImage], class_name: str = "product"
) -> dict[str, float]:
    """The score threshold at which a class's detected count equals its true count.

    Runs ``detector`` (its ``tiled=None`` rule, nested-box rules included) at a low threshold on
    labelled images and returns the score of the ``N``-th best box of ``class_name`` over all
    images, ``N`` the true number of boxes: counting at that score gives the right total. Use
    held-out photos, never a yardstick's.

    Returns:
        ``{"threshold", "true_count", "precision", "recall"}``; precision and recall at IoU 0.5
        of the boxes at that threshold (greedy matching by score).

    Raises:
        DatasetError: no image labels ``class_name``, or an image cannot be read.
    """
    import cv2

    class_id = list(CLASS_NAMES).index(class_name)
    scored, true_count, matched = [], 0, []
    for im in images:
        image = cv2.imread(str(im.path))
        if image is None:
            raise DatasetError(f"{im.path}: not a readable image")
        det = detector.detect(image, score_threshold=0.05)
        det = det[det.class_id == class_id]
        truth = np.asarray(im.boxes_xyxy, np.float32).reshape(-1, 4)[
            [c == class_name for c in im.class_names]
        ]
        true_count += len(truth)
        matched.append(greedy_matches(det.xyxy, det.confidence, truth))
        scored.append(np.asarray(det.confidence, np.float64))
    if true_count == 0:
        raise DatasetError(f"no image labels {class_name!r}: nothing to calibrate on")
    scores = np.concatenate(scored)
    hits = np.concatenate(matched)
    order = np.argsort(-scores, kind="stable")
    # Fewer boxes than truths: every box counts, at the lowest score looked at.
    threshold = float(scores[order[true_count - 1]]) if len(scores) >= true_count else 0.05
    kept = scores >= threshold
    return {
        "threshold": threshold,
        "true_count": int(true_count),
        "precision": float(hits[kept].mean()) if kept.any() else 0.0,
        "recall": float(hits[kept].sum() / true_count),
    }


def video_frames(
    photo_bgr: np.ndarray, n: int, rng: np.random.Generator, size_wh: tuple[int, int] = (640, 480)
) -> list[np.ndarray]:
    """``n`` random ``size_wh`` crops of a photo, as a phone's video sees one section of a
    shelf (the whole photo where it is smaller)."""
    height, width = photo_bgr.shape[:2]
    fw, fh = min(size_wh[0], width), min(size_wh[1], height)
    frames = []
    for _ in range(n):
        x = int(rng.integers(0, width - fw + 1))
        y = int(rng.integers(0, height - fh + 1))
        frames.append(photo_bgr[y : y + fh, x : x + fw])
    return frames


def single_pass_matching_threshold(
    detector, frames: Sequence[np.ndarray], class_name: str = "product"
) -> dict[str, float]:
    """The one-pass score threshold at which a class's count over video-sized frames equals
    the photo path's count on the same frames (at its own defaults).

    One pass sees a frame at the model input's resolution, the photo path sees it in tiles at up
    to twice that, so one pass scores small objects lower; this threshold makes a live count
    agree with a photo's.

    Returns:
        ``{"threshold", "photo_path_count", "frames"}``.

    Raises:
        ValueError: no frames, or the photo path finds nothing to match.
    """
    if not frames:
        raise ValueError("no frames to calibrate the one-pass threshold on")
    class_id = list(CLASS_NAMES).index(class_name)
    scores, target = [], 0
    for frame in frames:
        photo = detector.detect(frame, tiled=True)
        target += int((photo.class_id == class_id).sum())
        one = detector.detect(frame, tiled=False, score_threshold=0.05)
        scores.append(np.asarray(one.confidence[one.class_id == class_id], np.float64))
    if target == 0:
        raise ValueError(f"the photo path finds no {class_name!r} in the frames")
    ranked = np.sort(np.concatenate(scores))[::-1]
    threshold = float(ranked[target - 1]) if len(ranked) >= target else 0.05
    return {"threshold": threshold, "photo_path_count": target, "frames": len(frames)}


def calibrate_model(
    model_dir: str | Path,
    calibration_sets: Mapping[str, tuple[Sequence[LabeledImage], str]],
    photo_path: PhotoPath | None = None,
    single_pass_frames: tuple[Sequence[np.ndarray], str] | None = None,
) -> dict[str, dict[str, float]]:
    """Write a model folder's photo-path settings and per-class thresholds.

    Args:
        model_dir: a model folder (``config.json`` is rewritten; the weights are not touched).
        calibration_sets: ``{class name: (labelled images, words saying which images)}``; each
            class's threshold is set where its detected count equals its true count there,
            through the photo path as ``photo_path`` leaves it.
        photo_path: the photo-path settings to write first (``None``: keep the folder's).
        single_pass_frames: ``(video-sized frames, words saying which)``: also set the one-pass
            product threshold (``single_pass_matching_threshold``), after the others.

    Returns:
        ``{class name: count_matching_threshold(...) result}``, plus ``"product (one pass)"``
        with ``single_pass_frames``.

    Raises:
        ModelLoadError: not a model folder. DatasetError: a set labels no box of its class.
        ValueError: a class that is not one of the model's.
    """
    from skuaudit.detector import Detector
    from skuaudit.detector.detector import CONFIG_FILE, read_model_config

    model_dir = Path(model_dir)
    config = read_model_config(model_dir)
    unknown = sorted(set(calibration_sets) - set(config.class_names))
    if unknown:
        raise ValueError(
            f"cannot calibrate {unknown}: the model's classes are {config.class_names}"
        )
    if photo_path is not None:
        config = dataclasses.replace(config, **photo_path.settings())
        _write(model_dir / CONFIG_FILE, config)
    detector = Detector.load(model_dir)
    thresholds = dict(config.class_score_thresholds)
    found = {}
    # The empty-stretch classes first: which of their boxes drop others depends on their
    # threshold (``DetectorConfig.empty_classes``), so the other classes are counted with it.
    for name in sorted(calibration_sets, key=lambda n: n not in config.empty_classes):
        found[name] = count_matching_threshold(detector, calibration_sets[name][0], name)
        thresholds[name] = round(found[name]["threshold"], 3)
        detector = detector.with_config(class_score_thresholds=dict(thresholds))
    results = {name: found[name] for name in calibration_sets}
    config = dataclasses.replace(config, class_score_thresholds=thresholds)
    views = _views_text(config)
    records = {
        name: {
            "images": f"{calibration_sets[name][1]}, photo path ({views(name)})",
            **_rounded(result),
        }
        for name, result in results.items()
    }
    _write(model_dir / CONFIG_FILE, config, records)
    if single_pass_frames is not None:
        frames, words = single_pass_frames
        result = single_pass_matching_threshold(Detector.load(model_dir), frames)
        config = dataclasses.replace(
            config,
            single_pass_class_score_thresholds={
                **config.single_pass_class_score_thresholds,
                "product": round(result["threshold"], 3),
            },
        )
        key = "product (one pass)"
        results[key] = result
        _write(
            model_dir / CONFIG_FILE,
            config,
            {key: {"images": f"{words}: one pass against the photo path", **_rounded(result)}},
        )
    return results


def _rounded(result: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def _views_text(config):
    def text(name: str) -> str:
        parts = [f"tiled above {config.tile_above_px} px"]
        if name in config.whole_image_classes:
            parts.append("with a whole-image pass")
        if name in config.flip_classes:
            parts.append("with the mirrored view")
        if config.tile_fractions_of(name):
            sizes = " / ".join(f"{s:g}" for s in config.tile_fractions_of(name))
            parts.append(f"with tiles of {sizes} x the longer side too")
        fused = name in config.flip_classes or bool(config.tile_fractions_of(name))
        if fused and config.fusion_min_score is not None:
            parts.append(f"views fused from scores >= {config.fusion_min_score:g}")
        if config.empty_classes and name not in config.empty_classes:
            parts.append(f"boxes inside a counted {' / '.join(config.empty_classes)} dropped")
        return ", ".join(parts)

    return text


def _write(config_path: Path, config, calibration: dict | None = None) -> None:
    payload = json.loads(config_path.read_text())
    payload["detector"] = config.to_dict()
    if calibration is not None:
        training = payload.setdefault("training", {})
        training["threshold_calibration"] = {
            **training.get("threshold_calibration", {}),
            **calibration,
        }
    tmp = config_path.with_name(f".{config_path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    tmp.replace(config_path)

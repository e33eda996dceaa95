"""Detector evaluation: COCO AP / AP50 / AP75 / AR300 per class, counting error, PR curves.

COCO figures come from pycocotools with ``maxDets`` raised to 300 (dense shelves hold far more than
COCO's default 100 objects). A class with no ground truth gets ``None`` (pycocotools says -1).
Images whose ``annotated_classes`` leave a class out (a gap-only photo) are not scored for it:
predictions of that class there are dropped, since the photo says nothing about them.

Counting error follows the SKU-110K paper: per image, |predicted count - true count|, with
predictions counted at ``score >= score_threshold`` (one value, or one per class: the command line
uses the model's own per-class defaults); MAE and RMSE over images. AP is computed from detections
down to ``AP_SCORE_THRESHOLD`` so the precision/recall curve is complete.

Command line::

    skuaudit evaluate --dataset DIR --format yolo --class-map 0=gap --model models/default --json
    skuaudit evaluate --dataset ../shared/data/shelf-gaps --class-map 0=gap --split val  # a card's split

prints one JSON object: ``ap, ap50, ap75, ar300, count_mae, count_rmse, images, per_class``.

Example:
    >>> from skuaudit.datasets.base import Dataset, LabeledImage
    >>> im = LabeledImage("a.jpg", 100, 100, [[10, 10, 50, 50]], ["product"])
    >>> gt = Dataset(["product", "gap"], [im])
    >>> pred = Detections(np.array([[10, 10, 50, 50]]), np.array([0.9]), np.array([0]))
    >>> evaluate_detections(gt, [pred], ["product", "gap"]).ap50
    1.0
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skuaudit.datasets.base import Dataset, DatasetError, LabeledImage
from skuaudit.detections import CLASS_NAMES, IGNORE_CLASS, Detections

# Detections below this score are not kept for AP (the curve's tail beyond it is negligible).
AP_SCORE_THRESHOLD = 0.05


def _annotated(item: LabeledImage, classes: list[str]) -> set[str]:
    return set(item.annotated_classes) if item.annotated_classes is not None else set(classes)


def _check_inputs(gt: Dataset, predictions: list[Detections]) -> None:
    if len(predictions) != len(gt.images):
        raise ValueError(
            f"{len(predictions)} prediction sets for {len(gt.images)} images; pass one per image"
        )


def _prediction_names(pred: Detections) -> list[str]:
    return [CLASS_NAMES[c] if 0 <= c < len(CLASS_NAMES) else "" for c in pred.class_id]


def _coco_ann(ann_id: int, image_id: int, category_id: int, box, **extra: Any) -> dict:
    """A COCO annotation of an xyxy ``box``; ``extra`` (``score``, ``iscrowd``) comes last."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x1, y1, x2 - x1, y2 - y1],
        "area": (x2 - x1) * (y2 - y1),
        **extra,
    }


def _coco_dicts(
    gt: Dataset, predictions: list[Detections], classes: list[str]
) -> tuple[dict, list[dict]]:
    """Ground truth as a COCO dataset dict and predictions as COCO result records."""
    cat_id = {c: i + 1 for i, c in enumerate(classes)}
    images, gt_anns, dt_anns = [], [], []
    for image_id, (item, pred) in enumerate(zip(gt.images, predictions, strict=True), start=1):
        images.append({"id": image_id, "width": item.width, "height": item.height})
        annotated = _annotated(item, classes)
        for box, name in zip(item.boxes_xyxy, item.class_names, strict=True):
            # An ignore box (an unsure label) is a crowd region of every scored class: a
            # detection mostly inside it is neither a hit nor a false positive.
            crowd = name == IGNORE_CLASS
            for target in [c for c in classes if c in annotated] if crowd else [name]:
                if target not in cat_id:
                    continue
                gt_anns.append(
                    _coco_ann(len(gt_anns) + 1, image_id, cat_id[target], box, iscrowd=int(crowd))
                )
        for box, name, score in zip(
            pred.xyxy, _prediction_names(pred), pred.confidence, strict=True
        ):
            if name in cat_id and name in annotated:
                dt_anns.append(
                    _coco_ann(
                        len(dt_anns) + 1,
                        image_id,
                        cat_id[name],
                        box,
                        score=float(score),
                        iscrowd=0,
                    )
                )
    categories = [{"id": i, "name": c} for c, i in cat_id.items()]
    return {"images": images, "annotations": gt_anns, "categories": categories}, dt_anns


def _run_cocoeval(gt: Dataset, predictions: list[Detections], classes: list[str], max_dets: int):
    """An accumulated pycocotools ``COCOeval`` (its console output swallowed)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict, dt_anns = _coco_dicts(gt, predictions, classes)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        # built directly: COCO.loadRes fails on an empty result list
        coco_dt = COCO()
        coco_dt.dataset = {**gt_dict, "annotations": dt_anns}
        coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.params.maxDets = [1, 10, max_dets]
        evaluator.params.catIds = [c["id"] for c in gt_dict["categories"]]
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else None


def coco_metrics(
    gt: Dataset, predictions: list[Detections], classes: list[str], max_dets: int = 300
) -> dict[str, Any]:
    """COCO box metrics, overall and per class.

    Args:
        gt: ground truth.
        predictions: one ``Detections`` per ``gt.images`` entry (``class_id`` indexes
            ``CLASS_NAMES``).
        classes: classes to score.
        max_dets: detections per image considered (``AR@max_dets``).

    Returns:
        ``{"ap", "ap50", "ap75", "ar<max_dets>", "per_class": {name: {same keys}},
        "pr_curves": {name: (recall, precision) at IoU 0.5}}``; ``None`` where a class has no
        ground truth.
    """
    _check_inputs(gt, predictions)
    if not classes:
        raise ValueError("coco_metrics: classes must not be empty")
    if not gt.images:
        raise DatasetError("coco_metrics: the ground-truth dataset holds no images")
    ar_key = f"ar{max_dets}"
    evaluator = _run_cocoeval(gt, predictions, classes, max_dets)
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [iou, recall, class]
    recall = evaluator.eval["recall"][:, :, 0, -1]  # [iou, class]
    rec_thresholds = np.asarray(evaluator.params.recThrs)

    def block(k: slice | int) -> dict[str, float | None]:
        return {
            "ap": _mean_valid(precision[:, :, k]),
            "ap50": _mean_valid(precision[0, :, k]),
            "ap75": _mean_valid(precision[5, :, k]),
            ar_key: _mean_valid(recall[:, k]),
        }

    per_class = {name: block(k) for k, name in enumerate(classes)}
    pr_curves = {
        name: (rec_thresholds, precision[0, :, k])
        for k, name in enumerate(classes)
        if per_class[name]["ap50"] is not None
    }
    return {**block(slice(None)), "per_class": per_class, "pr_curves": pr_curves}


def _class_thresholds(
    score_threshold: float | Mapping[str, float], classes: list[str]
) -> dict[str, float]:
    """One minimum score per class from a number (every class) or a ``{class: score}`` mapping."""
    if isinstance(score_threshold, Mapping):
        missing = [c for c in classes if c not in score_threshold]
        if missing:
            raise ValueError(f"score_threshold has no value for classes {missing}")
        return {c: float(score_threshold[c]) for c in classes}
    return dict.fromkeys(classes, float(score_threshold))


def counting_errors(
    gt: Dataset,
    predictions: list[Detections],
    classes: list[str],
    score_threshold: float | Mapping[str, float] = 0.5,
) -> dict[str, Any]:
    """Per-image counting error (SKU-110K paper): MAE and RMSE, overall and per class.

    The overall count of an image sums the classes it annotates. A class is scored only on
    images that annotate it; with none, its errors are ``None``. ``score_threshold`` is one
    minimum score for every class or a ``{class: score}`` mapping (a model's per-class defaults,
    ``DetectorConfig.threshold_map()``).

    Example:
        >>> from skuaudit.datasets.base import LabeledImage
        >>> gt = Dataset(["product"], [LabeledImage("a.jpg", 9, 9, [[0, 0, 2, 2]], ["product"])])
        >>> counting_errors(gt, [Detections.empty()], ["product"])["count_mae"]
        1.0
    """
    _check_inputs(gt, predictions)
    thresholds = _class_thresholds(score_threshold, classes)
    total_diffs: list[float] = []
    class_diffs: dict[str, list[float]] = {c: [] for c in classes}
    for item, pred in zip(gt.images, predictions, strict=True):
        annotated = _annotated(item, classes)
        names = np.array(_prediction_names(pred), dtype=object)
        minimum = np.array([thresholds.get(n, np.inf) for n in names], dtype=np.float64)
        confident = names[np.asarray(pred.confidence, dtype=np.float64) >= minimum]
        total = 0.0
        for c in classes:
            if c not in annotated:
                continue
            diff = float(np.sum(confident == c)) - float(item.class_names.count(c))
            class_diffs[c].append(diff)
            total += diff
        total_diffs.append(total)

    def errors(diffs: list[float]) -> dict[str, float | None]:
        if not diffs:
            return {"count_mae": None, "count_rmse": None}
        arr = np.asarray(diffs)
        return {
            "count_mae": float(np.mean(np.abs(arr))),
            "count_rmse": float(np.sqrt(np.mean(arr**2))),
        }

    return {
        **errors(total_diffs),
        "per_class": {c: {**errors(d), "images": len(d)} for c, d in class_diffs.items()},
    }


def read_row_counts(path: str | Path) -> list[dict[str, Any]]:
    """Hand-counted shelf rows: a JSON list of ``{"image": file name, "box_xyxy": [x1, y1, x2,
    y2] in that image's pixels, "count": facings in the row}`` (``row_counts.json``).

    Raises:
        DatasetError: not such a list; the message names the entry at fault.
    """
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(rows, list) or not rows:
        raise DatasetError(f"{path}: expected a non-empty JSON list of counted rows")
    for i, row in enumerate(rows):
        box = row.get("box_xyxy") if isinstance(row, dict) else None
        ok = (
            isinstance(row, dict)
            and isinstance(row.get("image"), str)
            and isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, int | float) for v in box)
            and isinstance(row.get("count"), int | float)
            and row["count"] > 0
        )
        if not ok:
            raise DatasetError(
                f"{path} entry {i}: expected image (file name), box_xyxy (4 numbers) and a "
                "positive count"
            )
    return rows


def row_count_errors(
    rows: list[dict[str, Any]],
    predictions: Mapping[str, Detections],
    score_threshold: float,
    class_id: int = 0,
) -> dict[str, Any]:
    """Counting error on hand-counted shelf rows (``read_row_counts``): the boxes of
    ``class_id`` scoring at least ``score_threshold`` whose centre lies in a row's box are its
    count.

    Args:
        rows: counted rows.
        predictions: ``{image file name: Detections}`` for every row's image.
        score_threshold: minimum score of a counted box.
        class_id: the class counted (``product``).

    Returns:
        ``{"rows", "count_error_pct"`` (mean of ``|counted - true| / true``, in %),
        ``"signed_error_pct"``, ``"true_facings"``, ``"counted_facings"}``.

    Raises:
        KeyError: a row's image has no predictions.
    """
    errors, signed, counted = [], [], 0
    for row in rows:
        det = predictions[row["image"]]
        det = det[(det.class_id == class_id) & (det.confidence >= score_threshold)]
        centres = det.centers_xy
        x1, y1, x2, y2 = row["box_xyxy"]
        n = int(
            np.sum(
                (centres[:, 0] >= x1)
                & (centres[:, 0] <= x2)
                & (centres[:, 1] >= y1)
                & (centres[:, 1] <= y2)
            )
        )
        counted += n
        signed.append((n - row["count"]) / row["count"])
        errors.append(abs(signed[-1]))
    return {
        "rows": len(rows),
        "count_error_pct": 100 * float(np.mean(errors)),
        "signed_error_pct": 100 * float(np.mean(signed)),
        "true_facings": float(sum(row["count"] for row in rows)),
        "counted_facings": counted,
    }


@dataclass
class EvalReport:
    """Everything ``evaluate_detections`` measured.

    Attributes:
        ap, ap50, ap75, ar: COCO AP@[.5:.95], AP@.5, AP@.75 and AR@``max_dets`` (mean over classes
            with ground truth; ``None`` if no class has any).
        count_mae, count_rmse: counting error per image.
        images: number of images.
        per_class: class name -> the same figures.
        pr_curves: class name -> ``(recall, precision)`` arrays at IoU 0.5.
        max_dets: detections per image considered.
    """

    ap: float | None
    ap50: float | None
    ap75: float | None
    ar: float | None
    count_mae: float | None
    count_rmse: float | None
    images: int
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    pr_curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    max_dets: int = 300

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``ap, ap50, ap75, ar<max_dets>, count_mae, count_rmse, images, per_class``."""
        return {
            "ap": self.ap,
            "ap50": self.ap50,
            "ap75": self.ap75,
            f"ar{self.max_dets}": self.ar,
            "count_mae": self.count_mae,
            "count_rmse": self.count_rmse,
            "images": self.images,
            "per_class": self.per_class,
        }


def evaluate_detections(
    gt: Dataset,
    predictions: list[Detections],
    classes: list[str] | tuple[str, ...] = CLASS_NAMES,
    *,
    max_dets: int = 300,
    score_threshold: float | Mapping[str, float] = 0.5,
) -> EvalReport:
    """Score predictions against ground truth: COCO metrics and counting error (pure function).

    Args:
        gt: ground truth.
        predictions: one ``Detections`` per image of ``gt``, in the same order.
        classes: classes to score (default: the detector's).
        max_dets: detections per image considered by COCO metrics.
        score_threshold: minimum score of a counted prediction, one for all classes or
            ``{class: score}``.
    """
    classes = list(classes)
    coco = coco_metrics(gt, predictions, classes, max_dets)
    counts = counting_errors(gt, predictions, classes, score_threshold)
    ar_key = f"ar{max_dets}"
    per_class = {c: {**coco["per_class"][c], **counts["per_class"][c]} for c in classes}
    return EvalReport(
        ap=coco["ap"],
        ap50=coco["ap50"],
        ap75=coco["ap75"],
        ar=coco[ar_key],
        count_mae=counts["count_mae"],
        count_rmse=counts["count_rmse"],
        images=len(gt.images),
        per_class=per_class,
        pr_curves=coco["pr_curves"],
        max_dets=max_dets,
    )


def evaluate_detector(
    detector,
    images: list[LabeledImage],
    score_threshold: float = 0.05,
    tiled: bool | None = None,
) -> dict:
    """Per-class COCO AP50, AP50:95 and AR300 of a detector on labelled images.

    ``coco_metrics`` scores each class only on images that label it (``annotated_classes``), so
    unlabelled products in gap photos do not count as false positives.

    Args:
        detector: a ``Detector``.
        images: labelled images (pixel ``xyxy`` boxes).
        score_threshold: low, so the precision/recall curve is complete.
        tiled: ``Detector.detect``'s ``tiled`` (``None``: its rule by image size).

    Returns:
        ``{class_name: {"AP50", "AP", "AR300", "images"}}`` for classes with ground truth.
    """
    import cv2

    predictions = []
    for im in images:
        image = cv2.imread(str(im.path))
        if image is None:
            raise DatasetError(f"{im.path}: not a readable image")
        predictions.append(detector.detect(image, score_threshold=score_threshold, tiled=tiled))
    result = coco_metrics(
        Dataset(list(CLASS_NAMES), images), predictions, list(CLASS_NAMES), max_dets=300
    )
    return {
        name: {"AP50": m["ap50"], "AP": m["ap"], "AR300": m["ar300"], "images": len(images)}
        for name, m in result["per_class"].items()
        if m["ap50"] is not None
    }


def validation_metrics(
    model_dir: str | Path, val_sets: list[list[LabeledImage]], max_images: int = 100
) -> dict:
    """COCO AP of a model folder on each training dataset's validation images (at most
    ``max_images`` each), through the photo path, for its model card.

    Returns:
        ``{"dataset 0": {class: {...}}, ...}`` in the order of the training datasets.
    """
    from skuaudit.detector import Detector

    detector = Detector.load(model_dir)
    return {
        f"dataset {i}": evaluate_detector(detector, images[:max_images])
        for i, images in enumerate(val_sets)
        if images
    }


def pr_curve_figure(report: EvalReport, title: str = "Precision-recall at IoU 0.5"):
    """A plotly figure with one precision-recall line per class that has ground truth."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, (rec, prec) in report.pr_curves.items():
        shown = prec > -1
        ap50 = report.per_class[name]["ap50"]
        fig.add_trace(
            go.Scatter(x=rec[shown], y=prec[shown], mode="lines", name=f"{name} (AP50 {ap50:.3f})")
        )
    fig.update_layout(
        title=title,
        xaxis_title="recall",
        yaxis_title="precision",
        xaxis_range=[0, 1],
        yaxis_range=[0, 1.02],
        template="plotly_white",
    )
    return fig


def predict_dataset(
    model_dir: str | Path,
    gt: Dataset,
    score_threshold: float = AP_SCORE_THRESHOLD,
    tiled: bool | None = None,
    flip: bool | None = None,
    multiscale: bool | None = None,
) -> list[Detections]:
    """Run the detector in ``model_dir`` on every image of ``gt`` (loaded lazily).

    ``score_threshold`` is low by default so the precision/recall curve behind AP is complete
    (the model's own, higher, defaults would cut it); counting applies its thresholds afterwards.
    ``tiled`` is ``Detector.detect``'s (``None``: the model's rule by image size);
    ``flip`` is ``skuaudit detect --flip`` (every class) / ``--no-flip`` (none), ``None`` the
    model's ``flip_classes``; ``multiscale`` likewise for ``multiscale_classes``.
    """
    import cv2

    from skuaudit.detector import Detector
    from skuaudit.detector.cli import apply_view_arguments

    detector = Detector.load(model_dir)
    apply_view_arguments(detector.config, flip, multiscale)
    predictions = []
    for item in gt.images:
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{item.path}: cannot decode image")
        predictions.append(detector.detect(image, score_threshold=score_threshold, tiled=tiled))
    return predictions


def _print_table(report: EvalReport) -> None:
    def fmt(v: float | None) -> str:
        return "   -  " if v is None else f"{v:6.3f}"

    ar = f"ar{report.max_dets}"
    print(f"{report.images} images")
    print(
        f"{'class':<10} {'AP':>6} {'AP50':>6} {'AP75':>6} {ar.upper():>6} {'cMAE':>6} {'cRMSE':>6}"
    )
    rows = [("all", {**report.to_dict()})] + list(report.per_class.items())
    for name, m in rows:
        print(
            f"{name:<10} {fmt(m['ap'])} {fmt(m['ap50'])} {fmt(m['ap75'])} {fmt(m[ar])} "
            f"{fmt(m['count_mae'])} {fmt(m['count_rmse'])}"
        )


def cli_main(argv: list[str]) -> int:
    """``skuaudit evaluate``: COCO AP / AR300 and counting error of a model on a dataset."""
    from skuaudit.config import get_settings
    from skuaudit.datasets.readers import FORMATS, ScoreBands, parse_class_map, read_dataset
    from skuaudit.detector.cli import add_tiling_arguments

    parser = argparse.ArgumentParser(
        prog="skuaudit evaluate", description="COCO AP / AR300 and counting error on a dataset"
    )
    parser.add_argument("--dataset", required=True, type=Path, help="dataset folder or file")
    parser.add_argument("--format", default="auto", choices=[*FORMATS, "auto"])
    parser.add_argument(
        "--class-map", default=None, help="e.g. 0=gap (dataset class -> model class)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model folder (default: SKUAUDIT_MODEL_DIR or models/default)",
    )
    parser.add_argument("--skip-bad", action="store_true", help="skip bad images, list them")
    parser.add_argument("--max-dets", type=int, default=300)
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="minimum score of a counted detection (default: the model's per-class thresholds)",
    )
    parser.add_argument(
        "--split",
        choices=("all", "train", "val"),
        default="all",
        help="score only this part of the training split by image (as `skuaudit train` makes it: "
        "sorted names, --seed, --val-fraction), e.g. val to reproduce a model card",
    )
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--labels",
        default="labels",
        help="YOLO: the label folder beside images/, e.g. teacher for a labelling model's boxes",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="YOLO labels with a sixth column (a score): boxes scoring at least this are objects "
        "(default: every box)",
    )
    parser.add_argument(
        "--ignore-score",
        type=float,
        default=None,
        help="with --min-score: boxes scoring from this up to --min-score are unsure, neither "
        "rewarded nor penalised",
    )
    parser.add_argument(
        "--exclude",
        type=Path,
        default=None,
        help="leave out the images this file names (JSON list of names or of {image: ...}, or "
        "one name a line), e.g. row_counts.json; applied before --split",
    )
    parser.add_argument(
        "--row-counts",
        type=Path,
        default=None,
        help="hand-counted rows (JSON list of {image, box_xyxy, count}): score only their "
        "photos and also print the row-count error",
    )
    add_tiling_arguments(parser)
    parser.add_argument("--pr-html", type=Path, default=None, help="write the PR curve as HTML")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        if args.ignore_score is not None and args.min_score is None:
            raise ValueError("--ignore-score needs --min-score")
        gt = read_dataset(
            args.dataset,
            args.format,
            skip_bad=args.skip_bad,
            class_map=parse_class_map(args.class_map),
            labels=args.labels,
            score_bands=(
                ScoreBands(args.min_score, args.ignore_score)
                if args.min_score is not None
                else None
            ),
        )
        rows = read_row_counts(args.row_counts) if args.row_counts else None
        if args.exclude is not None:
            excluded = image_names(args.exclude)
            gt = keep_images(gt, lambda name: name not in excluded)
        if rows is not None:
            counted = {r["image"] for r in rows}
            gt = keep_images(gt, lambda name: name in counted)
        if args.split != "all":
            from skuaudit.datasets.splits import split_by_image

            if not 0 < args.val_fraction < 1:
                raise ValueError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
            train, val = split_by_image(gt, args.val_fraction, args.seed)
            gt = Dataset(gt.classes, val if args.split == "val" else train, gt.problems)
        model_dir = args.model or get_settings().default_model_dir
        predictions = predict_dataset(
            model_dir, gt, tiled=args.tiled, flip=args.flip, multiscale=args.multiscale
        )
        if args.score_threshold is None:
            from skuaudit.detector.detector import read_model_config

            count_threshold: float | dict[str, float] = read_model_config(model_dir).threshold_map()
        else:
            count_threshold = args.score_threshold
        report = evaluate_detections(
            gt,
            predictions,
            CLASS_NAMES,
            max_dets=args.max_dets,
            score_threshold=count_threshold,
        )
        rows_report = None
        if rows is not None:
            by_name = {im.path.name: p for im, p in zip(gt.images, predictions, strict=True)}
            missing = sorted({r["image"] for r in rows} - set(by_name))
            if missing:
                raise DatasetError(f"{args.row_counts}: no such images in the data set: {missing}")
            product_threshold = (
                count_threshold["product"] if isinstance(count_threshold, dict) else count_threshold
            )
            rows_report = row_count_errors(rows, by_name, product_threshold)
    except (DatasetError, ValueError, OSError, RuntimeError) as exc:
        # RuntimeError: skuaudit.detector.ModelLoadError (a missing or unusable model folder)
        print(f"skuaudit evaluate: {exc}", file=sys.stderr)
        return 2
    for problem in gt.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if args.pr_html is not None:
        pr_curve_figure(report).write_html(args.pr_html)
    if args.json:
        print(json.dumps({**report.to_dict(), **({"row_counts": rows_report} if rows else {})}))
    else:
        _print_table(report)
        if rows_report is not None:
            print(
                f"row-count error {rows_report['count_error_pct']:.1f} % (signed "
                f"{rows_report['signed_error_pct']:+.1f} %) on {rows_report['rows']} counted rows"
            )
    return 0


def image_names(path: Path) -> set[str]:
    """Image file names listed in ``path``: a JSON list of names or of ``{"image": name}``
    objects (e.g. ``row_counts.json``), or plain text with one name a line.

    Raises:
        DatasetError: the file cannot be read.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the list of images ({exc})") from exc
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        return {line.strip() for line in text.splitlines() if line.strip()}
    if not isinstance(items, list):
        raise DatasetError(f"{path}: expected a JSON list of image names")
    names = set()
    for item in items:
        name = item.get("image") if isinstance(item, dict) else item
        if not isinstance(name, str):
            raise DatasetError(f"{path}: {item!r} is neither a name nor an {{image: name}} object")
        names.add(name)
    return names


def keep_images(gt: Dataset, keep) -> Dataset:
    """The images of ``gt`` whose file name ``keep(name)`` accepts.

    Raises:
        DatasetError: none is left.
    """
    kept = [im for im in gt.images if keep(im.path.name)]
    if not kept:
        raise DatasetError(f"{gt.meta.get('source', 'the data set')}: no images left to score")
    return Dataset(gt.classes, kept, gt.problems, gt.meta)

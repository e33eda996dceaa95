"""The audit pipeline: photos -> products and gaps -> brands -> shelf rows -> metrics -> database.

One image::

    analysis = analyse_image(image_bgr, detector, recognizer, gallery)

Several images (or an accumulated live window) are saved as one audit, in one transaction::

    audit_id = save_audit(store_id, [analysis, ...], source="photo", user_name="ana",
                          model_name=detector_name(detector))

From the command line::

    skuaudit audit shelf1.jpg shelf2.jpg --store "Harbour Foods" --user ana --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import sqlalchemy as sa

from skuaudit.detections import CLASS_NAMES, Detections
from skuaudit.images import ImageError, encode_jpeg, load_image_file
from skuaudit.metrics import UNKNOWN_BRAND_ID, AuditMetrics, audit_metrics
from skuaudit.shelves import group_rows
from skuaudit.storage import models as m
from skuaudit.storage.db import DatabaseError, session_scope

SOURCES: tuple[str, ...] = ("photo", "live")


class DetectorLike(Protocol):
    def detect(self, image_bgr: np.ndarray) -> Detections: ...


class EmptyAuditError(ValueError):
    """Nothing was detected; saving needs an explicit ``allow_empty=True``."""


class ModelUnavailableError(ValueError):
    """The detector or the recognition model cannot be loaded; the message says which file."""


@dataclass
class ImageAnalysis:
    """One analysed image.

    Attributes:
        image_bgr: ``(H, W, 3)`` uint8 image.
        detections: products and gaps with ``brand_id``, ``brand_score``, ``shelf_row`` and
            ``corrected`` (bool: brand set by hand).
    """

    image_bgr: np.ndarray
    detections: Detections

    @property
    def width_px(self) -> int:
        return int(self.image_bgr.shape[1])

    @property
    def height_px(self) -> int:
        return int(self.image_bgr.shape[0])

    @property
    def is_empty(self) -> bool:
        """No product and no gap was found: probably not a shelf photo."""
        return len(self.detections) == 0


def analyse_image(
    image_bgr: np.ndarray,
    detector: DetectorLike,
    recognizer,
    gallery,
    *,
    threshold: float | None = None,
    fast: bool = False,
) -> ImageAnalysis:
    """Detect, recognise brands and group rows in one image.

    Args:
        image_bgr: ``(H, W, 3)`` uint8 BGR photo.
        detector: anything with ``detect(image_bgr) -> Detections`` (``skuaudit.detector.Detector``).
        recognizer: a ``skuaudit.recognition.Recognizer``.
        gallery: the ``skuaudit.recognition.Gallery`` of enrolled references.
        threshold: brand score threshold; ``None`` uses the recognizer's.
        fast: the cheaper recognition path for live frames (no keypoint verification).
    """
    detections = detector.detect(image_bgr)
    detections = recognizer.assign_brands(image_bgr, detections, gallery, threshold, fast=fast)
    detections = group_rows(detections)
    return ImageAnalysis(
        image_bgr, detections.with_data(corrected=np.zeros(len(detections), dtype=bool))
    )


def correct_brands(analysis: ImageAnalysis, brand_by_index: dict[int, int]) -> ImageAnalysis:
    """A copy with the brands of some detections set by hand (``-1`` = unknown), marked corrected.

    Raises:
        ValueError: an index that is not a product detection of this image.
    """
    det = analysis.detections
    brand_ids = np.asarray(det.data["brand_id"], dtype=np.int64).copy()
    corrected = np.asarray(det.data.get("corrected", np.zeros(len(det), bool)), dtype=bool).copy()
    for index, brand_id in brand_by_index.items():
        if not 0 <= index < len(det) or CLASS_NAMES[det.class_id[index]] != "product":
            raise ValueError(f"detection {index} is not a product of this image")
        if brand_ids[index] != brand_id:
            brand_ids[index], corrected[index] = brand_id, True
    return ImageAnalysis(analysis.image_bgr, det.with_data(brand_id=brand_ids, corrected=corrected))


def combine(analyses: Sequence[ImageAnalysis]) -> Detections:
    """All detections of several images, with ``data["image_index"]`` (position in ``analyses``)."""
    parts = [
        a.detections.with_data(image_index=np.full(len(a.detections), i, dtype=np.int32))
        for i, a in enumerate(analyses)
    ]
    return Detections.merge(parts)


def _store_context(s, store_id: int) -> tuple[dict[int, str], dict[int, int]]:
    if s.get(m.Store, int(store_id)) is None:
        raise ValueError(f"store {store_id} does not exist (was it deleted?)")
    names = dict(s.execute(sa.select(m.Brand.id, m.Brand.name)).all())
    planogram = dict(
        s.execute(
            sa.select(m.PlanogramTarget.brand_id, m.PlanogramTarget.expected_facings).where(
                m.PlanogramTarget.store_id == int(store_id)
            )
        ).all()
    )
    return names, planogram


def metrics_for_store(
    analyses: Sequence[ImageAnalysis], store_id: int, url: str | None = None
) -> AuditMetrics:
    """``audit_metrics`` of the images with the store's brand names and planogram (no saving)."""
    with session_scope(url) as s:
        names, planogram = _store_context(s, store_id)
    return audit_metrics(combine(analyses), names, planogram)


def save_audit(
    store_id: int,
    analyses: Sequence[ImageAnalysis],
    *,
    source: str,
    user_name: str = "",
    model_name: str = "",
    images_jpeg: Sequence[bytes] | None = None,
    model_version_id: int | None = None,
    allow_empty: bool = False,
    url: str | None = None,
) -> int:
    """Write the audit, its images, detections and per-brand metrics in ONE transaction.

    Metrics are computed inside the transaction from the store's current planogram, so the saved
    figures always match the saved detections. Any failure leaves nothing behind.

    Args:
        store_id: the audited store.
        analyses: one per image (a live audit passes its snapshot frame).
        source: ``"photo"`` or ``"live"``.
        user_name: who audited.
        model_name: the detector's name (``detector_name``).
        images_jpeg: the stored JPEG of each image; ``None`` encodes ``analysis.image_bgr``.
        model_version_id: the ``ModelVersion`` of the detector, when known.
        allow_empty: save even when nothing was detected.
        url: database URL.

    Returns:
        The new audit id.

    Raises:
        EmptyAuditError: nothing detected in any image and ``allow_empty`` is false.
        ValueError: unknown store or brand, bad source, or images not matching analyses.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if not analyses:
        raise ValueError("an audit needs at least one image")
    if images_jpeg is not None and len(images_jpeg) != len(analyses):
        raise ValueError(f"{len(images_jpeg)} JPEG images for {len(analyses)} analysed images")
    if not allow_empty and all(a.is_empty for a in analyses):
        raise EmptyAuditError(
            "no products or gaps were found in the photo(s): is this a shelf? Nothing was saved"
        )
    jpegs = (
        list(images_jpeg)
        if images_jpeg is not None
        else [encode_jpeg(a.image_bgr) for a in analyses]
    )
    detections = combine(analyses)
    with session_scope(url) as s:
        names, planogram = _store_context(s, store_id)
        metrics = audit_metrics(detections, names, planogram)
        audit = m.Audit(
            store_id=int(store_id),
            user_name=user_name,
            source=source,
            model_version_id=model_version_id,
            model_name=model_name,
            product_count=metrics.product_count,
            gap_count=metrics.gap_count,
            gap_share_width=metrics.gap_share_width,
            shelf_width_px=metrics.shelf_width_px,
        )
        s.add(audit)
        s.flush()
        s.add_all(
            m.AuditImage(
                audit_id=audit.id,
                image_index=i,
                width=a.width_px,
                height=a.height_px,
                image_jpeg=jpeg,
            )
            for i, (a, jpeg) in enumerate(zip(analyses, jpegs, strict=True))
        )
        # Core bulk insert: ~150 rows per photo, an ORM object each would dominate the save time.
        if len(detections):
            s.execute(sa.insert(m.Detection), _detection_rows(audit.id, detections))
        s.add_all(
            m.BrandMetric(
                audit_id=audit.id,
                brand_id=r.brand_id,
                facings=r.facings,
                share_facings=r.share_facings,
                linear_px=r.linear_px,
                share_linear=r.share_linear,
                expected_facings=r.expected_facings,
                is_stockout=r.is_stockout,
                below_target=r.below_target,
            )
            for r in metrics.brands
        )
        s.flush()
        return audit.id


def _detection_rows(audit_id: int, detections: Detections) -> list[dict]:
    """Column values of the ``detections`` rows of one audit (for a bulk insert)."""
    n = len(detections)
    data = detections.data
    brand_ids = np.asarray(data.get("brand_id", np.full(n, UNKNOWN_BRAND_ID)), dtype=np.int64)
    scores = np.asarray(data.get("brand_score", np.zeros(n)), dtype=np.float64)
    rows = np.asarray(data.get("shelf_row", np.zeros(n)), dtype=np.int64)
    image_index = np.asarray(data.get("image_index", np.zeros(n)), dtype=np.int64)
    corrected = np.asarray(data.get("corrected", np.zeros(n, bool)), dtype=bool)
    is_product = detections.class_id == CLASS_NAMES.index("product")
    known = is_product & (brand_ids != UNKNOWN_BRAND_ID)
    xyxy = detections.xyxy.astype(np.float64).tolist()
    return [
        {
            "audit_id": audit_id,
            "image_index": int(image_index[i]),
            "x1": xyxy[i][0],
            "y1": xyxy[i][1],
            "x2": xyxy[i][2],
            "y2": xyxy[i][3],
            "score": float(detections.confidence[i]),
            "class_name": CLASS_NAMES[detections.class_id[i]],
            "brand_id": int(brand_ids[i]) if known[i] else None,
            "brand_score": float(scores[i]) if is_product[i] else None,
            "shelf_row": int(rows[i]),
            "corrected": bool(corrected[i]),
        }
        for i in range(n)
    ]


def detector_name(detector: DetectorLike, url: str | None = None) -> str:
    """A readable name of the detector for ``Audit.model_name``: its model version's name when
    registered, else its folder name (``model_registry.model_name_for``)."""
    from skuaudit.model_registry import model_name_for

    model_dir = getattr(detector, "model_dir", None)
    return model_name_for(model_dir, url) if model_dir else type(detector).__name__


def detector_version(detector: DetectorLike, url: str | None = None) -> int | None:
    """The ``ModelVersion`` id of the detector's folder, ``None`` when it is not registered."""
    from skuaudit.model_registry import model_version_for

    return model_version_for(getattr(detector, "model_dir", None), url)


@dataclass
class UploadBatch:
    """Photos analysed for review: the usable ones and a message per unusable file."""

    names: list[str]
    analyses: list[ImageAnalysis]
    errors: list[str]


def analyse_uploads(
    files: Sequence[tuple[str, bytes]], detector: DetectorLike, recognizer, gallery
) -> UploadBatch:
    """Decode and analyse uploaded photos; a bad file becomes a message, not an exception."""
    from skuaudit.images import MIN_SHELF_PHOTO_SIDE, load_image_bytes

    names, analyses, errors = [], [], []
    for name, data in files:
        try:
            image = load_image_bytes(data, name=name, min_side=MIN_SHELF_PHOTO_SIDE)
        except ImageError as exc:
            errors.append(str(exc))
            continue
        names.append(name)
        analyses.append(analyse_image(image, detector, recognizer, gallery))
    return UploadBatch(names, analyses, errors)


def load_detector(model_dir: str | Path | None = None, url: str | None = None):
    """The detector new audits use (``model_registry.active_model_dir`` by default).

    Raises:
        skuaudit.detector.ModelLoadError: missing or corrupt model folder.
    """
    from skuaudit.detector import Detector
    from skuaudit.model_registry import active_model_dir

    return Detector.load(model_dir if model_dir is not None else active_model_dir(url))


def load_models(model_dir: str | Path | None = None, url: str | None = None):
    """``(detector, recognizer)`` for audits.

    Raises:
        ModelUnavailableError: either model folder is missing or corrupt.
    """
    from skuaudit.detector import ModelLoadError
    from skuaudit.recognition import RecognitionModelError, Recognizer

    try:
        return load_detector(model_dir, url), Recognizer.load()
    except (ModelLoadError, RecognitionModelError) as exc:
        raise ModelUnavailableError(
            f"{exc}. Train or install a model (see the Model lab) or set SKUAUDIT_MODEL_DIR"
        ) from exc


def _bgr(color_hex: str) -> tuple[int, int, int]:
    h = color_hex.lstrip("#")
    try:
        r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return (136, 136, 136)
    return (b, g, r)


GAP_BGR = (0, 0, 255)
UNKNOWN_BGR = (160, 160, 160)


def draw_analysis(analysis: ImageAnalysis, brand_colours: dict[int, str]) -> np.ndarray:
    """A copy of the image with product boxes in their brand's colour, unknown grey, gaps red.

    Each box is labelled with its detection index (the ``detection`` column of
    ``detections_table``) so a reviewer can find it in the table.
    """
    import cv2

    image = analysis.image_bgr.copy()
    det = analysis.detections
    brand_ids = np.asarray(det.data.get("brand_id", np.full(len(det), UNKNOWN_BRAND_ID)))
    thickness = max(1, round(max(image.shape[:2]) / 500))
    for i, (box, cls, brand) in enumerate(zip(det.xyxy, det.class_id, brand_ids, strict=True)):
        if CLASS_NAMES[cls] == "gap":
            colour = GAP_BGR
        else:
            colour = _bgr(brand_colours[int(brand)]) if int(brand) in brand_colours else UNKNOWN_BGR
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        cv2.putText(
            image,
            str(i),
            (x1 + 2, y1 + 12 * thickness),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            colour,
            thickness,
            cv2.LINE_AA,
        )
    return image


def detections_table(analyses: Sequence[ImageAnalysis], brand_names: dict[int, str]):
    """One row per product for review: ``image, detection, row, brand, score, corrected``.

    ``brand`` is the brand name or ``"unknown"``; ``detection`` is the index within the image.
    """
    import pandas as pd

    from skuaudit.metrics import UNKNOWN_NAME

    rows = []
    for image_index, a in enumerate(analyses):
        det = a.detections
        for i in np.flatnonzero(det.class_id == 0):
            brand = int(det.data["brand_id"][i])
            rows.append(
                {
                    "image": image_index,
                    "detection": int(i),
                    "row": int(det.data["shelf_row"][i]),
                    "brand": brand_names.get(brand, UNKNOWN_NAME),
                    "score": round(float(det.data["brand_score"][i]), 3),
                    "corrected": bool(det.data.get("corrected", np.zeros(len(det), bool))[i]),
                }
            )
    columns = ["image", "detection", "row", "brand", "score", "corrected"]
    return pd.DataFrame(rows, columns=columns)


def apply_brand_table(
    analyses: Sequence[ImageAnalysis], table, brand_names: dict[int, str]
) -> list[ImageAnalysis]:
    """The analyses with the brands of an edited ``detections_table`` applied as corrections.

    Raises:
        ValueError: a brand name that is not in the catalogue.
    """
    from skuaudit.metrics import UNKNOWN_NAME

    ids_by_name = {name: bid for bid, name in brand_names.items()} | {
        UNKNOWN_NAME: UNKNOWN_BRAND_ID
    }
    wanted: dict[int, dict[int, int]] = {}
    for image_index, index, brand in zip(
        table["image"], table["detection"], table["brand"], strict=True
    ):
        if brand not in ids_by_name:
            raise ValueError(f"brand {brand!r} is not in the catalogue")
        wanted.setdefault(int(image_index), {})[int(index)] = ids_by_name[brand]
    return [correct_brands(a, wanted.get(i, {})) for i, a in enumerate(analyses)]


def run_audit(
    images_bgr: Sequence[np.ndarray],
    store_id: int,
    detector: DetectorLike,
    recognizer,
    gallery,
    *,
    user_name: str = "",
    threshold: float | None = None,
    allow_empty: bool = False,
    url: str | None = None,
) -> tuple[int, AuditMetrics]:
    """Analyse photos and save them as one photo audit; returns ``(audit_id, metrics)``."""
    analyses = [
        analyse_image(img, detector, recognizer, gallery, threshold=threshold) for img in images_bgr
    ]
    audit_id = save_audit(
        store_id,
        analyses,
        source="photo",
        user_name=user_name,
        model_name=detector_name(detector, url),
        model_version_id=detector_version(detector, url),
        allow_empty=allow_empty,
        url=url,
    )
    return audit_id, metrics_for_store(analyses, store_id, url)


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="skuaudit audit", description="Audit shelf photos for a store and save the result."
    )
    parser.add_argument("photos", nargs="+", type=Path, help="shelf photos (JPEG, PNG, WebP)")
    parser.add_argument("--store", required=True, help="store name, as in the catalogue")
    parser.add_argument("--user", default="", help="who audited")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--model", type=Path, help="detector folder (default: the active model)")
    parser.add_argument("--recognition-model", type=Path, help="default: models/recognition")
    parser.add_argument("--threshold", type=float, help="brand similarity threshold")
    parser.add_argument("--allow-empty", action="store_true", help="save even if nothing is found")
    parser.add_argument("--db-url", help="database URL (default: SKUAUDIT_DB_URL)")
    args = parser.parse_args(argv)

    from skuaudit.detector import ModelLoadError
    from skuaudit.recognition import Gallery, RecognitionModelError, Recognizer
    from skuaudit.storage.queries import store_id_by_name

    try:
        store_id = store_id_by_name(args.store, args.db_url)
        images = [load_image_file(p) for p in args.photos]
        detector = load_detector(args.model, args.db_url)
        recognizer = Recognizer.load(args.recognition_model)
        gallery = Gallery.from_database(args.db_url, recognizer)
        audit_id, metrics = run_audit(
            images,
            store_id,
            detector,
            recognizer,
            gallery,
            user_name=args.user,
            threshold=args.threshold,
            allow_empty=args.allow_empty,
            url=args.db_url,
        )
    except (ValueError, ImageError, DatabaseError, ModelLoadError, RecognitionModelError) as exc:
        print(f"skuaudit audit: {exc}", file=sys.stderr)
        return 2
    result = {"audit_id": audit_id, "store": args.store, "images": len(images), **metrics.to_json()}
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"audit {audit_id} saved for {args.store}: {metrics.product_count} facings, "
        f"{metrics.gap_count} gaps ({metrics.gap_share_width:.0%} of shelf width)"
    )
    for r in metrics.brands:
        print(
            f"  {r.name:<20} {r.facings:>4} facings  {r.share_facings:6.1%} by facings  "
            f"{r.share_linear:6.1%} by width"
        )
    if metrics.stockouts:
        print(f"  stockouts: {', '.join(metrics.stockouts)}")
    return 0

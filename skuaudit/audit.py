"""The audit pipeline: photos -> facings and gaps -> products (and brands) -> shelf rows -> metrics
-> database.

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
from skuaudit.errors import UserError
from skuaudit.images import ImageError, encode_jpeg, load_image_file
from skuaudit.metrics import (
    UNKNOWN_BRAND_ID,
    UNKNOWN_NAME,
    UNKNOWN_PRODUCT_ID,
    UNKNOWN_PRODUCT_NAME,
    AuditMetrics,
    ProductInfo,
    audit_metrics,
    product_label,
)
from skuaudit.shelves import group_rows
from skuaudit.storage import models as m
from skuaudit.storage.db import DatabaseError, session_scope

SOURCES: tuple[str, ...] = ("photo", "live")


class DetectorLike(Protocol):
    def detect(self, image_bgr: np.ndarray) -> Detections: ...


class EmptyAuditError(UserError):
    """Nothing was detected; saving needs an explicit ``allow_empty=True``."""


class ModelUnavailableError(UserError):
    """The detector or the recognition model cannot be loaded; the message says which file."""


@dataclass
class ImageAnalysis:
    """One analysed image.

    Attributes:
        image_bgr: ``(H, W, 3)`` uint8 image.
        detections: products and gaps with ``product_id``, ``product_score``, ``brand_id``,
            ``brand_score``, ``shelf_row`` and ``corrected`` (bool: product set by hand).
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
    cache=None,
) -> ImageAnalysis:
    """Detect, recognise products (and so brands) and group rows in one image.

    Args:
        image_bgr: ``(H, W, 3)`` uint8 BGR photo.
        detector: anything with ``detect(image_bgr) -> Detections`` (``skuaudit.detector.Detector``).
        recognizer: a ``skuaudit.recognition.Recognizer``.
        gallery: the ``skuaudit.recognition.Gallery`` of enrolled references.
        threshold: product score threshold; ``None`` uses the recognizer's.
        fast: the cheaper recognition path for live frames (no keypoint verification).
        cache: a video stream's ``skuaudit.recognition.TrackCache`` (with ``fast``): facings
            still in place since the previous frame keep their embedding.
    """
    detections = detector.detect(image_bgr)
    extra = {} if cache is None else {"cache": cache}
    detections = recognizer.assign_products(
        image_bgr, detections, gallery, threshold, fast=fast, **extra
    )
    detections = group_rows(detections)
    return ImageAnalysis(
        image_bgr, detections.with_data(corrected=np.zeros(len(detections), dtype=bool))
    )


@dataclass(frozen=True)
class Label:
    """What a facing is: a product of a brand, a brand's unknown product (``product_id`` -1), or
    unknown (both -1)."""

    brand_id: int
    product_id: int = UNKNOWN_PRODUCT_ID


UNKNOWN_LABEL = Label(UNKNOWN_BRAND_ID, UNKNOWN_PRODUCT_ID)


def correct_labels(analysis: ImageAnalysis, label_by_index: dict[int, Label]) -> ImageAnalysis:
    """A copy with the product (and brand) of some detections set by hand, marked corrected.

    Raises:
        ValueError: an index that is not a product detection of this image.
    """
    det = analysis.detections
    n = len(det)
    brand_ids = np.asarray(det.data.get("brand_id", np.full(n, -1)), dtype=np.int64).copy()
    product_ids = np.asarray(det.data.get("product_id", np.full(n, -1)), dtype=np.int64).copy()
    corrected = np.asarray(det.data.get("corrected", np.zeros(n, bool)), dtype=bool).copy()
    for index, label in label_by_index.items():
        if not 0 <= index < n or CLASS_NAMES[det.class_id[index]] != "product":
            raise ValueError(f"detection {index} is not a product of this image")
        if (brand_ids[index], product_ids[index]) != (label.brand_id, label.product_id):
            brand_ids[index], product_ids[index] = label.brand_id, label.product_id
            corrected[index] = True
    return ImageAnalysis(
        analysis.image_bgr,
        det.with_data(brand_id=brand_ids, product_id=product_ids, corrected=corrected),
    )


def combine(analyses: Sequence[ImageAnalysis]) -> Detections:
    """All detections of several images, with ``data["image_index"]`` (position in ``analyses``)."""
    parts = [
        a.detections.with_data(image_index=np.full(len(a.detections), i, dtype=np.int32))
        for i, a in enumerate(analyses)
    ]
    return Detections.merge(parts)


def store_context(s, store_id: int) -> dict:
    """The catalogue and the store's targets, as ``audit_metrics`` keyword arguments."""
    store = s.get(m.Store, int(store_id))
    if store is None or store.deleted_at is not None:
        raise UserError(f"store {store_id} does not exist (was it deleted?)")

    def targets(table, key):
        return dict(
            s.execute(
                sa.select(key, table.expected_facings).where(table.store_id == int(store_id))
            ).all()
        )

    return {
        "brand_names": dict(s.execute(sa.select(m.Brand.id, m.Brand.name)).all()),
        "planogram": targets(m.PlanogramTarget, m.PlanogramTarget.brand_id),
        "products": {
            pid: ProductInfo(brand_id, name)
            for pid, brand_id, name in s.execute(
                sa.select(m.Product.id, m.Product.brand_id, m.Product.name)
            )
        },
        "product_planogram": targets(m.ProductTarget, m.ProductTarget.product_id),
    }


def metrics_for_store(
    analyses: Sequence[ImageAnalysis], store_id: int, url: str | None = None
) -> AuditMetrics:
    """``audit_metrics`` of the images with the store's catalogue and planogram (no saving)."""
    with session_scope(url) as s:
        context = store_context(s, store_id)
    return audit_metrics(combine(analyses), **context)


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
    """Write the audit, its images, detections and per-product and per-brand metrics in ONE
    transaction.

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
        ValueError: unknown store, brand or product, bad source, or images not matching analyses.
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
        metrics = audit_metrics(detections, **store_context(s, store_id))
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
        write_audit_rows(s, audit.id, detections, metrics)
        s.flush()
        return audit.id


def write_audit_rows(s, audit_id: int, detections: Detections, metrics: AuditMetrics) -> None:
    """Add an audit's detections and its product and brand metric rows to session ``s``."""
    # Core bulk insert: ~150 rows per photo, an ORM object each would dominate the save time.
    if len(detections):
        s.execute(sa.insert(m.Detection), _detection_rows(audit_id, detections, metrics))

    def figures(record) -> dict:
        return {k: getattr(record, k) for k in m.AUDIT_FIGURES}

    s.add_all(
        m.ProductMetric(
            audit_id=audit_id, brand_id=r.brand_id, product_id=r.product_id, **figures(r)
        )
        for r in metrics.products
    )
    s.add_all(
        m.BrandMetric(audit_id=audit_id, brand_id=r.brand_id, **figures(r)) for r in metrics.brands
    )


@dataclass(frozen=True)
class SavedAudit:
    """What the database holds for one audit, as a page reports it after saving.

    Attributes:
        audit_id: the audit.
        store_name: its store.
        product_count: product facings stored.
        gap_count: gaps stored.
        image_sizes: ``(width, height)`` of each stored image, in order.
    """

    audit_id: int
    store_name: str
    product_count: int
    gap_count: int
    image_sizes: tuple[tuple[int, int], ...]

    def message(self) -> str:
        """E.g. ``"Audit 12 saved for Harbour Foods: 18 facings, 2 gaps (snapshot 640 x 480)."``"""
        sizes = ", ".join(f"{w} x {h}" for w, h in self.image_sizes)
        kind = "snapshot" if len(self.image_sizes) == 1 else "images"
        return (
            f"Audit {self.audit_id} saved for {self.store_name}: {self.product_count} facings, "
            f"{self.gap_count} gaps ({kind} {sizes})."
        )


def saved_audit(audit_id: int, url: str | None = None) -> SavedAudit:
    """Read back what was stored for ``audit_id`` (``save_audit``)."""
    with session_scope(url) as s:
        audit = s.get(m.Audit, int(audit_id))
        if audit is None:
            raise UserError(f"audit {audit_id} does not exist")
        sizes = s.execute(
            sa.select(m.AuditImage.width, m.AuditImage.height)
            .where(m.AuditImage.audit_id == audit.id)
            .order_by(m.AuditImage.image_index)
        ).all()
        return SavedAudit(
            audit.id,
            audit.store.name,
            audit.product_count,
            audit.gap_count,
            tuple((int(w), int(h)) for w, h in sizes),
        )


def _detection_rows(audit_id: int, detections: Detections, metrics: AuditMetrics) -> list[dict]:
    """Column values of the ``detections`` rows of one audit (for a bulk insert); a recognised
    product's brand is stored with it, as the metrics count it."""
    n = len(detections)
    data = detections.data
    product_ids = np.asarray(data.get("product_id", np.full(n, UNKNOWN_PRODUCT_ID)), np.int64)
    brand_ids = np.asarray(data.get("brand_id", np.full(n, UNKNOWN_BRAND_ID)), dtype=np.int64)
    brand_of = {r.product_id: r.brand_id for r in metrics.products if r.product_id is not None}
    scores = np.asarray(data.get("brand_score", np.zeros(n)), dtype=np.float64)
    product_scores = np.asarray(data.get("product_score", scores), dtype=np.float64)
    rows = np.asarray(data.get("shelf_row", np.zeros(n)), dtype=np.int64)
    image_index = np.asarray(data.get("image_index", np.zeros(n)), dtype=np.int64)
    corrected = np.asarray(data.get("corrected", np.zeros(n, bool)), dtype=bool)
    is_product = detections.class_id == CLASS_NAMES.index("product")
    xyxy = detections.xyxy.astype(np.float64).tolist()
    out = []
    for i in range(n):
        product = int(product_ids[i]) if is_product[i] and product_ids[i] >= 0 else None
        brand = brand_of[product] if product is not None else int(brand_ids[i])
        out.append(
            {
                "audit_id": audit_id,
                "image_index": int(image_index[i]),
                "x1": xyxy[i][0],
                "y1": xyxy[i][1],
                "x2": xyxy[i][2],
                "y2": xyxy[i][3],
                "score": float(detections.confidence[i]),
                "class_name": CLASS_NAMES[detections.class_id[i]],
                "brand_id": brand if is_product[i] and brand != UNKNOWN_BRAND_ID else None,
                "brand_score": float(scores[i]) if is_product[i] else None,
                "product_id": product,
                "product_score": float(product_scores[i]) if product is not None else None,
                "shelf_row": int(rows[i]),
                "corrected": bool(corrected[i]),
            }
        )
    return out


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


def upload_quality(files: Sequence[tuple[str, bytes]]) -> dict[str, list[str]]:
    """``images.photo_quality`` warnings of uploaded photos, by file name (only those with
    warnings; files that do not decode are left to ``analyse_uploads`` to report)."""
    from skuaudit.images import MIN_SHELF_PHOTO_SIDE, load_image_bytes, photo_quality

    found = {}
    for name, data in files:
        try:
            image = load_image_bytes(data, name=name, min_side=MIN_SHELF_PHOTO_SIDE)
        except ImageError:
            continue
        if warnings := photo_quality(image):
            found[name] = warnings
    return found


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


def shelf_order(detections: Detections) -> np.ndarray:
    """Indices of the product boxes in shelf order: top row first, then left to right.

    Example:
        >>> d = Detections([[50, 0, 60, 9], [0, 20, 9, 29], [0, 0, 9, 9], [20, 0, 30, 9]],
        ...                class_id=[0, 0, 0, 1], data={"shelf_row": [0, 1, 0, 0]})
        >>> shelf_order(d).tolist()
        [2, 0, 1]
    """
    products = np.flatnonzero(detections.class_id == CLASS_NAMES.index("product"))
    rows = np.asarray(detections.data.get("shelf_row", np.zeros(len(detections))))[products]
    return products[np.lexsort((detections.xyxy[products, 0], rows))]


def draw_analysis(analysis: ImageAnalysis, brand_colours: dict[int, str]) -> np.ndarray:
    """A copy of the image with product boxes in their brand's colour, unknown grey, gaps red.

    Products are numbered in shelf order (``shelf_order``, from 1: the ``box`` column of
    ``detections_table``), each number on a tag of the box's colour with black or white text,
    sized to the image so it reads on a phone, and moved below the box's top edge when it would
    cover an earlier tag. This is the one drawing of an analysis: the photo review and the
    dashboards' audit snapshots use it.
    """
    from skuaudit.drawing import box_colours, draw_boxes, draw_number_tags, hex_to_bgr

    image = analysis.image_bgr.copy()
    det = analysis.detections
    colours = box_colours(det, {brand: hex_to_bgr(h) for brand, h in brand_colours.items()})
    thickness = max(1, round(max(image.shape[:2]) / 500))
    draw_boxes(image, det.xyxy, colours, thickness)
    return draw_number_tags(image, det.xyxy, shelf_order(det), colours)


def review_options(
    brand_names: dict[int, str], products: dict[int, ProductInfo]
) -> dict[str, Label]:
    """The choices of the review table: every product as ``"Brand · Product"``, each brand's
    ``"Brand · unknown product"``, and ``"unknown"``; by brand, then product name."""
    options: dict[str, Label] = {}
    by_brand = sorted(brand_names.items(), key=lambda kv: kv[1].lower())
    for brand_id, brand in by_brand:
        own = sorted(
            ((pid, p.name) for pid, p in products.items() if p.brand_id == brand_id),
            key=lambda kv: kv[1].lower(),
        )
        for product_id, name in own:
            options[product_label(brand, name)] = Label(brand_id, product_id)
        options[product_label(brand, UNKNOWN_PRODUCT_NAME)] = Label(brand_id)
    options[UNKNOWN_NAME] = UNKNOWN_LABEL
    return options


def detections_table(
    analyses: Sequence[ImageAnalysis],
    brand_names: dict[int, str],
    products: dict[int, ProductInfo] | None = None,
):
    """One row per facing for review, in shelf order (image, then row, then left to right):
    ``image, box, row, product, brand, score, detection, corrected``.

    ``box`` is the number drawn on the photo (``draw_analysis``), ``row`` the shelf row (1 =
    top), ``product`` is ``"Brand · Product"`` (a ``review_options`` key), ``"Brand · unknown
    product"`` or ``"unknown"``; ``brand`` the brand name or ``"unknown"``; ``detection`` the
    index within the image's detections (what ``apply_review_table`` reads).
    """
    import pandas as pd

    products = products or {}
    rows = []
    for image_index, a in enumerate(analyses):
        det = a.detections
        n = len(det)
        product_ids = det.data.get("product_id", np.full(n, UNKNOWN_PRODUCT_ID))
        scores = det.data.get("product_score", det.data.get("brand_score", np.zeros(n)))
        corrected = det.data.get("corrected", np.zeros(n, bool))
        for number, i in enumerate(shelf_order(det), start=1):
            product = products.get(int(product_ids[i]))
            brand_id = product.brand_id if product else int(det.data["brand_id"][i])
            brand = brand_names.get(brand_id, UNKNOWN_NAME)
            if product is not None:
                label = product_label(brand, product.name)
            elif brand_id in brand_names:
                label = product_label(brand, UNKNOWN_PRODUCT_NAME)
            else:
                label = UNKNOWN_NAME
            rows.append(
                {
                    "image": image_index,
                    "box": number,
                    "row": int(det.data["shelf_row"][i]) + 1,
                    "product": label,
                    "brand": brand,
                    "score": round(float(scores[i]), 3),
                    "detection": int(i),
                    "corrected": bool(corrected[i]),
                }
            )
    columns = ["image", "box", "row", "product", "brand", "score", "detection", "corrected"]
    return pd.DataFrame(rows, columns=columns)


def stored_analyses(audit_id: int, url: str | None = None) -> list[ImageAnalysis]:
    """The images of a saved audit with their saved detections, one ``ImageAnalysis`` per image,
    to draw them (``draw_analysis``) as they were saved.

    Each detection carries ``brand_id``, ``product_id`` (-1: none recognised), ``brand_score``,
    ``product_score``, ``shelf_row`` and ``detection_id`` (its ``Detection`` row id).
    """
    from skuaudit.images import load_image_bytes

    with session_scope(url) as s:
        images = s.execute(
            sa.select(m.AuditImage.image_index, m.AuditImage.image_jpeg)
            .where(m.AuditImage.audit_id == int(audit_id))
            .order_by(m.AuditImage.image_index)
        ).all()
        rows = s.execute(
            sa.select(
                m.Detection.image_index,
                m.Detection.x1,
                m.Detection.y1,
                m.Detection.x2,
                m.Detection.y2,
                m.Detection.score,
                m.Detection.class_name,
                m.Detection.brand_id,
                m.Detection.brand_score,
                m.Detection.product_id,
                m.Detection.product_score,
                m.Detection.shelf_row,
                m.Detection.id,
            )
            .where(m.Detection.audit_id == int(audit_id))
            .order_by(m.Detection.id)
        ).all()
    analyses = []
    for index, jpeg in images:
        mine = [r for r in rows if r.image_index == index]
        det = Detections(
            np.array([[r.x1, r.y1, r.x2, r.y2] for r in mine], dtype=np.float32).reshape(-1, 4),
            confidence=np.array([r.score for r in mine], dtype=np.float32),
            class_id=np.array([CLASS_NAMES.index(r.class_name) for r in mine], dtype=np.int64),
            data={
                "brand_id": np.array(
                    [UNKNOWN_BRAND_ID if r.brand_id is None else r.brand_id for r in mine],
                    dtype=np.int64,
                ),
                "brand_score": np.array([r.brand_score or 0.0 for r in mine], dtype=np.float32),
                "product_id": np.array(
                    [UNKNOWN_PRODUCT_ID if r.product_id is None else r.product_id for r in mine],
                    dtype=np.int64,
                ),
                "product_score": np.array([r.product_score or 0.0 for r in mine], dtype=np.float32),
                "shelf_row": np.array([r.shelf_row or 0 for r in mine], dtype=np.int64),
                "detection_id": np.array([r.id for r in mine], dtype=np.int64),
            },
        )
        image = load_image_bytes(jpeg, max_bytes=len(jpeg) + 1, name=f"audit {audit_id} image")
        analyses.append(ImageAnalysis(image, det))
    return analyses


def apply_review_table(
    analyses: Sequence[ImageAnalysis], table, options: dict[str, Label]
) -> list[ImageAnalysis]:
    """The analyses with the products of an edited ``detections_table`` applied as corrections
    (``options`` from ``review_options``; the ``brand`` column follows the product).

    Raises:
        UserError: a product that is not in the catalogue.
    """
    wanted: dict[int, dict[int, Label]] = {}
    for image_index, index, product in zip(
        table["image"], table["detection"], table["product"], strict=True
    ):
        if product not in options:
            raise UserError(f"product {product!r} is not in the catalogue")
        wanted.setdefault(int(image_index), {})[int(index)] = options[product]
    return [correct_labels(a, wanted.get(i, {})) for i, a in enumerate(analyses)]


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
    parser.add_argument("--threshold", type=float, help="product similarity threshold")
    parser.add_argument("--allow-empty", action="store_true", help="save even if nothing is found")
    parser.add_argument("--db-url", help="database URL (default: SKUAUDIT_DB_URL)")
    args = parser.parse_args(argv)

    from skuaudit.detector import ModelLoadError
    from skuaudit.recognition import Gallery, RecognitionModelError, Recognizer
    from skuaudit.storage.db import check_schema
    from skuaudit.storage.queries import store_id_by_name

    try:
        check_schema(args.db_url)  # a new database: says to run 'skuaudit db upgrade'
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
        for p in (p for p in metrics.products if p.brand_id == r.brand_id and p.facings):
            print(f"    {p.name:<30} {p.facings:>4} facings  {p.share_facings:6.1%} by facings")
    if metrics.stockouts:
        print(f"  stockouts: {', '.join(metrics.stockouts)}")
    if metrics.product_stockouts:
        print(f"  product stockouts: {', '.join(metrics.product_stockouts)}")
    return 0

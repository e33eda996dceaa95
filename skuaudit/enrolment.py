"""Reference images of products: enrol, check, delete, and how well the gallery separates products.

A category manager enrols a product by uploading pack shots or by picking facings of a past audit.
Each reference is checked before it is stored (``validate_reference``: a colour image of a pack,
not blank, not a sliver) and refused when it repeats a reference already enrolled
(``DuplicateReferenceError``). Stored references are graded (``reference_report``): too small,
blurred (variance of the Laplacian at a fixed scale) or a near-duplicate of another reference
(image fingerprint or embedding), so weak ones can be replaced. After enrolment, ``gallery_separation``
lists the pairs of products whose references lie closest together in the embedding, the
look-alikes recognition is most likely to mix up.

Example:
    >>> ref_id = enrol_reference(product_id, open("pack.jpg", "rb").read())   # doctest: +SKIP
    >>> [r.issues for r in reference_report(product_id=product_id)]           # doctest: +SKIP
    >>> gallery_separation(Gallery.from_database(), labels).pairs.head()       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd
import sqlalchemy as sa

from skuaudit.errors import UserError
from skuaudit.images import ImageError, crop_xyxy, encode_png, load_image_bytes
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

MIN_REFERENCE_SIDE_PX = 16
MAX_REFERENCE_SIDE_PX = 256
MIN_REFERENCE_CONTRAST = 6.0
MAX_REFERENCE_ASPECT = 8.0
# A reference this small on its short side is kept but shown as weak: the embedding sees little.
WEAK_SIDE_PX = 40
# Sharpness is the variance of the Laplacian of the grey image scaled to this longer side, so the
# figure does not depend on the upload's resolution (README, "Enrolling products", has the figures
# it was chosen from).
SHARPNESS_SIDE_PX = 128
MIN_SHARPNESS = 100.0
# Image fingerprints (``image_fingerprint``) this close are the same picture: a second upload of
# one file, or a re-encoded or resized copy (README, "Enrolling products", has the figures).
FINGERPRINT_SIDE_PX = 16
DUPLICATE_DISTANCE = 15.0
# Embeddings this close: the recognizer cannot tell the two references apart either.
DUPLICATE_SIMILARITY = 0.995


class DuplicateReferenceError(UserError):
    """The image repeats a reference already enrolled; the message names which."""


def validate_reference(image_bgr: np.ndarray) -> np.ndarray:
    """Check that a crop can serve as a product reference; returns it (shrunk to at most 256 px).

    Raises:
        UserError: too small, extremely elongated, or blank (one uniform colour).
    """
    image_bgr = np.asarray(image_bgr)
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise UserError(f"a reference image must be a colour image, got shape {image_bgr.shape}")
    h, w = image_bgr.shape[:2]
    if min(h, w) < MIN_REFERENCE_SIDE_PX:
        raise UserError(
            f"the reference image is {w}x{h} pixels; crops need at least "
            f"{MIN_REFERENCE_SIDE_PX} pixels on each side"
        )
    if max(h, w) / min(h, w) > MAX_REFERENCE_ASPECT:
        raise UserError(
            f"the reference image is {w}x{h} pixels: too elongated for one product facing"
        )
    contrast = float(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).std())
    if contrast < MIN_REFERENCE_CONTRAST:
        raise UserError(
            "the reference image is blank (almost one uniform colour): it is not a product; "
            "upload a crop that shows the pack"
        )
    scale = MAX_REFERENCE_SIDE_PX / max(h, w)
    if scale < 1:
        image_bgr = cv2.resize(
            image_bgr,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
    return image_bgr


def image_fingerprint(image_bgr: np.ndarray) -> np.ndarray:
    """A ``16x16x3`` colour thumbnail: copies, re-encodings and resizes of one picture give
    nearly the same one, other packs (another flavour band) or other shots do not."""
    side = FINGERPRINT_SIDE_PX
    return cv2.resize(np.asarray(image_bgr), (side, side), interpolation=cv2.INTER_AREA)


def fingerprint_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The 95th percentile of the absolute differences of two fingerprints (0-255): a few
    cells that differ a lot (a flavour band) count, noise spread thinly does not."""
    return float(np.percentile(np.abs(a.astype(np.int16) - b.astype(np.int16)), 95))


def sharpness(image_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image scaled to ``SHARPNESS_SIDE_PX`` on its longer
    side; under ``MIN_SHARPNESS`` a reference counts as blurred."""
    grey = cv2.cvtColor(np.asarray(image_bgr), cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    scale = SHARPNESS_SIDE_PX / max(h, w)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    grey = cv2.resize(
        grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp
    )
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _product_label(s, product_id: int) -> str:
    row = s.execute(
        sa.select(m.Brand.name, m.Product.name)
        .join(m.Product, m.Product.brand_id == m.Brand.id)
        .where(m.Product.id == product_id)
    ).one_or_none()
    return f"{row[0]} / {row[1]}" if row else f"product {product_id}"


def _find_duplicate(s, image_bgr: np.ndarray) -> tuple[int, int] | None:
    """``(reference id, product id)`` of a stored reference showing the same picture, or None."""
    wanted = image_fingerprint(image_bgr)
    for ref_id, product_id, png in s.execute(
        sa.select(m.ReferenceImage.id, m.ReferenceImage.product_id, m.ReferenceImage.image_png)
    ):
        try:
            stored = load_image_bytes(png, name=f"reference image {ref_id}")
        except ImageError:
            continue
        if fingerprint_distance(wanted, image_fingerprint(stored)) <= DUPLICATE_DISTANCE:
            return ref_id, product_id
    return None


def enrol_reference(
    product_id: int,
    image: bytes | np.ndarray,
    source: str = "upload",
    url: str | None = None,
    *,
    recognizer=None,
    is_demo: bool = False,
) -> int:
    """Validate a reference crop and store it for ``product_id`` in one transaction.

    Args:
        product_id: the product the crop shows.
        image: encoded image bytes (an upload) or a BGR array (a crop of an audit photo).
        source: where it came from: ``"upload"``, ``"camera"``, ``"audit"`` or ``"demo"``.
        url: database URL.
        recognizer: when given, the reference's features are computed and stored now;
            otherwise the next ``Gallery.from_database`` computes them.
        is_demo: mark the row as demo data.

    Returns:
        The new ``ReferenceImage`` id.

    Raises:
        ImageError: the bytes are not a usable image.
        DuplicateReferenceError: the same picture is already a reference (of this product or of
            another one, which is named).
        UserError: the crop is not a product (blank, tiny, elongated) or the product does not
            exist.
    """
    if isinstance(image, bytes | bytearray):
        image_bgr = load_image_bytes(bytes(image), name="reference image")
    else:
        image_bgr = np.asarray(image)
    image_bgr = validate_reference(image_bgr)
    features = None if recognizer is None else recognizer.describe([image_bgr])[0]
    with session_scope(url) as s:
        product = s.get(m.Product, int(product_id))
        if product is None or product.brand.deleted_at is not None:
            raise UserError(f"product {product_id} does not exist (was it deleted?)")
        duplicate = _find_duplicate(s, image_bgr)
        if duplicate is not None:
            ref_id, other = duplicate
            whose = (
                "this product"
                if other == int(product_id)
                else f"another product, {_product_label(s, other)}"
            )
            raise DuplicateReferenceError(
                f"this picture is already reference #{ref_id} of {whose}; nothing was added"
            )
        ref = m.ReferenceImage(
            product_id=int(product_id),
            image_png=encode_png(image_bgr),
            source=source,
            is_demo=is_demo,
        )
        if features is not None:
            from skuaudit.recognition import cache_features

            cache_features(ref, features, recognizer)
        s.add(ref)
        s.flush()
        return ref.id


def delete_reference(reference_id: int, url: str | None = None) -> None:
    """Delete one reference image (its product keeps its other references)."""
    with session_scope(url) as s:
        ref = s.get(m.ReferenceImage, int(reference_id))
        if ref is None:
            raise UserError(f"reference image {reference_id} does not exist (was it deleted?)")
        s.delete(ref)


def detection_crop(detection_id: int, url: str | None = None) -> np.ndarray:
    """The BGR crop of a saved detection, cut from its audit image.

    Raises:
        UserError: no such detection, or its audit kept no image.
    """
    with session_scope(url) as s:
        det = s.get(m.Detection, int(detection_id))
        if det is None:
            raise UserError(f"detection {detection_id} does not exist")
        jpeg = s.scalar(
            sa.select(m.AuditImage.image_jpeg).where(
                m.AuditImage.audit_id == det.audit_id, m.AuditImage.image_index == det.image_index
            )
        )
        box = np.array([det.x1, det.y1, det.x2, det.y2], dtype=np.float32)
    if jpeg is None:
        raise UserError(f"audit of detection {detection_id} has no stored image to crop from")
    try:
        image = load_image_bytes(jpeg, name=f"audit image of detection {detection_id}")
    except ImageError as exc:
        raise UserError(str(exc)) from exc
    return crop_xyxy(image, box)


def enrol_from_detection(
    detection_id: int,
    product_id: int,
    url: str | None = None,
    *,
    recognizer=None,
) -> int:
    """Enrol the crop of a past audit's detection as a reference of ``product_id``."""
    return enrol_reference(
        product_id, detection_crop(detection_id, url), "audit", url, recognizer=recognizer
    )


@dataclass(frozen=True)
class ReferenceCheck:
    """One stored reference and what makes it weak (``issues`` empty: a good reference).

    Attributes:
        reference_id, product_id: database ids.
        image_bgr: the stored crop.
        width, height: its size in pixels.
        sharpness: ``sharpness(image_bgr)``.
        source: where it came from (``upload``, ``audit``, ...).
        issues: human-readable reasons, e.g. ``"small (30x52 px)"``, ``"blurred"``,
            ``"near-duplicate of #12 (same product)"``.
    """

    reference_id: int
    product_id: int
    image_bgr: np.ndarray
    width: int
    height: int
    sharpness: float
    source: str
    issues: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_weak(self) -> bool:
        return bool(self.issues)


def reference_report(
    url: str | None = None, *, product_id: int | None = None, brand_id: int | None = None
) -> list[ReferenceCheck]:
    """Grade the references of one product, one brand, or (neither given) the whole catalogue.

    Duplicates are looked for among all references: an image fingerprint within
    ``DUPLICATE_DISTANCE``, or a cached embedding within ``DUPLICATE_SIMILARITY`` (embeddings of
    one recognition model only, as ``Gallery.from_database`` caches them). The later reference of
    a pair is the one flagged.
    """
    with session_scope(url) as s:
        rows = s.execute(
            sa.select(
                m.ReferenceImage.id,
                m.ReferenceImage.product_id,
                m.Product.brand_id,
                m.ReferenceImage.image_png,
                m.ReferenceImage.embedding,
                m.ReferenceImage.embedding_model,
                m.ReferenceImage.source,
            )
            .join(m.Product, m.Product.id == m.ReferenceImage.product_id)
            .order_by(m.ReferenceImage.id)
        ).all()
        labels = {
            pid: f"{b} / {p}"
            for pid, b, p in s.execute(
                sa.select(m.Product.id, m.Brand.name, m.Product.name).join(
                    m.Brand, m.Brand.id == m.Product.brand_id
                )
            )
        }
    images, fingerprints = {}, {}
    for ref_id, *_, png, _, _, _ in rows:
        try:
            images[ref_id] = load_image_bytes(png, name=f"reference image {ref_id}")
        except ImageError:
            continue
        fingerprints[ref_id] = image_fingerprint(images[ref_id])
    embeddings = {
        ref_id: (model, np.frombuffer(vector, dtype=np.float32))
        for ref_id, _, _, _, vector, model, _ in rows
        if vector is not None
    }
    product_of = {ref_id: pid for ref_id, pid, *_ in rows}
    checks = []
    for ref_id, pid, bid, _, _, _, source in rows:
        if (product_id is not None and pid != product_id) or (
            brand_id is not None and bid != brand_id
        ):
            continue
        if ref_id not in images:
            checks.append(
                ReferenceCheck(
                    ref_id,
                    pid,
                    np.zeros((1, 1, 3), np.uint8),
                    0,
                    0,
                    0.0,
                    source,
                    ("not a readable image",),
                )
            )
            continue
        image = images[ref_id]
        h, w = image.shape[:2]
        issues = []
        if min(h, w) < WEAK_SIDE_PX:
            issues.append(f"small ({w}x{h} px; {WEAK_SIDE_PX} px or more a side is better)")
        sharp = sharpness(image)
        if sharp < MIN_SHARPNESS:
            issues.append(f"blurred (sharpness {sharp:.0f}, {MIN_SHARPNESS:.0f} or more is sharp)")
        for other in [r for r in fingerprints if r < ref_id]:
            distance = fingerprint_distance(fingerprints[ref_id], fingerprints[other])
            same_picture = distance <= DUPLICATE_DISTANCE
            mine, theirs = embeddings.get(ref_id), embeddings.get(other)
            same_vector = (
                mine is not None
                and theirs is not None
                and mine[0] == theirs[0]
                and float(mine[1] @ theirs[1]) >= DUPLICATE_SIMILARITY
            )
            if same_picture or same_vector:
                whose = "same product" if product_of[other] == pid else labels[product_of[other]]
                issues.append(f"near-duplicate of #{other} ({whose})")
                break
        checks.append(ReferenceCheck(ref_id, pid, image, w, h, sharp, source, tuple(issues)))
    return checks


@dataclass(frozen=True)
class GallerySeparation:
    """How well the enrolled references keep products apart (``gallery_separation``).

    Attributes:
        pairs: one row per pair of products, closest first: ``product_a``, ``product_b``
            (labels), ``same_brand``, ``similarity`` (cosine similarity of their two closest
            references), ``confusions`` (references of either product whose nearest other
            reference belongs to the other product).
        leave_one_out_accuracy: of the references whose product has another reference, the
            fraction whose nearest other reference is of their own product; ``None`` when no
            product has two references.
        references: references in the gallery.
    """

    pairs: pd.DataFrame
    leave_one_out_accuracy: float | None
    references: int


PAIR_COLUMNS = ["product_a", "product_b", "same_brand", "similarity", "confusions"]


def gallery_separation(gallery, labels: dict[int, str], top: int = 20) -> GallerySeparation:
    """The look-alike products of a gallery, from its current embeddings.

    Args:
        gallery: a ``skuaudit.recognition.Gallery`` (product id and brand id per reference).
        labels: product id -> label to show (e.g. ``"Brand · Product"``).
        top: pairs to keep, closest first.
    """
    product_ids = np.asarray(gallery.product_ids)
    brand_of = dict(zip(product_ids.tolist(), np.asarray(gallery.brand_ids).tolist(), strict=True))
    n = len(product_ids)
    if n < 2 or len(set(product_ids.tolist())) < 2:
        return GallerySeparation(pd.DataFrame(columns=PAIR_COLUMNS), None, n)
    embeddings = np.asarray(gallery.embeddings, dtype=np.float32)
    similarity = embeddings @ embeddings.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    has_sibling = np.array([(product_ids == p).sum() > 1 for p in product_ids])
    correct = product_ids[nearest] == product_ids
    accuracy = float(correct[has_sibling].mean()) if has_sibling.any() else None
    confusions: dict[tuple[int, int], int] = {}
    for i in np.flatnonzero(has_sibling & ~correct):
        pair = tuple(sorted((int(product_ids[i]), int(product_ids[nearest[i]]))))
        confusions[pair] = confusions.get(pair, 0) + 1
    products = sorted(set(product_ids.tolist()))
    rows = []
    for a_index, a in enumerate(products):
        for b in products[a_index + 1 :]:
            block = similarity[np.ix_(product_ids == a, product_ids == b)]
            rows.append(
                {
                    "product_a": labels.get(a, f"product {a}"),
                    "product_b": labels.get(b, f"product {b}"),
                    "same_brand": brand_of[a] == brand_of[b],
                    "similarity": float(block.max()),
                    "confusions": confusions.get((a, b), 0),
                }
            )
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS).sort_values(
        ["confusions", "similarity"], ascending=[False, False], ignore_index=True
    )
    return GallerySeparation(pairs.head(top), accuracy, n)


@dataclass(frozen=True)
class PickerImage:
    """One image of a past audit with its product boxes numbered, for picking references.

    Attributes:
        image_index: position of the image in its audit.
        image_bgr: the image with every product box drawn and numbered from 1.
        detection_ids: ``Detection`` id of box 1, 2, ... (in shelf order: row, then left to right).
        labels: what each box was recognised as (``"Brand · Product"``, ``"unknown"``, ...).
    """

    image_index: int
    image_bgr: np.ndarray
    detection_ids: tuple[int, ...]
    labels: tuple[str, ...]


def picker_images(audit_id: int, url: str | None = None) -> list[PickerImage]:
    """The stored images of an audit with their product boxes numbered (``PickerImage``), drawn
    as the photo review draws them (``audit.draw_analysis``: brand colours, numbers in shelf
    order).

    Raises:
        UserError: the audit does not exist or kept no image.
    """
    from skuaudit.audit import draw_analysis, shelf_order, stored_analyses
    from skuaudit.metrics import UNKNOWN_NAME, UNKNOWN_PRODUCT_NAME, product_label
    from skuaudit.storage.queries import brand_colours

    with session_scope(url) as s:
        if s.get(m.Audit, int(audit_id)) is None:
            raise UserError(f"audit {audit_id} does not exist")
        brands = dict(s.execute(sa.select(m.Brand.id, m.Brand.name)).all())
        products = dict(s.execute(sa.select(m.Product.id, m.Product.name)).all())
    analyses = stored_analyses(int(audit_id), url)
    if not analyses:
        raise UserError(f"audit {audit_id} kept no image to pick from")
    colours = brand_colours(url)

    def label(brand_id: int, product_id: int) -> str:
        if brand_id not in brands:
            return UNKNOWN_NAME
        return product_label(brands[brand_id], products.get(product_id, UNKNOWN_PRODUCT_NAME))

    out = []
    for image_index, analysis in enumerate(analyses):
        det = analysis.detections
        order = shelf_order(det)
        out.append(
            PickerImage(
                image_index,
                draw_analysis(analysis, colours),
                tuple(int(i) for i in det.data["detection_id"][order]),
                tuple(
                    label(int(det.data["brand_id"][i]), int(det.data["product_id"][i]))
                    for i in order
                ),
            )
        )
    return out

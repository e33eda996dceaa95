"""Brand recognition: few-shot, against a gallery of reference crops enrolled by analysts.

Each product box is cropped and described like every reference crop: an embedding from a small
CNN trained with a metric-learning loss (see ``scripts/train_recognition.py`` and
``models/recognition/MODEL_CARD.md``), colour histograms and, on the photo path, SIFT keypoints
verified with a RANSAC homography (``skuaudit.sku_matching``). The best-scoring brand wins when
its score reaches the threshold; below it the product is ``unknown`` (``brand_id == -1``). A new
brand therefore needs reference images, not retraining. Each reference's features are computed
once and cached in the database.

Example:
    >>> recognizer = Recognizer.load()                                  # doctest: +SKIP
    >>> gallery = Gallery.from_database(recognizer=recognizer)          # doctest: +SKIP
    >>> detections = recognizer.assign_brands(image_bgr, detections, gallery)  # doctest: +SKIP
    >>> detections.data["brand_id"], detections.data["brand_score"]    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import sqlalchemy as sa

from skuaudit.config import get_settings
from skuaudit.detections import PRODUCT, Detections
from skuaudit.images import ImageError, crop_xyxy, encode_png, load_image_bytes
from skuaudit.sku_matching import (
    FEATURES_VERSION,
    CropFeatures,
    MatchSettings,
    ProductMatcher,
    describe,
)
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

CONFIG_FILE = "config.json"
KERAS_FILE = "model.keras"
UNKNOWN_BRAND_ID = -1
MIN_REFERENCE_SIDE_PX = 16
MAX_REFERENCE_SIDE_PX = 256
MIN_REFERENCE_CONTRAST = 6.0
MAX_REFERENCE_ASPECT = 8.0
EMBED_BATCH = 256


class RecognitionModelError(RuntimeError):
    """The recognition model folder is missing or does not load; the message says which file."""


def default_model_dir() -> Path:
    """The embedding model audits use: ``SKUAUDIT_RECOGNITION_DIR``, by default
    ``<SKUAUDIT_MODELS_DIR>/recognition`` (the shipped model)."""
    return get_settings().recognition_model_dir


def preprocess_crops(crops_bgr: list[np.ndarray], input_size: int) -> np.ndarray:
    """Crops resized to the model input: ``(N, S, S, 3)`` float32 RGB ``0..255``.

    Crops are squeezed to a square (the pack's aspect is part of what the model sees); empty crops
    become black squares.
    """
    batch = np.zeros((len(crops_bgr), input_size, input_size, 3), dtype=np.float32)
    for i, crop in enumerate(crops_bgr):
        if crop is None or crop.size == 0 or min(crop.shape[:2]) < 1:
            continue
        h, w = crop.shape[:2]
        interp = cv2.INTER_AREA if max(h, w) > input_size else cv2.INTER_LINEAR
        resized = cv2.resize(crop, (input_size, input_size), interpolation=interp)
        batch[i] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    return batch


@dataclass
class Gallery:
    """Reference features of enrolled brands.

    Attributes:
        brand_ids: ``(M,)`` int64 brand of each reference.
        embeddings: ``(M, D)`` float32 L2-normalised reference embeddings.
        features: ``CropFeatures`` of each reference (embedding, colour, keypoints); required to
            match a non-empty gallery.
    """

    brand_ids: np.ndarray
    embeddings: np.ndarray
    features: list[CropFeatures] | None = None
    _matchers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.brand_ids = np.asarray(self.brand_ids, dtype=np.int64).reshape(-1)
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.brand_ids):
            raise ValueError(
                f"Gallery: {len(self.brand_ids)} brand ids need ({len(self.brand_ids)}, D) "
                f"embeddings, got shape {self.embeddings.shape}"
            )
        if self.features is not None and len(self.features) != len(self.brand_ids):
            raise ValueError(
                f"Gallery: {len(self.brand_ids)} brand ids but {len(self.features)} features"
            )

    def __len__(self) -> int:
        return len(self.brand_ids)

    @property
    def enrolled_brand_ids(self) -> list[int]:
        """Brands with at least one reference, sorted."""
        return sorted({int(b) for b in self.brand_ids})

    @classmethod
    def from_features(cls, brand_ids, features: list[CropFeatures]) -> Gallery:
        """A gallery of references described already (``Recognizer.describe``)."""
        embeddings = (
            np.stack([f.embedding for f in features]) if features else np.zeros((0, 0), np.float32)
        )
        return cls(brand_ids=np.asarray(brand_ids), embeddings=embeddings, features=list(features))

    @classmethod
    def from_references(
        cls, references: list[tuple[int, np.ndarray]], recognizer: Recognizer
    ) -> Gallery:
        """A gallery from ``(brand_id, BGR crop)`` pairs, without a database (evaluation)."""
        crops = [crop for _, crop in references]
        return cls.from_features([b for b, _ in references], recognizer.describe(crops))

    @classmethod
    def from_database(cls, url: str | None = None, recognizer: Recognizer | None = None) -> Gallery:
        """All reference images of the database, describing (and caching) those not yet described.

        A reference whose stored features came from another model or feature version
        (``embedding_model``) is described again; new features are written back in one
        transaction.

        Args:
            url: database URL (default ``SKUAUDIT_DB_URL``).
            recognizer: the model to embed with; ``None`` loads the default one.
        """
        recognizer = recognizer or Recognizer.load()
        with session_scope(url) as s:
            refs = s.scalars(sa.select(m.ReferenceImage).order_by(m.ReferenceImage.id)).all()
            features: dict[int, CropFeatures] = {}
            for r in refs:
                # a damaged cache entry is described again below
                if r.embedding is not None and r.embedding_model == recognizer.feature_name:
                    with contextlib.suppress(ValueError):
                        features[r.id] = CropFeatures.from_bytes(r.embedding)
            stale = [r for r in refs if r.id not in features]
            if stale:
                crops = [
                    load_image_bytes(r.image_png, name=f"reference image {r.id}") for r in stale
                ]
                for ref, feat in zip(stale, recognizer.describe(crops), strict=True):
                    ref.embedding = feat.to_bytes()
                    ref.embedding_model = recognizer.feature_name
                    features[ref.id] = feat
            if not refs:
                return cls(np.zeros(0), np.zeros((0, recognizer.embedding_dim)), features=[])
            return cls.from_features(
                np.array([r.brand_id for r in refs], dtype=np.int64),
                [features[r.id] for r in refs],
            )

    def matcher(self, recognizer: Recognizer) -> ProductMatcher:
        """The ``ProductMatcher`` of this gallery with ``recognizer``'s model (built once)."""
        key = (recognizer.name, recognizer.matching)
        if key not in self._matchers:
            if self.features is None and len(self):
                raise ValueError(
                    "this gallery holds embeddings only; build it with Gallery.from_database "
                    "or Gallery.from_references to match crops"
                )
            self._matchers[key] = ProductMatcher(
                self.brand_ids,
                self.features or [],
                embed=recognizer.embed,
                settings=recognizer.matching,
            )
        return self._matchers[key]

    def match(
        self,
        crops_bgr: list[np.ndarray],
        recognizer: Recognizer,
        *,
        threshold: float | None = None,
        fast: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The brand of each crop (``ProductMatcher.match``).

        Args:
            crops_bgr: BGR crops of product boxes.
            recognizer: the model the gallery was described with.
            threshold: lowest score (0..1) accepted; ``None`` uses the model's for the path.
            fast: the live-frame path (no keypoint verification).

        Returns:
            ``(brand_ids (N,) int64, scores (N,) float32)``: the best brand, or ``-1`` when its
            score is below the threshold; the score itself.
        """
        n = len(crops_bgr)
        if n == 0 or len(self) == 0:
            return np.full(n, UNKNOWN_BRAND_ID, dtype=np.int64), np.zeros(n, dtype=np.float32)
        return self.matcher(recognizer).match(crops_bgr, fast=fast, threshold=threshold)


class Recognizer:
    """The embedding model (one ``tf.function`` call per batch of crops) and the matching settings.

    Attributes:
        name: identifies the model (name + weights hash).
        feature_name: identifies cached reference features in ``ReferenceImage.embedding_model``
            (model name + feature version).
        input_size: side of the square model input in pixels.
        embedding_dim: length of an embedding.
        matching: ``MatchSettings`` (weights and thresholds of the photo and fast paths).
        threshold: default photo-path score below which a product is ``unknown``.
    """

    def __init__(
        self,
        model,
        *,
        name: str,
        input_size: int,
        matching: MatchSettings | None = None,
    ) -> None:
        import tensorflow as tf

        self.name = name
        self.input_size = int(input_size)
        self.matching = matching or MatchSettings()
        self.threshold = float(self.matching.threshold)
        self.embedding_dim = int(model.output_shape[-1])
        self._model = model
        self._embed_fn = tf.function(
            lambda images: model(images, training=False),
            input_signature=[
                tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.float32)
            ],
        )

    @classmethod
    def load(cls, model_dir: str | Path | None = None) -> Recognizer:
        """Load a model folder (``config.json`` + ``model.keras``); default ``default_model_dir()``.

        Raises:
            RecognitionModelError: missing folder or file, or a file that does not load.
        """
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if not model_dir.is_dir():
            raise RecognitionModelError(
                f"{model_dir}: recognition model folder not found (set SKUAUDIT_RECOGNITION_DIR, "
                "e.g. to the shipped models/recognition)"
            )
        config_path, keras_path = model_dir / CONFIG_FILE, model_dir / KERAS_FILE
        if not config_path.is_file():
            raise RecognitionModelError(f"{model_dir}: {CONFIG_FILE} is missing")
        if not keras_path.is_file():
            raise RecognitionModelError(f"{model_dir}: weights file {KERAS_FILE} is missing")
        try:
            config = json.loads(config_path.read_text())
            input_size = int(config["input_size"])
            matching = MatchSettings.from_dict(config.get("matching", {}))
            base_name = str(config.get("name", "recognition"))
        except (ValueError, KeyError, TypeError) as exc:
            raise RecognitionModelError(f"{model_dir}: {CONFIG_FILE} is corrupt ({exc})") from exc
        import keras

        try:
            model = keras.models.load_model(keras_path, compile=False)
        except Exception as exc:  # keras raises many types for a damaged file
            raise RecognitionModelError(
                f"{model_dir}: weights file {KERAS_FILE} does not load ({exc})"
            ) from exc
        digest = hashlib.sha256(keras_path.read_bytes()).hexdigest()[:10]
        return cls(model, name=f"{base_name}:{digest}", input_size=input_size, matching=matching)

    @property
    def feature_name(self) -> str:
        return f"{self.name}+{FEATURES_VERSION}"

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float32 L2-normalised embeddings of BGR crops of any size (batched)."""
        if not crops_bgr:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        parts = []
        for start in range(0, len(crops_bgr), EMBED_BATCH):
            batch = preprocess_crops(crops_bgr[start : start + EMBED_BATCH], self.input_size)
            parts.append(np.asarray(self._embed_fn(batch), dtype=np.float32))
        return np.concatenate(parts)

    def describe(self, crops_bgr: list[np.ndarray], *, fast: bool = False) -> list[CropFeatures]:
        """Features of crops (embedding, colour and, unless ``fast``, keypoints) for matching or
        for caching as reference features (``CropFeatures.to_bytes``)."""
        return describe(crops_bgr, self.embed, self.matching, with_keypoints=not fast)

    def assign_brands(
        self,
        image_bgr: np.ndarray,
        detections: Detections,
        gallery: Gallery,
        threshold: float | None = None,
        *,
        fast: bool = False,
    ) -> Detections:
        """A copy of ``detections`` with ``data["brand_id"]`` and ``data["brand_score"]``.

        Every product box of the image is matched in one batch (``Gallery.match``). Gaps get
        brand ``-1`` and score 0; products below the threshold get ``-1`` (unknown) and keep
        their best score.

        Args:
            image_bgr: ``(H, W, 3)`` uint8 image the boxes are in.
            detections: pixel ``xyxy`` boxes.
            gallery: enrolled references.
            threshold: score threshold (0..1); ``None`` uses the model's for the path.
            fast: the live-frame path: embedding and colour only, no keypoint verification.
        """
        n = len(detections)
        brand_ids = np.full(n, UNKNOWN_BRAND_ID, dtype=np.int64)
        scores = np.zeros(n, dtype=np.float32)
        products = np.flatnonzero(detections.class_id == PRODUCT)
        if len(products) and len(gallery):
            crops = [crop_xyxy(image_bgr, detections.xyxy[i]) for i in products]
            found, found_scores = gallery.match(crops, self, threshold=threshold, fast=fast)
            brand_ids[products], scores[products] = found, found_scores
        return detections.with_data(brand_id=brand_ids, brand_score=scores)


def validate_reference(image_bgr: np.ndarray) -> np.ndarray:
    """Check that a crop can serve as a brand reference; returns it (shrunk to at most 256 px).

    Raises:
        ValueError: too small, extremely elongated, or blank (one uniform colour).
    """
    image_bgr = np.asarray(image_bgr)
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"a reference image must be a colour image, got shape {image_bgr.shape}")
    h, w = image_bgr.shape[:2]
    if min(h, w) < MIN_REFERENCE_SIDE_PX:
        raise ValueError(
            f"the reference image is {w}x{h} pixels; crops need at least "
            f"{MIN_REFERENCE_SIDE_PX} pixels on each side"
        )
    if max(h, w) / min(h, w) > MAX_REFERENCE_ASPECT:
        raise ValueError(
            f"the reference image is {w}x{h} pixels: too elongated for one product facing"
        )
    contrast = float(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).std())
    if contrast < MIN_REFERENCE_CONTRAST:
        raise ValueError(
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


def enrol_reference(
    brand_id: int,
    image: bytes | np.ndarray,
    source: str = "upload",
    url: str | None = None,
    *,
    recognizer: Recognizer | None = None,
    is_demo: bool = False,
) -> int:
    """Validate a reference crop and store it for ``brand_id`` in one transaction.

    Args:
        brand_id: the brand the crop shows.
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
        ValueError: the crop is not a product (blank, tiny, elongated) or the brand does not exist.
    """
    if isinstance(image, bytes | bytearray):
        image_bgr = load_image_bytes(bytes(image), name="reference image")
    else:
        image_bgr = np.asarray(image)
    image_bgr = validate_reference(image_bgr)
    embedding, embedding_model = None, ""
    if recognizer is not None:
        embedding = recognizer.describe([image_bgr])[0].to_bytes()
        embedding_model = recognizer.feature_name
    with session_scope(url) as s:
        if s.get(m.Brand, int(brand_id)) is None:
            raise ValueError(f"brand {brand_id} does not exist (was it deleted?)")
        ref = m.ReferenceImage(
            brand_id=int(brand_id),
            image_png=encode_png(image_bgr),
            embedding=embedding,
            embedding_model=embedding_model,
            source=source,
            is_demo=is_demo,
        )
        s.add(ref)
        s.flush()
        return ref.id


def detection_crop(detection_id: int, url: str | None = None) -> np.ndarray:
    """The BGR crop of a saved detection, cut from its audit image.

    Raises:
        ValueError: no such detection, or its audit kept no image.
    """
    with session_scope(url) as s:
        det = s.get(m.Detection, int(detection_id))
        if det is None:
            raise ValueError(f"detection {detection_id} does not exist")
        jpeg = s.scalar(
            sa.select(m.AuditImage.image_jpeg).where(
                m.AuditImage.audit_id == det.audit_id, m.AuditImage.image_index == det.image_index
            )
        )
        box = np.array([det.x1, det.y1, det.x2, det.y2], dtype=np.float32)
    if jpeg is None:
        raise ValueError(f"audit of detection {detection_id} has no stored image to crop from")
    try:
        image = load_image_bytes(jpeg, name=f"audit image of detection {detection_id}")
    except ImageError as exc:
        raise ValueError(str(exc)) from exc
    return crop_xyxy(image, box)


def enrol_from_detection(
    detection_id: int,
    brand_id: int,
    url: str | None = None,
    *,
    recognizer: Recognizer | None = None,
) -> int:
    """Enrol the crop of a past audit's detection as a reference of ``brand_id``."""
    return enrol_reference(
        brand_id, detection_crop(detection_id, url), "audit", url, recognizer=recognizer
    )

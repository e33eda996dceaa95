"""Product recognition: few-shot, by nearest neighbour in a learned embedding space.

Each product box is cropped, embedded by a small CNN trained with a metric-learning loss (see
``scripts/train_recognition.py`` and ``models/recognition/MODEL_CARD.md``) and compared with the
reference gallery: the embeddings of a handful of reference crops per product (SKU), enrolled by
analysts (``skuaudit.enrolment``). The product of the most similar reference wins, and with it its
brand, when the cosine similarity reaches the threshold; below it the facing is ``unknown``
(``product_id == brand_id == -1``). A new product therefore needs reference images, not
retraining.

Example:
    >>> recognizer = Recognizer.load()                                  # doctest: +SKIP
    >>> gallery = Gallery.from_database(recognizer=recognizer)          # doctest: +SKIP
    >>> detections = recognizer.assign_products(image_bgr, detections, gallery)  # doctest: +SKIP
    >>> detections.data["product_id"], detections.data["brand_id"]     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import sqlalchemy as sa

from skuaudit.config import get_settings
from skuaudit.detections import PRODUCT, Detections
from skuaudit.images import crop_xyxy, load_image_bytes
from skuaudit.metrics import UNKNOWN_BRAND_ID, UNKNOWN_PRODUCT_ID
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

CONFIG_FILE = "config.json"
KERAS_FILE = "model.keras"
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
    """Reference embeddings of enrolled products.

    Attributes:
        product_ids: ``(M,)`` int64 product of each reference (the label recognition gives).
        embeddings: ``(M, D)`` float32 L2-normalised reference embeddings.
        brand_ids: ``(M,)`` int64 brand of each reference's product (``-1`` when not given).
        reference_ids: ``(M,)`` int64 ``ReferenceImage`` id of each reference (``-1`` when not
            from the database).
    """

    product_ids: np.ndarray
    embeddings: np.ndarray
    brand_ids: np.ndarray | None = None
    reference_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.product_ids = np.asarray(self.product_ids, dtype=np.int64).reshape(-1)
        n = len(self.product_ids)
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        if self.embeddings.ndim != 2 or len(self.embeddings) != n:
            raise ValueError(
                f"Gallery: {n} product ids need ({n}, D) embeddings, got shape "
                f"{self.embeddings.shape}"
            )
        for name in ("brand_ids", "reference_ids"):
            value = getattr(self, name)
            value = np.full(n, -1) if value is None else value
            value = np.asarray(value, dtype=np.int64).reshape(-1)
            if len(value) != n:
                raise ValueError(f"Gallery: {n} product ids need {n} {name}, got {len(value)}")
            setattr(self, name, value)

    def __len__(self) -> int:
        return len(self.product_ids)

    @property
    def enrolled_product_ids(self) -> list[int]:
        """Products with at least one reference, sorted."""
        return sorted({int(p) for p in self.product_ids})

    def brands_of(self, product_ids: np.ndarray) -> np.ndarray:
        """``(N,)`` int64 brand of each product id (``-1`` for unknown or unlisted products)."""
        brand_of = dict(zip(self.product_ids.tolist(), self.brand_ids.tolist(), strict=True))
        return np.array(
            [brand_of.get(int(p), UNKNOWN_BRAND_ID) for p in np.asarray(product_ids).reshape(-1)],
            dtype=np.int64,
        )

    @classmethod
    def from_database(cls, url: str | None = None, recognizer: Recognizer | None = None) -> Gallery:
        """All reference images of the database, embedding (and caching) those not yet embedded.

        A reference whose stored embedding came from another model (``embedding_model``) is
        embedded again; new embeddings are written back in one transaction.

        Args:
            url: database URL (default ``SKUAUDIT_DB_URL``).
            recognizer: the model to embed with; ``None`` loads the default one.
        """
        recognizer = recognizer or Recognizer.load()
        with session_scope(url) as s:
            rows = s.execute(
                sa.select(m.ReferenceImage, m.Product.brand_id)
                .join(m.Product, m.Product.id == m.ReferenceImage.product_id)
                .order_by(m.ReferenceImage.id)
            ).all()
            refs = [ref for ref, _ in rows]
            stale = [r for r in refs if r.embedding is None or r.embedding_model != recognizer.name]
            if stale:
                crops = [
                    load_image_bytes(r.image_png, name=f"reference image {r.id}") for r in stale
                ]
                for ref, vector in zip(stale, recognizer.embed(crops), strict=True):
                    ref.embedding = vector.astype(np.float32).tobytes()
                    ref.embedding_model = recognizer.name
            vectors = [np.frombuffer(r.embedding, dtype=np.float32) for r in refs]
            return cls(
                product_ids=np.array([r.product_id for r in refs], dtype=np.int64),
                embeddings=np.stack(vectors)
                if vectors
                else np.zeros((0, recognizer.embedding_dim)),
                brand_ids=np.array([brand_id for _, brand_id in rows], dtype=np.int64),
                reference_ids=np.array([r.id for r in refs], dtype=np.int64),
            )

    def match(self, embeddings: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Nearest reference of each query.

        Args:
            embeddings: ``(N, D)`` L2-normalised queries.
            threshold: lowest cosine similarity accepted as a match.

        Returns:
            ``(product_ids (N,) int64, scores (N,) float32)``: the product of the nearest
            reference, or ``-1`` when its similarity is below ``threshold``; the similarity itself.
        """
        embeddings = np.asarray(embeddings, dtype=np.float32)
        n = len(embeddings)
        if n == 0 or len(self) == 0:
            return np.full(n, UNKNOWN_PRODUCT_ID, dtype=np.int64), np.zeros(n, dtype=np.float32)
        similarity = embeddings @ self.embeddings.T
        best = similarity.argmax(axis=1)
        scores = similarity[np.arange(n), best].astype(np.float32)
        product_ids = np.where(scores >= threshold, self.product_ids[best], UNKNOWN_PRODUCT_ID)
        return product_ids.astype(np.int64), scores


class Recognizer:
    """The embedding model, run as one ``tf.function`` call per batch of crops.

    Attributes:
        name: identifies the model in ``ReferenceImage.embedding_model`` (name + weights hash).
        input_size: side of the square model input in pixels.
        embedding_dim: length of an embedding.
        threshold: default cosine similarity below which a product is ``unknown``.
    """

    def __init__(self, model, *, name: str, input_size: int, threshold: float) -> None:
        import tensorflow as tf

        self.name = name
        self.input_size = int(input_size)
        self.threshold = float(threshold)
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
            input_size, threshold = int(config["input_size"]), float(config["threshold"])
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
        return cls(model, name=f"{base_name}:{digest}", input_size=input_size, threshold=threshold)

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float32 L2-normalised embeddings of BGR crops of any size (batched)."""
        if not crops_bgr:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        parts = []
        for start in range(0, len(crops_bgr), EMBED_BATCH):
            batch = preprocess_crops(crops_bgr[start : start + EMBED_BATCH], self.input_size)
            parts.append(np.asarray(self._embed_fn(batch), dtype=np.float32))
        return np.concatenate(parts)

    def assign_products(
        self,
        image_bgr: np.ndarray,
        detections: Detections,
        gallery: Gallery,
        threshold: float | None = None,
    ) -> Detections:
        """A copy of ``detections`` with ``data["product_id"]``, ``data["product_score"]``,
        ``data["brand_id"]`` and ``data["brand_score"]``: the one call that names what is on
        the shelf (the audit and the live path both go through it).

        Every product box of the image is embedded in one batch. Gaps get ``-1`` and score 0;
        products below the threshold get ``-1`` (unknown product and brand) and keep their best
        similarity. A recognised product brings its brand, with the same score.

        Args:
            image_bgr: ``(H, W, 3)`` uint8 image the boxes are in.
            detections: pixel ``xyxy`` boxes.
            gallery: enrolled references.
            threshold: cosine similarity threshold; ``None`` uses the model's.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        n = len(detections)
        product_ids = np.full(n, UNKNOWN_PRODUCT_ID, dtype=np.int64)
        scores = np.zeros(n, dtype=np.float32)
        products = np.flatnonzero(detections.class_id == PRODUCT)
        if len(products) and len(gallery):
            crops = [crop_xyxy(image_bgr, detections.xyxy[i]) for i in products]
            found, found_scores = gallery.match(self.embed(crops), threshold)
            product_ids[products], scores[products] = found, found_scores
        return detections.with_data(
            product_id=product_ids,
            product_score=scores,
            brand_id=gallery.brands_of(product_ids),
            brand_score=scores.copy(),
        )

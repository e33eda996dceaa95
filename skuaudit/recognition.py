"""Product recognition: few-shot, against a gallery of reference crops enrolled by analysts.

Each product box is cropped and described like every reference crop of the gallery (a handful per
product (SKU), enrolled by analysts: ``skuaudit.enrolment``): an embedding from a small CNN
trained with a metric-learning loss (see ``scripts/train_recognition.py`` and
``models/recognition/MODEL_CARD.md``), colour histograms and, on the photo path, SIFT keypoints
verified with a RANSAC homography (``skuaudit.sku_matching``). The best-scoring product wins, and
with it its brand, when its score reaches the threshold; below it the facing is ``unknown``
(``product_id == brand_id == -1``). A new product therefore needs reference images, not
retraining. Each reference's features are computed once and cached in the database
(``ReferenceImage.features``, and its embedding in ``ReferenceImage.embedding``).

Example:
    >>> recognizer = Recognizer.load()                                  # doctest: +SKIP
    >>> gallery = Gallery.from_database(recognizer=recognizer)          # doctest: +SKIP
    >>> detections = recognizer.assign_products(image_bgr, detections, gallery)  # doctest: +SKIP
    >>> detections.data["product_id"], detections.data["brand_id"]     # doctest: +SKIP
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
from skuaudit.detections import PRODUCT, Detections, box_iou_xyxy
from skuaudit.images import crop_xyxy, load_image_bytes
from skuaudit.metrics import UNKNOWN_BRAND_ID, UNKNOWN_PRODUCT_ID
from skuaudit.sku_matching import (
    FEATURES_VERSION,
    CropFeatures,
    MatchSettings,
    ProductMatcher,
    _dot_t,
    colour_histograms,
    describe,
)
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
    """Reference features of enrolled products.

    Attributes:
        product_ids: ``(M,)`` int64 product of each reference (the label recognition gives).
        embeddings: ``(M, D)`` float32 L2-normalised reference embeddings.
        brand_ids: ``(M,)`` int64 brand of each reference's product (``-1`` when not given).
        reference_ids: ``(M,)`` int64 ``ReferenceImage`` id of each reference (``-1`` when not
            from the database).
        features: ``CropFeatures`` of each reference (embedding, colour, keypoints); required to
            match a non-empty gallery.
    """

    product_ids: np.ndarray
    embeddings: np.ndarray
    brand_ids: np.ndarray | None = None
    reference_ids: np.ndarray | None = None
    features: list[CropFeatures] | None = None
    _matchers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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
        if self.features is not None and len(self.features) != n:
            raise ValueError(f"Gallery: {n} product ids but {len(self.features)} features")

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
    def from_features(
        cls, product_ids, features: list[CropFeatures], *, brand_ids=None, reference_ids=None
    ) -> Gallery:
        """A gallery of references described already (``Recognizer.describe``)."""
        embeddings = (
            np.stack([f.embedding for f in features]) if features else np.zeros((0, 0), np.float32)
        )
        return cls(
            product_ids=np.asarray(product_ids),
            embeddings=embeddings,
            brand_ids=brand_ids,
            reference_ids=reference_ids,
            features=list(features),
        )

    @classmethod
    def from_references(
        cls, references: list[tuple[int, np.ndarray]], recognizer: Recognizer
    ) -> Gallery:
        """A gallery from ``(product_id, BGR crop)`` pairs, without a database (evaluation)."""
        crops = [crop for _, crop in references]
        return cls.from_features([p for p, _ in references], recognizer.describe(crops))

    @classmethod
    def from_database(cls, url: str | None = None, recognizer: Recognizer | None = None) -> Gallery:
        """All reference images of the database, describing (and caching) those not yet described.

        A reference whose stored features came from another model or feature version
        (``features_model``), or are damaged, is described again; new features (and their
        embedding) are written back in one transaction.

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
            features: dict[int, CropFeatures] = {}
            for r in refs:
                # a damaged cache entry is described again below
                if r.features is not None and r.features_model == recognizer.feature_name:
                    with contextlib.suppress(ValueError):
                        features[r.id] = CropFeatures.from_bytes(r.features)
            stale = [r for r in refs if r.id not in features]
            if stale:
                crops = [
                    load_image_bytes(r.image_png, name=f"reference image {r.id}") for r in stale
                ]
                for ref, feat in zip(stale, recognizer.describe(crops), strict=True):
                    cache_features(ref, feat, recognizer)
                    features[ref.id] = feat
            if not refs:
                return cls(np.zeros(0), np.zeros((0, recognizer.embedding_dim)), features=[])
            return cls.from_features(
                np.array([r.product_id for r in refs], dtype=np.int64),
                [features[r.id] for r in refs],
                brand_ids=np.array([brand_id for _, brand_id in rows], dtype=np.int64),
                reference_ids=np.array([r.id for r in refs], dtype=np.int64),
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
                self.product_ids,
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
        """The product of each crop (``ProductMatcher.match``).

        Args:
            crops_bgr: BGR crops of product boxes.
            recognizer: the model the gallery was described with.
            threshold: lowest score (0..1) accepted; ``None`` uses the model's for the path.
            fast: the live-frame path (no keypoint verification).

        Returns:
            ``(product_ids (N,) int64, scores (N,) float32)``: the best product, or ``-1`` when
            its score is below the threshold; the score itself.
        """
        n = len(crops_bgr)
        if n == 0 or len(self) == 0:
            return np.full(n, UNKNOWN_PRODUCT_ID, dtype=np.int64), np.zeros(n, dtype=np.float32)
        return self.matcher(recognizer).match(crops_bgr, fast=fast, threshold=threshold)


# Facings a live frame embeds at most (``TrackCache.budget``). Measured on the project's 2 shared
# CPU cores (``bench/bench_recognition.py``, MODEL_CARD "Live frames"): a 93-facing 640x480
# frame's recognition costs ~11 ms with nothing embedded (crops, colour, matching, the cache's
# pairing) plus ~0.85 ms a facing embedded (31 ms with 24 embedded, 41 ms with 32): 24 keeps
# that frame under 40 ms with room for a busier machine, and names 93 facings in 4 frames.
DEFAULT_EMBED_BUDGET = 24


class TrackCache:
    """Embeddings of the previous live frame's product boxes, reused for the boxes still there,
    and a hard bound on how many facings one frame embeds.

    Consecutive video frames show mostly the same facings, and embedding every facing is most
    of a live frame's recognition time. ``Recognizer.assign_products(..., cache=...)`` (fast
    path only) therefore describes each frame's crops by colour (cheap) and asks ``lookup``
    which boxes a previous embedding still serves; only the others are embedded. A box reuses
    the embedding of a previous box when:

    - the camera's shift between the frames is undone: the shift is the most common move from
      a box to its nearest previous box (rounded to ``shift_step_px``) that pairs the most boxes
      (zero shift is always a candidate);
    - after that shift the boxes overlap (IoU >= ``min_iou``; each previous box serves one box);
    - their colour descriptions agree (Bhattacharyya coefficient >= ``min_colour``): a box that
      lands on a different pack is embedded afresh;
    - the embedding is younger than ``refresh_frames`` frames. Embeddings computed in one frame
      start at staggered ages (the j-th at ``j % refresh_frames``), so that about
      ``1 / refresh_frames`` of a steady scene is re-embedded each frame instead of all of it
      at once.

    A frame embeds at most ``budget`` facings (``select``), so that its recognition time has a
    bound whatever the cache holds (a cold frame, a fast pan): new facings (no previous box)
    first, nearest the frame's centre first (what the camera is aimed at; facings at the edge
    are the first to leave the frame on a pan), then expired embeddings, oldest first. New
    facings beyond the budget are *pending*: ``assign_products`` names them neither a product
    nor a brand (``data["pending"]``) and they are embedded in the next frames; expired ones
    beyond it keep their old embedding one more frame. On a still scene every facing is named
    after ``ceil(n / budget)`` frames. ``budget=None`` embeds every box that needs it.

    A frame of another size, or another recognition model, starts cold. The answers are those of
    the uncached path for every box embedded afresh (all of them on a cold frame within the
    budget); a reused box is matched with its fresh colour and its previous embedding.

    One cache per video stream: it is not thread-safe, and its state is the stream's last frame.

    Attributes:
        reused: boxes of the last frame that reused an embedding.
        embedded: boxes of the last frame that were embedded.
        pending: boxes of the last frame left without an embedding (over the budget).
    """

    def __init__(
        self,
        *,
        budget: int | None = DEFAULT_EMBED_BUDGET,
        refresh_frames: int = 10,
        min_iou: float = 0.5,
        min_colour: float = 0.9,
        shift_step_px: float = 4.0,
        shift_candidates: int = 4,
    ) -> None:
        if refresh_frames < 1:
            raise ValueError(f"refresh_frames must be at least 1, got {refresh_frames}")
        if budget is not None and budget < 1:
            raise ValueError(f"budget must be at least 1 facing a frame (or None), got {budget}")
        self.budget = None if budget is None else int(budget)
        self.refresh_frames = int(refresh_frames)
        self.min_iou = float(min_iou)
        self.min_colour = float(min_colour)
        self.shift_step_px = float(shift_step_px)
        self.shift_candidates = int(shift_candidates)
        self.reused = self.embedded = self.pending = 0
        self.clear()

    def clear(self) -> None:
        """Forget the previous frame (the next one is cold)."""
        self._key: tuple | None = None
        self._boxes = np.zeros((0, 4), np.float32)
        self._embeddings = np.zeros((0, 0), np.float32)
        self._colours = np.zeros((0, 0), np.float32)
        self._ages = np.zeros(0, np.int64)

    def lookup(self, key: tuple, boxes_xyxy: np.ndarray, colours: np.ndarray) -> np.ndarray:
        """``(N,)`` int64: for each box, the previous box it continues (whose embedding it may
        reuse; ``expired`` tells whether that embedding is due a refresh), or ``-1``.

        Args:
            key: what the cached embeddings depend on (model name, frame size); another key
                clears the cache.
            boxes_xyxy: ``(N, 4)`` pixel boxes of this frame's products.
            colours: ``(N, C)`` their colour descriptions (``colour_histograms``).
        """
        boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
        out = np.full(len(boxes), -1, np.int64)
        if key != self._key:
            self.clear()
            self._key = key
        if len(boxes) == 0 or len(self._boxes) == 0:
            return out
        # cv2's product, not numpy's: OpenBLAS's threads cost more than this small product
        agree = _dot_t(colours, self._colours) >= self.min_colour
        best: tuple[int, np.ndarray] = (-1, out)
        for shift in self._candidate_shifts(boxes):
            moved = self._boxes + np.concatenate([shift, shift]).astype(np.float32)
            iou = np.where(agree, box_iou_xyxy(boxes, moved), 0.0)
            pairs = _greedy_pairs(iou, self.min_iou)
            if int((pairs >= 0).sum()) > best[0]:
                best = (int((pairs >= 0).sum()), pairs)
        return best[1]

    def expired(self, previous: np.ndarray) -> np.ndarray:
        """``(N,)`` bool: boxes whose previous box's embedding is ``refresh_frames`` old."""
        previous = np.asarray(previous, np.int64)
        out = np.zeros(len(previous), bool)
        known = previous >= 0
        out[known] = self._ages[previous[known]] >= self.refresh_frames
        return out

    def select(self, boxes_xyxy: np.ndarray, previous: np.ndarray, frame_hw: tuple) -> np.ndarray:
        """Sorted indices of the boxes to embed this frame: at most ``budget`` of the new ones
        (``previous`` -1; nearest the frame centre first) and then of the expired ones (oldest
        first, then nearest the centre)."""
        boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
        previous = np.asarray(previous, np.int64)
        centre = np.array([frame_hw[1], frame_hw[0]], np.float32) / 2
        distance = (((boxes[:, :2] + boxes[:, 2:]) / 2 - centre) ** 2).sum(axis=1)
        new = np.flatnonzero(previous < 0)
        new = new[np.argsort(distance[new], kind="stable")]
        expired = np.flatnonzero(self.expired(previous))
        ages = self._ages[previous[expired]]
        expired = expired[np.lexsort((distance[expired], -ages))]
        order = np.concatenate([new, expired])
        if self.budget is not None:
            order = order[: self.budget]
        return np.sort(order)

    def _candidate_shifts(self, boxes: np.ndarray) -> list[np.ndarray]:
        """Zero and the most common moves from a box's centre to the nearest previous centre."""
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        previous = (self._boxes[:, :2] + self._boxes[:, 2:]) / 2
        deltas = previous[None, :, :] - centres[:, None, :]
        nearest = deltas[np.arange(len(centres)), (deltas**2).sum(axis=2).argmin(axis=1)]
        moves = -np.round(nearest / self.shift_step_px).astype(np.int64)
        values, counts = np.unique(moves, axis=0, return_counts=True)
        order = np.argsort(-counts, kind="stable")[: self.shift_candidates]
        shifts = [np.zeros(2)]
        shifts += [
            values[i] * self.shift_step_px for i in order if values[i].any() and counts[i] > 1
        ]
        return shifts

    def update(
        self,
        boxes_xyxy: np.ndarray,
        embeddings: np.ndarray,
        colours: np.ndarray,
        previous: np.ndarray,
        fresh: np.ndarray,
    ) -> None:
        """Remember this frame: its boxes that have an embedding, with their colours.

        ``previous`` is ``lookup``'s answer and ``fresh`` marks the boxes embedded this frame
        (``select``): a fresh embedding starts at a staggered age, a reused one ages by one
        frame; a new box that was not embedded (pending) is not remembered.
        """
        previous = np.asarray(previous, np.int64)
        fresh = np.asarray(fresh, bool)
        reused = ~fresh & (previous >= 0)
        ages = np.zeros(len(previous), np.int64)
        ages[reused] = self._ages[previous[reused]] + 1
        ages[fresh] = np.arange(int(fresh.sum())) % self.refresh_frames
        keep = fresh | reused
        self._boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)[keep].copy()
        self._embeddings = np.asarray(embeddings, np.float32)[keep].copy()
        self._colours = np.asarray(colours, np.float32)[keep].copy()
        self._ages = ages[keep]
        self.reused, self.embedded = int(reused.sum()), int(fresh.sum())
        self.pending = int((~keep).sum())

    def embeddings_of(self, previous: np.ndarray) -> np.ndarray:
        """The cached embeddings of previous boxes (``lookup``'s non-negative answers)."""
        return self._embeddings[np.asarray(previous, np.int64)]


def _greedy_pairs(iou: np.ndarray, min_iou: float) -> np.ndarray:
    """``(N,)``: for each row the column it is paired with (highest IoU first, each column once),
    or ``-1`` when nothing left reaches ``min_iou``."""
    pairs = np.full(iou.shape[0], -1, np.int64)
    rows, cols = np.nonzero(iou >= min_iou)
    taken_cols: set[int] = set()
    for k in np.argsort(-iou[rows, cols], kind="stable"):
        r, c = int(rows[k]), int(cols[k])
        if pairs[r] < 0 and c not in taken_cols:
            pairs[r] = c
            taken_cols.add(c)
    return pairs


def cache_features(ref: m.ReferenceImage, features: CropFeatures, recognizer: Recognizer) -> None:
    """Store a reference's features (``features``/``features_model``) and its embedding
    (``embedding``/``embedding_model``, which the duplicate check of ``skuaudit.enrolment``
    reads) on its row."""
    ref.features, ref.features_model = features.to_bytes(), recognizer.feature_name
    ref.embedding = np.asarray(features.embedding, dtype=np.float32).tobytes()
    ref.embedding_model = recognizer.name


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

    def _describe_cached(
        self, shape: tuple, boxes: np.ndarray, crops: list[np.ndarray], cache: TrackCache
    ) -> tuple[list[CropFeatures], np.ndarray]:
        """Fast-path features of crops, embedding only those ``cache`` has no (fresh) embedding
        for, at most ``cache.budget`` of them; and the ``(N,)`` bool mask of the crops left
        without an embedding (pending; their features hold a zero embedding)."""
        colours = colour_histograms(crops)
        previous = cache.lookup((self.name, tuple(shape)), boxes, colours)
        chosen = cache.select(boxes, previous, shape)
        embeddings = np.zeros((len(crops), self.embedding_dim), np.float32)
        known = previous >= 0
        if known.any():
            embeddings[known] = cache.embeddings_of(previous[known])
        fresh = np.zeros(len(crops), bool)
        fresh[chosen] = True
        if len(chosen):
            embeddings[chosen] = self.embed([crops[i] for i in chosen])
        cache.update(boxes, embeddings, colours, previous, fresh)
        features = [CropFeatures(e, c) for e, c in zip(embeddings, colours, strict=True)]
        return features, ~(known | fresh)

    def assign_products(
        self,
        image_bgr: np.ndarray,
        detections: Detections,
        gallery: Gallery,
        threshold: float | None = None,
        *,
        fast: bool = False,
        cache: TrackCache | None = None,
    ) -> Detections:
        """A copy of ``detections`` with ``data["product_id"]``, ``data["product_score"]``,
        ``data["brand_id"]`` and ``data["brand_score"]``: the one call that names what is on
        the shelf (the audit and the live path both go through it).

        Every product box of the image is matched in one batch (``Gallery.match``). Gaps get
        ``-1`` and score 0; products below the threshold get ``-1`` (unknown product and brand)
        and keep their best score. A recognised product brings its brand, with the same score.

        Args:
            image_bgr: ``(H, W, 3)`` uint8 image the boxes are in.
            detections: pixel ``xyxy`` boxes.
            gallery: enrolled references.
            threshold: score threshold (0..1); ``None`` uses the model's for the path.
            fast: the live-frame path: embedding and colour only, no keypoint verification.
            cache: the video stream's ``TrackCache`` (fast path only): boxes that a box of the
                previous frame still covers reuse its embedding; the others are embedded, at
                most ``cache.budget`` of them. With a cache the result also has
                ``data["pending"]``: product boxes not embedded yet (over the budget), which get
                product and brand ``-1`` and score 0 and must not be counted as unknown
                products (``skuaudit.live.counting`` counts them as pending).

        Raises:
            ValueError: a ``cache`` on the photo path.
        """
        if cache is not None and not fast:
            raise ValueError("assign_products: a TrackCache serves the fast (live) path only")
        n = len(detections)
        product_ids = np.full(n, UNKNOWN_PRODUCT_ID, dtype=np.int64)
        scores = np.zeros(n, dtype=np.float32)
        pending = np.zeros(n, dtype=bool)
        products = np.flatnonzero(detections.class_id == PRODUCT)
        if len(products) and len(gallery):
            crops = [crop_xyxy(image_bgr, detections.xyxy[i]) for i in products]
            if cache is None:
                found, found_scores = gallery.match(crops, self, threshold=threshold, fast=fast)
            else:
                queries, waiting = self._describe_cached(
                    image_bgr.shape[:2], detections.xyxy[products], crops, cache
                )
                found = np.full(len(products), UNKNOWN_PRODUCT_ID, np.int64)
                found_scores = np.zeros(len(products), np.float32)
                named = np.flatnonzero(~waiting)
                if len(named):
                    found[named], found_scores[named] = gallery.matcher(self).match_features(
                        [queries[i] for i in named], fast=True, threshold=threshold
                    )
                pending[products[waiting]] = True
            product_ids[products], scores[products] = found, found_scores
        extra = {} if cache is None else {"pending": pending}
        return detections.with_data(
            product_id=product_ids,
            product_score=scores,
            brand_id=gallery.brands_of(product_ids),
            brand_score=scores.copy(),
            **extra,
        )

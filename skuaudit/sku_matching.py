"""Product (SKU) matching: which enrolled product a crop shows, or ``unknown`` (``-1``).

Three cues, cheapest first, each computed once per reference crop and cached as a feature blob:

1. **Embedding**: the recognition CNN's unit vector (``Recognizer.embed``); cosine similarity.
2. **Colour**: a hue / saturation / value histogram of each horizontal third of the crop (the
   layout of a pack's colours), square-rooted so that a dot product is the Bhattacharyya
   coefficient.
3. **Keypoints** (photo path only): SIFT keypoints of the crop, matched to the references of the
   few best products by cues 1-2 (RootSIFT, Lowe's ratio test) and verified by a RANSAC
   homography: the number of inliers says whether the same printed artwork is there.

A product's score is a logistic model of its cues (weights in ``MatchSettings``, fitted by
``scripts/train_recognition.py`` on real photos); the best product wins when its score reaches
the threshold, otherwise the crop is ``unknown``. ``match(..., fast=True)`` (live frames) skips
the keypoints and uses its own weights and threshold.

The module is pure: numpy, OpenCV and an ``embed`` callable; no database, no Streamlit.

Example:
    >>> matcher = ProductMatcher.build([(7, crop_a), (9, crop_b)], embed=recognizer.embed)  # doctest: +SKIP
    >>> labels, scores = matcher.match([query_crop])                                  # doctest: +SKIP
    >>> blob = matcher.features[0].to_bytes()   # cache it; ProductMatcher.build_from_features(...)  # doctest: +SKIP
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace

import cv2
import numpy as np

UNKNOWN = -1
FEATURES_VERSION = "skufeat-1"
_BLOB_MAGIC = b"SKUF1\n"
_COLOUR_BINS = (8, 3, 3)  # hue, saturation, value bins per horizontal band
_COLOUR_BANDS = 3
_COLOUR_SIDE_PX = 48
SIFT_DIM = 128

Embed = Callable[[list[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class MatchSettings:
    """How crops are described and scored.

    Attributes:
        sift_side_px: crops are resized so that their longer side has this many pixels before
            keypoints are found (a reference and a facing then meet at a similar scale).
        sift_features: most keypoints kept per crop (the strongest).
        ratio: Lowe's ratio test: nearest descriptor distance below ``ratio`` x the second.
        ransac_px: RANSAC reprojection error, in pixels of the resized crop.
        shortlist: products whose references are verified with keypoints, per crop.
        refs_verified: references of each shortlisted product verified (its most similar ones).
        weights: logistic weights of the photo path: ``bias, embedding, colour, log1p(inliers),
            inlier share``.
        threshold: lowest photo-path score (0..1) accepted as a match; below it: unknown.
        fast_weights: logistic weights of the fast path: ``bias, embedding, colour``.
        fast_threshold: lowest fast-path score accepted.
        skip_verify_above: on the photo path, a crop whose best fast-path score reaches this is
            decided by the fast path (no keypoints computed or verified); 1.0 verifies every crop.
        workers: threads verifying crops in parallel (OpenCV releases the GIL).
    """

    sift_side_px: int = 160
    sift_features: int = 200
    ratio: float = 0.8
    ransac_px: float = 6.0
    shortlist: int = 3
    refs_verified: int = 5
    weights: tuple[float, ...] = (-12.0, 8.0, 4.0, 1.5, 2.0)
    threshold: float = 0.5
    fast_weights: tuple[float, ...] = (-12.0, 10.0, 5.0)
    fast_threshold: float = 0.5
    skip_verify_above: float = 1.0
    workers: int = 2

    def __post_init__(self) -> None:
        if len(self.weights) != 5 or len(self.fast_weights) != 3:
            raise ValueError("MatchSettings: weights need 5 values and fast_weights 3")
        if not 0 < self.ratio <= 1 or self.shortlist < 1 or self.refs_verified < 1:
            raise ValueError("MatchSettings: ratio in (0, 1], shortlist and refs_verified >= 1")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> MatchSettings:
        """Settings from a ``config.json`` section; unknown keys are refused, missing ones default."""
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown matching settings: {', '.join(sorted(unknown))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass
class CropFeatures:
    """The cached description of one crop.

    Attributes:
        embedding: ``(D,)`` float32 unit vector (``D`` may be 0: no embedding model).
        colour: ``(C,)`` float32 unit vector (square-rooted, normalised colour histograms).
        points_xy: ``(K, 2)`` float32 keypoint positions in the resized crop (longer side
            ``sift_side_px``).
        descriptors: ``(K, 128)`` uint8 SIFT descriptors.
    """

    embedding: np.ndarray
    colour: np.ndarray
    points_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    descriptors: np.ndarray = field(default_factory=lambda: np.zeros((0, SIFT_DIM), np.uint8))

    def __post_init__(self) -> None:
        self.embedding = np.asarray(self.embedding, np.float32).reshape(-1)
        self.colour = np.asarray(self.colour, np.float32).reshape(-1)
        self.points_xy = np.asarray(self.points_xy, np.float32).reshape(-1, 2)
        self.descriptors = np.asarray(self.descriptors, np.uint8).reshape(-1, SIFT_DIM)
        if len(self.points_xy) != len(self.descriptors):
            raise ValueError(
                f"CropFeatures: {len(self.points_xy)} keypoints but "
                f"{len(self.descriptors)} descriptors"
            )

    def to_bytes(self) -> bytes:
        """A compact blob (``.npz`` behind a version tag) for a database column."""
        buf = io.BytesIO()
        buf.write(_BLOB_MAGIC)
        np.savez(
            buf,
            embedding=self.embedding,
            colour=self.colour,
            points_xy=self.points_xy.astype(np.float16),
            descriptors=self.descriptors,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> CropFeatures:
        """Inverse of ``to_bytes``.

        Raises:
            ValueError: not a feature blob of this version, or a damaged one.
        """
        blob = bytes(blob)
        if not blob.startswith(_BLOB_MAGIC):
            raise ValueError(f"not a {FEATURES_VERSION} feature blob (compute it again)")
        try:
            with np.load(io.BytesIO(blob[len(_BLOB_MAGIC) :]), allow_pickle=False) as data:
                return cls(
                    embedding=data["embedding"],
                    colour=data["colour"],
                    points_xy=data["points_xy"].astype(np.float32),
                    descriptors=data["descriptors"],
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"damaged {FEATURES_VERSION} feature blob ({exc})") from exc


# --------------------------------------------------------------------------- describing crops


def colour_histogram(crop_bgr: np.ndarray) -> np.ndarray:
    """Square-rooted HSV histograms of the top, middle and bottom thirds, as one unit vector."""
    dim = _COLOUR_BANDS * int(np.prod(_COLOUR_BINS))
    if crop_bgr is None or crop_bgr.size == 0 or min(crop_bgr.shape[:2]) < 1:
        return np.zeros(dim, np.float32)
    small = cv2.resize(crop_bgr, (_COLOUR_SIDE_PX, _COLOUR_SIDE_PX), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    band = _COLOUR_SIDE_PX // _COLOUR_BANDS
    parts = []
    for i in range(_COLOUR_BANDS):
        hist = cv2.calcHist(
            [hsv[i * band : (i + 1) * band]],
            [0, 1, 2],
            None,
            list(_COLOUR_BINS),
            [0, 180, 0, 256, 0, 256],
        ).reshape(-1)
        parts.append(hist / max(float(hist.sum()), 1.0))
    vector = np.sqrt(np.concatenate(parts)).astype(np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-6)


_COLOUR_RANGES = ((0, 180), (0, 256), (0, 256))
_colour_lut: np.ndarray | None = None


def _colour_bin_lut() -> np.ndarray:
    """``(1, 256, 3)`` uint8 ``cv2.LUT`` table: per hue / saturation / value byte, its bin as
    ``cv2.calcHist`` finds it (asked of calcHist itself, so that the batched histograms bin
    exactly like ``colour_histogram``), times the stride of that axis in the joint bin index."""
    global _colour_lut
    if _colour_lut is None:
        strides = (_COLOUR_BINS[1] * _COLOUR_BINS[2], _COLOUR_BINS[2], 1)
        lut = np.zeros((1, 256, 3), np.uint8)
        for c, (bins, (lo, hi)) in enumerate(zip(_COLOUR_BINS, _COLOUR_RANGES, strict=True)):
            for v in range(lo, hi):
                pixel = np.full((1, 1), v, np.uint8)
                hist = cv2.calcHist([pixel], [0], None, [bins], [lo, hi]).reshape(-1)
                lut[0, v, c] = int(hist.argmax()) * strides[c]
        _colour_lut = lut
    return _colour_lut


def colour_histograms(crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, C)`` float32: ``colour_histogram`` of each crop, with one colour conversion, one
    table look-up and one ``bincount`` for the whole batch (a live frame has ~100 crops)."""
    crops = list(crops_bgr)
    n_bins = int(np.prod(_COLOUR_BINS))
    dim = _COLOUR_BANDS * n_bins
    out = np.zeros((len(crops), dim), np.float32)
    valid = [
        i for i, c in enumerate(crops) if c is not None and c.size > 0 and min(c.shape[:2]) >= 1
    ]
    if not valid:
        return out
    side, band = _COLOUR_SIDE_PX, _COLOUR_SIDE_PX // _COLOUR_BANDS
    small = np.empty((len(valid) * side, side, 3), np.uint8)
    for j, i in enumerate(valid):
        small[j * side : (j + 1) * side] = cv2.resize(
            crops[i], (side, side), interpolation=cv2.INTER_AREA
        )
    # the joint bin of each pixel (< 256): hue, saturation and value bins summed with strides;
    # OpenCV's hue is 0..179, so every pixel falls in a bin
    binned = cv2.LUT(cv2.cvtColor(small, cv2.COLOR_BGR2HSV), _colour_bin_lut())
    joint = cv2.transform(binned, np.ones((1, 3), np.float32)).reshape(len(valid), side, side)
    index = joint[:, : band * _COLOUR_BANDS].reshape(len(valid) * _COLOUR_BANDS, -1)
    index = index.astype(np.int64) + (np.arange(len(index)) * n_bins)[:, None]
    counts = np.bincount(index.ravel(), minlength=len(valid) * dim).astype(np.float32)
    counts = counts.reshape(len(valid), _COLOUR_BANDS, n_bins)
    counts /= np.maximum(counts.sum(axis=2, keepdims=True), 1.0)
    vectors = np.sqrt(counts).reshape(len(valid), dim)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    out[valid] = vectors
    return out


def trim_background(
    image_bgr: np.ndarray, tolerance: int = 24, min_fraction: float = 0.2
) -> np.ndarray:
    """The image cut to the bounding box of what differs from its border colour.

    Catalogue pack shots show the pack on a plain (often white) background, which would count
    in the colour cue; a shelf facing has none. Nothing is cut when the border is not plain or
    when the box left would be smaller than ``min_fraction`` of either side.
    """
    if image_bgr is None or image_bgr.size == 0 or min(image_bgr.shape[:2]) < 8:
        return image_bgr
    border = np.concatenate(
        [image_bgr[0], image_bgr[-1], image_bgr[:, 0], image_bgr[:, -1]]
    ).astype(np.int16)
    background = np.median(border, axis=0)
    if np.mean(np.abs(border - background).max(axis=1) <= tolerance) < 0.9:
        return image_bgr  # not a plain background: a photo
    differs = np.abs(image_bgr.astype(np.int16) - background).max(axis=2) > tolerance
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    h, w = image_bgr.shape[:2]
    if len(rows) == 0 or len(cols) == 0:
        return image_bgr
    y1, y2, x1, x2 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (y2 - y1) < min_fraction * h or (x2 - x1) < min_fraction * w:
        return image_bgr
    return image_bgr[y1:y2, x1:x2]


def keypoints(crop_bgr: np.ndarray, settings: MatchSettings) -> tuple[np.ndarray, np.ndarray]:
    """``(points_xy (K, 2) float32, descriptors (K, 128) uint8)`` of one crop."""
    empty = np.zeros((0, 2), np.float32), np.zeros((0, SIFT_DIM), np.uint8)
    if crop_bgr is None or crop_bgr.size == 0 or min(crop_bgr.shape[:2]) < 4:
        return empty
    h, w = crop_bgr.shape[:2]
    scale = settings.sift_side_px / max(h, w)
    size = (max(4, round(w * scale)), max(4, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    grey = cv2.cvtColor(cv2.resize(crop_bgr, size, interpolation=interp), cv2.COLOR_BGR2GRAY)
    sift = cv2.SIFT_create(nfeatures=settings.sift_features)
    found, desc = sift.detectAndCompute(grey, None)
    if desc is None or not found:
        return empty
    points = np.array([k.pt for k in found], np.float32)
    return points, np.clip(np.rint(desc), 0, 255).astype(np.uint8)


def describe(
    crops_bgr: Sequence[np.ndarray],
    embed: Embed | None,
    settings: MatchSettings,
    *,
    with_keypoints: bool = True,
) -> list[CropFeatures]:
    """Features of each crop (embedding in one batch; keypoints on ``settings.workers`` threads)."""
    crops = list(crops_bgr)
    if not crops:
        return []
    embeddings = (
        np.asarray(embed(crops), np.float32) if embed is not None else np.zeros((len(crops), 0))
    )
    colours = colour_histograms(crops)
    if with_keypoints:
        kps = _map(lambda c: keypoints(c, settings), crops, settings.workers)
    else:
        kps = [(np.zeros((0, 2), np.float32), np.zeros((0, SIFT_DIM), np.uint8))] * len(crops)
    return [CropFeatures(e, c, p, d) for e, c, (p, d) in zip(embeddings, colours, kps, strict=True)]


def _map(fn, items: list, workers: int) -> list:
    if workers <= 1 or len(items) < 4:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _root_sift(desc_u8: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelovic & Zisserman 2012): L1-normalise, square root; unit L2 norm."""
    d = desc_u8.astype(np.float32)
    return np.sqrt(d / np.maximum(d.sum(axis=1, keepdims=True), 1e-6))


def _dot_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` in float32 through OpenCV: small products inside worker threads, where
    OpenBLAS's own threads oversubscribe 2 cores (measured 5-10x slower in ``cues``)."""
    if a.size == 0 or b.size == 0:
        return np.zeros((len(a), len(b)), np.float32)
    a = np.ascontiguousarray(a, np.float32)
    b = np.ascontiguousarray(b, np.float32)
    return cv2.gemm(a, b, 1.0, None, 0.0, flags=cv2.GEMM_2_T)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


# --------------------------------------------------------------------------- matching


class ProductMatcher:
    """Enrolled references of products, and the matching of crops to them.

    Build it with ``build`` (from crops) or ``build_from_features`` (from cached blobs).

    Attributes:
        labels: ``(M,)`` int64 product (or brand) of each reference.
        features: ``CropFeatures`` of each reference.
        settings: the ``MatchSettings`` in use.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        features: Sequence[CropFeatures],
        *,
        embed: Embed | None = None,
        settings: MatchSettings | None = None,
    ) -> None:
        self.labels = np.asarray(labels, np.int64).reshape(-1)
        self.features = list(features)
        if len(self.labels) != len(self.features):
            raise ValueError(
                f"ProductMatcher: {len(self.labels)} labels for {len(self.features)} references"
            )
        if np.any(self.labels == UNKNOWN):
            raise ValueError(f"ProductMatcher: label {UNKNOWN} means unknown; use another id")
        self.settings = settings or MatchSettings()
        self.embed = embed
        self.products = np.unique(self.labels)
        self._product_of_ref = np.searchsorted(self.products, self.labels)
        m = len(self.features)
        dims = {len(f.embedding) for f in self.features}
        if len(dims) > 1:
            raise ValueError(f"ProductMatcher: references have embeddings of sizes {sorted(dims)}")
        self._emb = (
            np.stack([f.embedding for f in self.features]) if m else np.zeros((0, 0), np.float32)
        )
        self._colour = (
            np.stack([f.colour for f in self.features]) if m else np.zeros((0, 0), np.float32)
        )
        k = max([len(f.descriptors) for f in self.features] + [1])
        self._desc = np.zeros((m, k, SIFT_DIM), np.float32)  # zero rows pad: never a match
        self._points = np.zeros((m, k, 2), np.float32)
        self._n_points = np.zeros(m, np.int64)
        for i, f in enumerate(self.features):
            n = len(f.descriptors)
            self._desc[i, :n] = _root_sift(f.descriptors)
            self._points[i, :n] = f.points_xy
            self._n_points[i] = n

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def build(
        cls,
        references: Sequence[tuple[int, np.ndarray]],
        *,
        embed: Embed | None = None,
        settings: MatchSettings | None = None,
    ) -> ProductMatcher:
        """A matcher from ``(label, BGR crop)`` pairs (features computed now)."""
        settings = settings or MatchSettings()
        labels = [int(label) for label, _ in references]
        features = describe([crop for _, crop in references], embed, settings)
        return cls(labels, features, embed=embed, settings=settings)

    @classmethod
    def build_from_features(
        cls,
        labels: Sequence[int],
        features: Sequence[CropFeatures | bytes],
        *,
        embed: Embed | None = None,
        settings: MatchSettings | None = None,
    ) -> ProductMatcher:
        """A matcher from cached features (``CropFeatures`` or their ``to_bytes`` blobs)."""
        feats = [f if isinstance(f, CropFeatures) else CropFeatures.from_bytes(f) for f in features]
        return cls(labels, feats, embed=embed, settings=settings)

    def describe(
        self, crops_bgr: Sequence[np.ndarray], *, fast: bool = False
    ) -> list[CropFeatures]:
        """Features of query crops, with the matcher's embedding model and settings."""
        return describe(crops_bgr, self.embed, self.settings, with_keypoints=not fast)

    def match(
        self,
        crops_bgr: Sequence[np.ndarray],
        *,
        fast: bool = False,
        threshold: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The product of each crop.

        Args:
            crops_bgr: BGR crops of any size (an empty crop comes out unknown).
            fast: the live-frame path: embedding and colour only, no keypoints.
            threshold: lowest score accepted; ``None`` uses the settings' (per path).

        Returns:
            ``(labels (N,) int64, scores (N,) float32)``: the best product, or ``-1`` (unknown)
            when its score (0..1) is below the threshold; the score itself.
        """
        crops = list(crops_bgr)
        n = len(crops)
        if n == 0 or len(self) == 0:
            return np.full(n, UNKNOWN, np.int64), np.zeros(n, np.float32)
        queries = self.describe(crops, fast=True)
        if not fast:  # keypoints only for the crops the fast path is not sure of
            best_fast = self.product_scores(queries, fast=True).max(axis=1)
            unsure = np.flatnonzero(best_fast < self.settings.skip_verify_above).tolist()
            found = _map(
                lambda i: keypoints(crops[i], self.settings), unsure, self.settings.workers
            )
            for i, (points, descriptors) in zip(unsure, found, strict=True):
                queries[i] = replace(queries[i], points_xy=points, descriptors=descriptors)
        return self.match_features(queries, fast=fast, threshold=threshold)

    def product_scores(self, queries: Sequence[CropFeatures], *, fast: bool = False) -> np.ndarray:
        """``(N, P)`` float32 score of every query for every product (``self.products``)."""
        cues = self.cues(queries, fast=fast)
        if fast:
            w = np.asarray(self.settings.fast_weights, np.float32)
            logits = w[0] + w[1] * cues["embedding"] + w[2] * cues["colour"]
        else:
            w = np.asarray(self.settings.weights, np.float32)
            logits = (
                w[0]
                + w[1] * cues["embedding"]
                + w[2] * cues["colour"]
                + w[3] * np.log1p(cues["inliers"])
                + w[4] * cues["inlier_share"]
            )
        return _sigmoid(logits).astype(np.float32)

    def match_features(
        self,
        queries: Sequence[CropFeatures],
        *,
        fast: bool = False,
        threshold: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``match`` for queries already described (``describe``, with keypoints unless ``fast``).

        On the photo path, crops whose best fast-path score reaches ``skip_verify_above`` are
        decided by the fast path (its score and threshold); the others by keypoint verification.
        """
        n = len(queries)
        if n == 0 or len(self) == 0:
            return np.full(n, UNKNOWN, np.int64), np.zeros(n, np.float32)
        scores = self.product_scores(queries, fast=True)
        thresholds = np.full(n, self.settings.fast_threshold, np.float32)
        if not fast:
            unsure = np.flatnonzero(scores.max(axis=1) < self.settings.skip_verify_above)
            if len(unsure):
                scores[unsure] = self.product_scores([queries[i] for i in unsure])
                thresholds[unsure] = self.settings.threshold
        if threshold is not None:
            thresholds[:] = threshold
        best = scores.argmax(axis=1)
        best_scores = scores[np.arange(n), best]
        labels = np.where(best_scores >= thresholds, self.products[best], UNKNOWN)
        return labels.astype(np.int64), best_scores.astype(np.float32)

    def cues(self, queries: Sequence[CropFeatures], *, fast: bool = False) -> dict[str, np.ndarray]:
        """Per query and product (``(N, P)`` float32 each): ``embedding`` and ``colour`` (best
        reference of the product), and unless ``fast``: ``inliers`` (most RANSAC inliers of a
        verified reference, 0 when not verified) and ``inlier_share`` (that count over the best
        count of all products for the query)."""
        n, p = len(queries), len(self.products)
        emb_q = np.stack([q.embedding for q in queries]).astype(np.float32)
        col_q = np.stack([q.colour for q in queries]).astype(np.float32)
        if emb_q.shape[1] != self._emb.shape[1]:
            raise ValueError(
                f"query embeddings have {emb_q.shape[1]} values, references "
                f"{self._emb.shape[1]}: the gallery was built with another model"
            )
        emb_sim = _dot_t(emb_q, self._emb)
        col_sim = _dot_t(col_q, self._colour)
        per_product = {
            "embedding": self._best_per_product(emb_sim),
            "colour": self._best_per_product(col_sim),
        }
        if fast:
            return per_product
        inliers = np.zeros((n, p), np.float32)
        coarse_w = np.asarray(self.settings.fast_weights, np.float32)
        ref_coarse = coarse_w[1] * emb_sim + coarse_w[2] * col_sim
        prod_coarse = coarse_w[1] * per_product["embedding"] + coarse_w[2] * per_product["colour"]
        shortlist = np.argsort(-prod_coarse, axis=1)[:, : self.settings.shortlist]

        def verify(i: int) -> np.ndarray:
            out = np.zeros(p, np.float32)
            q = queries[i]
            if len(q.descriptors) < 2:
                return out
            refs = []
            for prod in shortlist[i]:
                members = np.flatnonzero(self._product_of_ref == prod)
                order = members[np.argsort(-ref_coarse[i, members])]
                refs.extend(order[: self.settings.refs_verified].tolist())
            counts = self._inliers(q, np.asarray(refs))
            np.maximum.at(out, self._product_of_ref[refs], counts)
            return out

        for i, row in enumerate(_map(verify, list(range(n)), self.settings.workers)):
            inliers[i] = row
        best = inliers.max(axis=1, keepdims=True)
        per_product["inliers"] = inliers
        per_product["inlier_share"] = np.where(best > 0, inliers / np.maximum(best, 1), 0.0)
        return per_product

    def _best_per_product(self, per_ref: np.ndarray) -> np.ndarray:
        out = np.full((per_ref.shape[0], len(self.products)), -1.0, np.float32)
        for j in range(len(self.products)):
            out[:, j] = per_ref[:, self._product_of_ref == j].max(axis=1)
        return out

    def _inliers(self, query: CropFeatures, refs: np.ndarray) -> np.ndarray:
        """RANSAC homography inliers of the query's ratio-test matches to each reference."""
        counts = np.zeros(len(refs), np.float32)
        q_desc = _root_sift(query.descriptors)
        k = self._desc.shape[1]
        # squared distances of unit vectors: 2 - 2 cos; all references in one product
        sims = _dot_t(q_desc, self._desc[refs].reshape(-1, SIFT_DIM))
        sims = sims.reshape(len(q_desc), len(refs), k)
        if k < 2:
            return counts
        top2 = -np.partition(-sims, 1, axis=2)[:, :, :2]
        nearest = sims.argmax(axis=2)
        d1, d2 = 2 - 2 * top2[:, :, 0], 2 - 2 * top2[:, :, 1]
        good = d1 < (self.settings.ratio**2) * np.maximum(d2, 1e-9)
        for j, ref in enumerate(refs):
            rows = np.flatnonzero(good[:, j])
            if len(rows) < 6:
                continue
            src = query.points_xy[rows]
            dst = self._points[ref, nearest[rows, j]]
            homography, mask = cv2.findHomography(
                src, dst, cv2.RANSAC, self.settings.ransac_px, maxIters=500, confidence=0.995
            )
            if homography is None or mask is None or not _plausible(homography):
                continue
            counts[j] = float(mask.sum())
        return counts


def _plausible(homography: np.ndarray) -> bool:
    """A homography a photo of the same flat pack could give: no mirror, no collapse."""
    a = homography[:2, :2] / max(abs(float(homography[2, 2])), 1e-9)
    det = float(np.linalg.det(a))
    return 1 / 25 < det < 25 and abs(float(homography[2, 0])) + abs(float(homography[2, 1])) < 0.01

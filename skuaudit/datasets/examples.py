"""Training examples of labelled images: crops, mosaics, augmentation, padded targets.

``load_training_example`` turns one labelled image into what a trainer consumes (numpy only, so
every trainer and backend shares it; ``datasets.batches`` batches them for Keras ``fit``):

- the image: float32 ``(S, S, 3)`` RGB in ``0..255``, stretched to the model input (SSD style);
- ``boxes_yxyx_norm``: float32 ``(max_boxes, 4)`` ``[y1, x1, y2, x2]`` in ``0..1``, zero rows
  after the real boxes;
- ``class_ids``: int32 ``(max_boxes,)`` indices into the classes, ``-1`` for padding and
  ``IGNORE_ID`` for ignore boxes;
- ``class_mask``: float32 ``(num_classes,)``, 1 where the image's ``annotated_classes`` include
  the class, so the loss of unlabelled classes can be masked (a gap-only photo says nothing
  about products).

Large photos are cut into random tiles (``TileSpec``) before resizing, so that a product in a
1600 px photo is not shrunk to a few pixels; photos too small to tile may be zoomed into or made
into mosaics.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from skuaudit.datasets.base import DatasetError, LabeledImage
from skuaudit.detections import IGNORE_CLASS, IGNORE_ID


@dataclass(frozen=True)
class TileSpec:
    """Random training crops of large photos.

    Attributes:
        side_fraction: crop side as a fraction of the photo's longer side, drawn uniformly.
        min_photo_side_px: photos whose longer side is at most this are not tiled.
        min_visibility: a box cut by the crop is kept if at least this fraction of it remains.
        small_photo_fraction: zoom-in crops of those smaller photos: the crop's sides as a
            fraction of the photo's, drawn uniformly; ``(1.0, 1.0)`` uses them whole. The
            416x416 shelf-gaps photos show a gap at about half the size it has in a tile of a
            full-resolution photo, so crops of 45-100 % teach both scales.
        mosaic: probability that a photo too small to tile is replaced, before its zoom-in crop,
            by a 2x2 mosaic of the same size: itself and three other small photos with the same
            annotated classes, each a random crop at its own scale, split at a random point in
            the middle half of each side (YOLO-style mosaic, without its shrinking, so the
            objects keep the sizes the photo path sees). It needs the partner photos
            (``mosaic_partners``) and is meant for training only.
        aspect: crop ``width / height`` of large photos, drawn log-uniformly; the crop is
            stretched to the square input, as a 640x480 video frame is in one pass, so
            ``(0.75, 1.333)`` teaches products at the proportions a phone frame shows them
            (``(1.0, 1.0)``: square crops, the photo path's tiles).
    """

    side_fraction: tuple[float, float] = (0.3, 0.55)
    min_photo_side_px: int = 900
    min_visibility: float = 0.5
    small_photo_fraction: tuple[float, float] = (1.0, 1.0)
    mosaic: float = 0.0
    aspect: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        low, high = self.aspect
        if not 0 < low <= high:
            raise ValueError(f"aspect must satisfy 0 < low <= high, got {self.aspect}")
        lo, hi = self.small_photo_fraction
        if not 0 < lo <= hi <= 1:
            raise ValueError(
                f"small_photo_fraction must satisfy 0 < low <= high <= 1, got {self.small_photo_fraction}"
            )
        if not 0 <= self.mosaic <= 1:
            raise ValueError(f"mosaic must be a probability in [0, 1], got {self.mosaic}")


def random_tile_xyxy(
    width: int, height: int, spec: TileSpec, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """A random crop window for a ``width`` x ``height`` photo (the whole photo if small)."""
    longer = max(width, height)
    if longer <= spec.min_photo_side_px:
        if spec.small_photo_fraction == (1.0, 1.0):
            return 0, 0, width, height
        fraction = rng.uniform(*spec.small_photo_fraction)
        cw, ch = max(1, round(width * fraction)), max(1, round(height * fraction))
    else:
        side = longer * rng.uniform(*spec.side_fraction)
        stretch = 1.0
        if spec.aspect != (1.0, 1.0):
            stretch = float(np.sqrt(np.exp(rng.uniform(*np.log(spec.aspect)))))
        cw, ch = min(int(side * stretch), width), min(int(side / stretch), height)
    x1 = int(rng.integers(0, width - cw + 1))
    y1 = int(rng.integers(0, height - ch + 1))
    return x1, y1, x1 + cw, y1 + ch


def crop_boxes_xyxy(
    boxes_xyxy: np.ndarray, window_xyxy: Sequence[int], min_visibility: float
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes cut to a crop window, in window pixels, and the indices of the kept boxes."""
    boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    x1, y1, x2, y2 = window_xyxy
    clipped = np.clip(boxes - [x1, y1, x1, y1], 0, [x2 - x1, y2 - y1, x2 - x1, y2 - y1])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = np.flatnonzero((kept_area >= min_visibility * np.maximum(area, 1e-6)) & (kept_area > 0))
    return clipped[keep].astype(np.float32), keep


def build_augmenter(seed: int | None = None):
    """Box-aware photometric and small geometric augmentation (albumentations, pascal_voc boxes)."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.85, 1.15), translate_percent=(-0.05, 0.05), rotate=(-3, 3), p=0.5),
            A.RandomBrightnessContrast(0.25, 0.25, p=0.7),
            A.HueSaturationValue(8, 25, 20, p=0.5),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7))], p=0.25),
            A.GaussNoise(std_range=(0.01, 0.05), p=0.3),
            A.ImageCompression(quality_range=(40, 95), p=0.3),
        ],
        bbox_params=A.BboxParams(
            format="pascal_voc", label_fields=["class_ids"], min_visibility=0.5, clip=True
        ),
        seed=seed,
    )


def encode_example(
    image_bgr: np.ndarray,
    boxes_xyxy: np.ndarray,
    class_ids: np.ndarray,
    class_mask: np.ndarray,
    image_size: tuple[int, int],
    max_boxes: int,
    augmenter: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One training example: augmented, resized RGB float32 image and padded targets.

    Args:
        image_bgr: ``(H, W, 3)`` uint8 (already cropped if tiling).
        boxes_xyxy: ``(N, 4)`` pixel boxes in ``image_bgr``.
        class_ids: ``(N,)`` class indices.
        class_mask: ``(num_classes,)`` float32.
        image_size: ``(height, width)`` of the output.
        max_boxes: padding length; extra boxes are dropped.
        augmenter: an ``build_augmenter()`` pipeline or ``None``.

    Returns:
        ``image (h, w, 3) float32 RGB``, ``boxes_yxyx_norm (max_boxes, 4)``,
        ``class_ids (max_boxes,) int32``, ``class_mask``.
    """
    h, w = image_bgr.shape[:2]
    boxes = np.clip(np.asarray(boxes_xyxy, np.float32).reshape(-1, 4), 0, [w, h, w, h])
    ids = np.asarray(class_ids, np.int32).reshape(-1)
    valid = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    boxes, ids = boxes[valid], ids[valid]
    if augmenter is not None:
        out = augmenter(image=image_bgr, bboxes=boxes, class_ids=ids)
        image_bgr = out["image"]
        boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        ids = np.asarray(out["class_ids"], np.int32).reshape(-1)
    out_h, out_w = image_size
    resized = cv2.resize(image_bgr, (out_w, out_h), interpolation=cv2.INTER_AREA)
    image = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB).astype(np.float32)
    n = min(len(boxes), max_boxes)
    yxyx = np.zeros((max_boxes, 4), np.float32)
    yxyx[:n] = boxes[:n][:, [1, 0, 3, 2]] / np.array([h, w, h, w], np.float32)
    padded_ids = np.full((max_boxes,), -1, np.int32)
    padded_ids[:n] = ids[:n]
    return image, np.clip(yxyx, 0, 1), padded_ids, class_mask.astype(np.float32)


def _class_mask(item: LabeledImage, classes: list[str]) -> np.ndarray:
    annotated = item.annotated_classes if item.annotated_classes is not None else classes
    return np.array([1.0 if c in annotated else 0.0 for c in classes], np.float32)


def _is_small(item: LabeledImage, tile: TileSpec) -> bool:
    return max(item.width, item.height) <= tile.min_photo_side_px


def mosaic_partners(
    items: Sequence[LabeledImage], classes: list[str], tile: TileSpec | None
) -> list[tuple[LabeledImage, ...]]:
    """For each of ``items``, the photos a mosaic of it may use (``TileSpec.mosaic``).

    They are the distinct photos (by path) that are too small to tile and annotate the same
    classes, so the class mask of the mosaic is the item's own (a gap-only photo is never
    pasted next to a fully labelled one). Large photos, and every item when the spec has no
    mosaic, get ``()``. Items of one group share one tuple.
    """
    if tile is None or tile.mosaic == 0:
        return [()] * len(items)
    groups: dict[tuple[float, ...], dict[object, LabeledImage]] = {}
    keys: list[tuple[float, ...] | None] = []
    for item in items:
        if not _is_small(item, tile):
            keys.append(None)
            continue
        key = tuple(_class_mask(item, classes).tolist())
        groups.setdefault(key, {}).setdefault(item.path, item)
        keys.append(key)
    frozen = {key: tuple(group.values()) for key, group in groups.items()}
    return [frozen[key] if key is not None else () for key in keys]


class ImageCache:
    """Decoded training photos kept in memory up to ``max_bytes`` (least recently used out).

    Decoding a 1600 px JPEG costs more CPU than cropping and augmenting a tile of it, and a
    training run draws each photo many times. Cached images are read-only: every user crops
    and copies them.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._images: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def read(self, path) -> np.ndarray | None:
        """The BGR image at ``path`` (``None``: not decodable)."""
        key = str(path)
        with self._lock:
            image = self._images.get(key)
            if image is not None:
                self._images.move_to_end(key)
                return image
        image = cv2.imread(key, cv2.IMREAD_COLOR)
        if image is None or image.nbytes > self.max_bytes:
            return image
        image.setflags(write=False)
        with self._lock:
            if key not in self._images:
                self._images[key] = image
                self._bytes += image.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._images.popitem(last=False)
                self._bytes -= old.nbytes
        return image


def _read_labeled(
    item: LabeledImage, classes: list[str], cache: ImageCache | None = None
) -> tuple[np.ndarray, ...]:
    """An image (BGR), its boxes of ``classes`` and their class indices (``IGNORE_ID`` for
    ``IGNORE_CLASS`` boxes). With ``cache`` the image may be a shared read-only array."""
    if cache is not None:
        image = cache.read(item.path)
    else:
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{item.path}: cannot decode image")
    index = {c: i for i, c in enumerate(classes)} | {IGNORE_CLASS: IGNORE_ID}
    keep = [i for i, c in enumerate(item.class_names) if c in index]
    boxes = item.boxes_xyxy[keep].astype(np.float32)
    ids = np.array([index[item.class_names[i]] for i in keep], np.int32)
    return image, boxes, ids


def make_mosaic(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    size_wh: tuple[int, int],
    min_visibility: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``size_wh`` 2x2 mosaic of four ``(image_bgr, boxes_xyxy, class_ids)`` parts.

    The split point is drawn in the middle half of each side; part ``k`` fills quadrant ``k``
    (top left, top right, bottom left, bottom right) with a random crop at its own scale, or,
    if it is smaller than its quadrant, scaled up just enough to cover it. Boxes cut by a
    quadrant are kept when at least ``min_visibility`` of them remains (as in tiling).

    Returns:
        the mosaic, its boxes in mosaic pixels and their class indices.
    """
    if len(parts) != 4:
        raise ValueError(f"make_mosaic needs 4 parts, got {len(parts)}")
    width, height = size_wh
    cx = int(round(width * rng.uniform(0.25, 0.75)))
    cy = int(round(height * rng.uniform(0.25, 0.75)))
    quadrants = [(0, 0, cx, cy), (cx, 0, width, cy), (0, cy, cx, height), (cx, cy, width, height)]
    canvas = np.zeros((height, width, 3), np.uint8)
    all_boxes, all_ids = [np.zeros((0, 4), np.float32)], [np.zeros((0,), np.int32)]
    for (image, boxes, ids), (qx1, qy1, qx2, qy2) in zip(parts, quadrants, strict=True):
        qw, qh = qx2 - qx1, qy2 - qy1
        if qw < 1 or qh < 1:
            continue
        ph, pw = image.shape[:2]
        scale = max(qw / pw, qh / ph, 1.0)
        if scale > 1.0:
            pw, ph = max(qw, int(np.ceil(pw * scale))), max(qh, int(np.ceil(ph * scale)))
            boxes = boxes * np.array([pw / image.shape[1], ph / image.shape[0]] * 2, np.float32)
            image = cv2.resize(image, (pw, ph), interpolation=cv2.INTER_LINEAR)
        x1 = int(rng.integers(0, pw - qw + 1))
        y1 = int(rng.integers(0, ph - qh + 1))
        canvas[qy1:qy2, qx1:qx2] = image[y1 : y1 + qh, x1 : x1 + qw]
        kept_boxes, kept = crop_boxes_xyxy(boxes, (x1, y1, x1 + qw, y1 + qh), min_visibility)
        all_boxes.append(kept_boxes + np.array([qx1, qy1, qx1, qy1], np.float32))
        all_ids.append(np.asarray(ids, np.int32)[kept])
    return canvas, np.concatenate(all_boxes), np.concatenate(all_ids)


def load_training_example(
    item: LabeledImage,
    classes: list[str],
    image_size: tuple[int, int],
    max_boxes: int,
    tile: TileSpec | None,
    augmenter: Callable | None,
    rng: np.random.Generator,
    partners: Sequence[LabeledImage] = (),
    cache: ImageCache | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One training example of a labelled image (the module docstring says what it holds): with
    probability ``tile.mosaic`` a mosaic of it and
    three of ``partners`` (``mosaic_partners``; none: no mosaic), a random tile (``tile``, drawn
    from ``rng``), ``augmenter``, resize, padded targets (see ``encode_example``); photos are
    read through ``cache`` when given.

    Raises:
        DatasetError: the image (or a mosaic partner) cannot be decoded.
    """
    image, boxes, ids = _read_labeled(item, classes, cache)
    others: list[LabeledImage] = []
    if (
        tile is not None
        and tile.mosaic > 0
        and len(partners) >= 3
        and _is_small(item, tile)
        and rng.random() < tile.mosaic
    ):  # the partners are filtered only for the mosaics drawn (a few hundred paths each)
        others = [p for p in partners if p.path != item.path]
    if len(others) >= 3:
        chosen = [others[int(i)] for i in rng.choice(len(others), 3, replace=False)]
        parts = [(image, boxes, ids), *(_read_labeled(p, classes, cache) for p in chosen)]
        order = rng.permutation(4)
        image, boxes, ids = make_mosaic(
            [parts[int(i)] for i in order],
            (image.shape[1], image.shape[0]),
            tile.min_visibility,
            rng,
        )
    if tile is not None:
        window = random_tile_xyxy(image.shape[1], image.shape[0], tile, rng)
        boxes, kept = crop_boxes_xyxy(boxes, window, tile.min_visibility)
        ids = ids[kept]
        x1, y1, x2, y2 = window
        image = image[y1:y2, x1:x2]
    if not image.flags.writeable:  # a cached photo: augmenters may write into their input
        image = image.copy()
    return encode_example(
        image, boxes, ids, _class_mask(item, classes), image_size, max_boxes, augmenter
    )

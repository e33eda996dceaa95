"""tf.data pipelines for detector training: file-backed (any ``Dataset``) and rendered on the fly.

Both yield batches of ``(images, targets)``:

- ``images``: float32 ``[B, H, W, 3]`` RGB in ``0..255``, stretched to ``image_size`` (SSD style).
- ``targets["boxes_yxyx_norm"]``: float32 ``[B, max_boxes, 4]`` ``[y1, x1, y2, x2]`` in ``0..1``,
  zero rows after the real boxes.
- ``targets["class_ids"]``: int32 ``[B, max_boxes]`` indices into ``classes``, ``-1`` for padding.
- ``targets["class_mask"]``: float32 ``[B, num_classes]``, 1 where the image's ``annotated_classes``
  include the class, so the loss of unlabelled classes can be masked (a gap-only photo says nothing
  about products).

Large photos are cut into random tiles (``TileSpec``) before resizing, so that a product in a
1600 px photo is not shrunk to a few pixels. Loading and augmentation run in Python
(``tf.numpy_function``, OpenCV and albumentations release the GIL) with parallel calls.

Measured here (``bench/bench_synth.py --tfdata``, 2 shared cores): pre-rendered JPEGs fed 68
images/s, rendering on the fly 6.9 images/s (9.8x slower), so long training runs should pre-render with ``generate_dataset`` and use
``make_tf_dataset``; ``make_synth_tf_dataset`` suits short runs and tests that need no files.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from skuaudit.datasets.base import Dataset, DatasetError, LabeledImage
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


def tile_grid(
    width: int, height: int, tile_size: int | tuple[int, int], overlap: float = 0.2
) -> list[tuple[int, int, int, int]]:
    """Tiles ``(x1, y1, x2, y2)`` in pixels that cover a ``width`` x ``height`` image.

    Tiles are ``tile_size`` (``int`` or ``(w, h)``), neighbours overlap by at least ``overlap`` of
    a tile, and the last tile of a row or column is aligned with the image edge. An image smaller
    than a tile gets one tile of its own size.

    Example:
        >>> tile_grid(1000, 500, 500, overlap=0.2)
        [(0, 0, 500, 500), (250, 0, 750, 500), (500, 0, 1000, 500)]
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    tw, th = (tile_size, tile_size) if isinstance(tile_size, int) else tile_size
    if tw <= 0 or th <= 0:
        raise ValueError(f"tile_size must be positive, got {tile_size}")

    def starts(length: int, tile: int) -> list[int]:
        if length <= tile:
            return [0]
        stride = max(1, int(tile * (1.0 - overlap)))
        n = int(np.ceil((length - tile) / stride)) + 1
        return [int(round(i * (length - tile) / (n - 1))) for i in range(n)]

    return [
        (x, y, min(x + tw, width), min(y + th, height))
        for y in starts(height, th)
        for x in starts(width, tw)
    ]


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
    """One training example of a labelled image, as ``make_tf_dataset`` yields it (without
    TensorFlow, so other trainers share it): with probability ``tile.mosaic`` a mosaic of it and
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


def _output_signature(image_size: tuple[int, int], max_boxes: int, num_classes: int):
    import tensorflow as tf

    return (
        tf.TensorSpec((*image_size, 3), tf.float32),
        tf.TensorSpec((max_boxes, 4), tf.float32),
        tf.TensorSpec((max_boxes,), tf.int32),
        tf.TensorSpec((num_classes,), tf.float32),
    )


def _to_batches(ds, batch_size: int):
    import tensorflow as tf

    ds = ds.map(
        lambda im, b, c, m: (im, {"boxes_yxyx_norm": b, "class_ids": c, "class_mask": m}),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


def _numpy_map(
    ds,
    fn: Callable,
    image_size: tuple[int, int],
    max_boxes: int,
    num_classes: int,
    deterministic: bool = False,
):
    """Map an int64 index dataset through a numpy function returning one example.

    ``deterministic=False`` lets parallel calls finish out of order (faster training input).
    """
    import tensorflow as tf

    spec = _output_signature(image_size, max_boxes, num_classes)

    def wrapped(index):
        outs = tf.numpy_function(fn, [index], [s.dtype for s in spec], stateful=True)
        return tuple(tf.ensure_shape(o, s.shape) for o, s in zip(outs, spec, strict=True))

    return ds.map(wrapped, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def make_tf_dataset(
    dataset: Dataset,
    classes: list[str],
    image_size: tuple[int, int] = (320, 320),
    batch_size: int = 8,
    augment: bool = True,
    shuffle: bool = True,
    seed: int = 0,
    tile: TileSpec | None = None,
    max_boxes: int = 400,
    repeat: bool = False,
    cache_mb: int = 0,
):
    """A batched ``tf.data.Dataset`` of a ``Dataset``'s images (see the module docstring).

    Args:
        dataset: images and boxes (any reader's output).
        classes: the model's classes; boxes of other classes are dropped.
        image_size: ``(height, width)`` of the batches.
        batch_size: images per batch.
        augment: apply ``build_augmenter()``.
        shuffle: shuffle the image order each epoch (seeded).
        seed: shuffle and crop seed; augmentation draws are not reproducible across runs.
        tile: random crops for large photos; ``None`` uses whole images. Its ``mosaic``
            applies only with ``augment``.
        max_boxes: padding length per image.
        repeat: repeat forever.
        cache_mb: keep up to this many MB of decoded photos in memory (``ImageCache``);
            ``0`` decodes every draw.

    With ``shuffle``, ``repeat`` and ``augment`` all off (a validation set) every pass yields the
    same images in the same order with the same crops, so validation losses of successive
    evaluations compare the model, not the draw; otherwise each pass draws new crops.

    Example:
        >>> ds = make_tf_dataset(data, ["product", "gap"], batch_size=4)  # doctest: +SKIP
        >>> images, targets = next(iter(ds))  # doctest: +SKIP
    """
    import tensorflow as tf

    if len(dataset) == 0:
        raise DatasetError("make_tf_dataset: the dataset holds no images")
    if not classes:
        raise ValueError("make_tf_dataset: classes must not be empty")
    items = list(dataset.images)
    augmenter = build_augmenter(seed) if augment else None
    partners = mosaic_partners(items, classes, tile if augment else None)
    fixed = not (shuffle or repeat or augment)
    counter = itertools.count()
    cache = ImageCache(cache_mb * 2**20) if cache_mb > 0 else None

    def load(index) -> tuple[np.ndarray, ...]:
        draw = [seed, int(index)] if fixed else [seed, int(index), next(counter)]
        return load_training_example(
            items[int(index)],
            classes,
            image_size,
            max_boxes,
            tile,
            augmenter,
            np.random.default_rng(draw),
            partners[int(index)],
            cache,
        )

    ds = tf.data.Dataset.range(len(items))
    if shuffle:
        ds = ds.shuffle(len(items), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = _numpy_map(ds, load, image_size, max_boxes, len(classes), deterministic=fixed)
    return _to_batches(ds, batch_size)


def make_synth_tf_dataset(
    seed: int,
    image_size: tuple[int, int] = (320, 320),
    batch_size: int = 8,
    *,
    render_size: tuple[int, int] = (768, 1024),
    tile: TileSpec | None = None,
    augment: bool = False,
    texture_dir: str | None = None,
    max_boxes: int = 400,
    n_images: int | None = None,
):
    """Shelves rendered on the fly (``render_shelf``), batched like ``make_tf_dataset``.

    Image ``i`` is ``render_shelf(image_seed(seed, i))``; the stream is endless unless
    ``n_images`` is given. Classes are ``("product", "gap")``, both always annotated.

    Args:
        seed: stream seed.
        image_size: ``(height, width)`` of the batches.
        batch_size: images per batch.
        render_size: ``(height, width)`` of the rendered shelves.
        tile: random crops of the rendered shelf (e.g. ``TileSpec((0.4, 0.7), 600)``).
        augment: albumentations on top (the renderer already varies light, blur and noise).
        texture_dir: optional folder of real photos for product artwork.
        max_boxes: padding length per image.
        n_images: stop after this many images.
    """
    import tensorflow as tf

    from skuaudit.datasets.synth import image_seed, render_shelf
    from skuaudit.detections import CLASS_NAMES

    augmenter = build_augmenter(seed) if augment else None
    mask = np.ones(len(CLASS_NAMES), np.float32)

    def load(index) -> tuple[np.ndarray, ...]:
        shelf = render_shelf(
            image_seed(seed, int(index)), render_size[1], render_size[0], texture_dir=texture_dir
        )
        image, boxes, ids = shelf.image_bgr, shelf.boxes_xyxy, shelf.class_ids
        if tile is not None:
            rng = np.random.default_rng([seed, int(index), 7])
            window = random_tile_xyxy(image.shape[1], image.shape[0], tile, rng)
            boxes, kept = crop_boxes_xyxy(boxes, window, tile.min_visibility)
            ids = ids[kept]
            image = image[window[1] : window[3], window[0] : window[2]]
        return encode_example(image, boxes, ids, mask, image_size, max_boxes, augmenter)

    ds = tf.data.Dataset.range(n_images) if n_images is not None else tf.data.Dataset.range(1 << 62)
    ds = _numpy_map(ds, load, image_size, max_boxes, len(CLASS_NAMES))
    return _to_batches(ds, batch_size)

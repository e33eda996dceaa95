"""Training and validation batches for Keras ``fit`` on any backend (``keras.utils.PyDataset``).

Each example is ``datasets.examples.load_training_example``: a random tile or zoom-in crop (or a
mosaic), box-aware augmentation, the resize to the model input and padded targets. A batch is::

    x: float32 (B, S, S, 3) RGB 0..255
    y: {"boxes_yxyx_norm": float32 (B, M, 4), "class_ids": int32 (B, M) (-1 padding,
        IGNORE_ID for ignore boxes), "class_mask": float32 (B, C)}

``TrainingBatches`` is endless: every pass over the images is reshuffled (seeded) and every draw
takes new crops. ``ValidationBatches`` always yields the same images with the same crops, so
validation losses of successive evaluations compare the model, not the draw. Examples are loaded
by worker threads (OpenCV and albumentations release the GIL).

Example:
    >>> batches = TrainingBatches(images, ["product", "gap"], batch_size=8)  # doctest: +SKIP
    >>> x, y = batches[0]  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Sequence

import keras
import numpy as np

from skuaudit.datasets.base import DatasetError, LabeledImage
from skuaudit.datasets.examples import (
    ImageCache,
    TileSpec,
    build_augmenter,
    load_training_example,
    mosaic_partners,
)


def _stack(examples: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    images, boxes, ids, masks = (np.stack(part) for part in zip(*examples, strict=True))
    return images, {"boxes_yxyx_norm": boxes, "class_ids": ids, "class_mask": masks}


class _Batches(keras.utils.PyDataset):
    """What training and validation batches share: the images, the model input and the crops."""

    def __init__(
        self,
        items: Sequence[LabeledImage],
        classes: Sequence[str],
        image_size: int,
        batch_size: int,
        max_boxes: int,
        tile: TileSpec | None,
        seed: int,
        workers: int,
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=4 * workers)
        self.items = list(items)
        self.classes = list(classes)
        self.image_size = (image_size, image_size)
        self.batch_size = batch_size
        self.max_boxes = max_boxes
        self.tile = tile
        self.seed = seed

    def _example(
        self,
        item: LabeledImage,
        augmenter: Callable | None,
        rng: np.random.Generator,
        partners: Sequence[LabeledImage] = (),
        cache: ImageCache | None = None,
    ) -> tuple[np.ndarray, ...]:
        """``load_training_example`` of ``item`` at these batches' input size, boxes and crops."""
        return load_training_example(
            item,
            self.classes,
            self.image_size,
            self.max_boxes,
            self.tile,
            augmenter,
            rng,
            partners,
            cache,
        )


class TrainingBatches(_Batches):
    """Endless shuffled, augmented training batches of labelled images.

    Args:
        items: training images (repeat an image in the list to draw it more often).
        classes: the model's classes; boxes of other classes are dropped.
        image_size: square model input side.
        batch_size: images per batch.
        max_boxes: padding length per image.
        tile: random crops of large photos (``None``: whole images).
        augment: albumentations (``build_augmenter``) and, with ``tile.mosaic``, mosaics.
        seed: shuffle, crop and augmentation seed.
        cache_mb: decoded photos kept in memory (``ImageCache``; 0: none).
        workers: loader threads.
    """

    def __init__(
        self,
        items: Sequence[LabeledImage],
        classes: Sequence[str],
        *,
        image_size: int = 320,
        batch_size: int = 8,
        max_boxes: int = 400,
        tile: TileSpec | None = None,
        augment: bool = True,
        seed: int = 0,
        cache_mb: int = 0,
        workers: int = 2,
    ) -> None:
        if not items:
            raise DatasetError("no training images: the datasets are empty")
        if not classes:
            raise ValueError("classes must not be empty")
        super().__init__(items, classes, image_size, batch_size, max_boxes, tile, seed, workers)
        self.augmenter = build_augmenter(seed) if augment else None
        self.partners = mosaic_partners(self.items, self.classes, tile if augment else None)
        self.cache = ImageCache(cache_mb * 2**20) if cache_mb > 0 else None
        self._lock = threading.Lock()
        self._order: list[int] = []
        self._passes = itertools.count()
        self._draws = itertools.count()

    @property
    def num_batches(self) -> None:
        return None  # endless: fit(steps_per_epoch=...) sets the length of an epoch

    def _next_items(self) -> list[int]:
        with self._lock:
            while len(self._order) < self.batch_size:
                rng = np.random.default_rng([self.seed, next(self._passes)])
                self._order += rng.permutation(len(self.items)).tolist()
            chosen, self._order = self._order[: self.batch_size], self._order[self.batch_size :]
            draws = [next(self._draws) for _ in chosen]
        return list(zip(chosen, draws, strict=True))

    def __getitem__(self, index: int):
        return _stack(
            [
                self._example(
                    self.items[i],
                    self.augmenter,
                    np.random.default_rng([self.seed, i, draw]),
                    self.partners[i],
                    self.cache,
                )
                for i, draw in self._next_items()
            ]
        )


class ValidationBatches(_Batches):
    """The same validation batches on every pass: fixed crops per image, no augmentation.

    Args:
        items: validation images.
        classes, image_size, batch_size, max_boxes, tile, seed: as for ``TrainingBatches``.
        max_batches: at most this many batches (the first images).
    """

    def __init__(
        self,
        items: Sequence[LabeledImage],
        classes: Sequence[str],
        *,
        image_size: int = 320,
        batch_size: int = 8,
        max_boxes: int = 400,
        tile: TileSpec | None = None,
        seed: int = 0,
        max_batches: int | None = None,
        workers: int = 2,
    ) -> None:
        super().__init__(items, classes, image_size, batch_size, max_boxes, tile, seed, workers)
        batches = math.ceil(len(self.items) / batch_size)
        self._len = batches if max_batches is None else min(batches, max_batches)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int):
        if not 0 <= index < self._len:
            raise IndexError(f"batch {index} of {self._len}")
        start = index * self.batch_size
        return _stack(
            [
                self._example(item, None, np.random.default_rng([self.seed, start + k]))
                for k, item in enumerate(self.items[start : start + self.batch_size])
            ]
        )

"""Train/validation splits by image, and the detector-class view of a data set.

Every trainer and every evaluation that reproduces a model card's figures splits the same way
(``split_by_image``: sorted file names, a seeded permutation, the first ``round(n * fraction)``
images held out), so ``skuaudit evaluate --split val`` scores exactly what training held out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skuaudit.datasets.base import Dataset, DatasetError, LabeledImage
from skuaudit.detections import CLASS_NAMES, IGNORE_CLASS


def split_by_image(
    dataset: Dataset, val_fraction: float, seed: int
) -> tuple[list[LabeledImage], list[LabeledImage]]:
    """Deterministic train/validation split: sort by file name, shuffle with ``seed``, cut.

    Returns:
        ``(train_images, val_images)``; validation gets ``round(n * val_fraction)`` images.

    Example:
        >>> ims = [LabeledImage(f"{c}.jpg", 9, 9, [], []) for c in "abcde"]
        >>> train, val = split_by_image(Dataset([], ims), 0.2, seed=0)
        >>> len(train), len(val)
        (4, 1)
    """
    images = sorted(dataset.images, key=lambda im: str(im.path))
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = int(round(len(images) * val_fraction))
    val = [images[i] for i in sorted(order[:n_val])]
    train = [images[i] for i in sorted(order[n_val:])]
    return train, val


def to_detector_classes(dataset: Dataset) -> list[LabeledImage]:
    """Images whose class names are detector classes, with ``annotated_classes`` filled in.

    A dataset that declares only some detector classes labels only those: its images get
    ``annotated_classes`` = those classes unless a reader already set it. Boxes named
    ``IGNORE_CLASS`` are kept: trainers leave the anchors they would make positive out of the loss.

    Raises:
        DatasetError: classes that are not detector classes.
    """
    unknown = sorted(set(dataset.classes) - {*CLASS_NAMES, IGNORE_CLASS})
    if unknown:
        raise DatasetError(
            f"dataset classes {unknown} are not detector classes {list(CLASS_NAMES)}; "
            f"map them with a class map (e.g. 0=gap, or 2={IGNORE_CLASS} for regions to learn "
            "neither as objects nor as background): --class-map on the command line, "
            "Class map when adding a data set in the Model lab"
        )
    declared = tuple(c for c in CLASS_NAMES if c in dataset.classes)
    out = []
    for im in dataset.images:
        if im.annotated_classes is None:
            im = LabeledImage(
                im.path, im.width, im.height, im.boxes_xyxy, im.class_names, declared, im.extras
            )
        out.append(im)
    return out


def split_datasets(
    datasets: Sequence[Dataset], val_fraction: float, seed: int, repeats: Sequence[int] = ()
) -> tuple[list[LabeledImage], list[LabeledImage], list[list[LabeledImage]]]:
    """Each dataset split by image (``split_by_image``), training images repeated per
    ``repeats`` (one entry per dataset, missing entries 1).

    Returns:
        ``(train_images, val_images, val_sets)``: all training images, all validation images, and
        the validation images of each dataset in order.

    Raises:
        DatasetError: no training images, or classes that are not detector classes.
    """
    train_images, val_images, val_sets = [], [], []
    for i, ds in enumerate(datasets):
        tr, va = split_by_image(Dataset(ds.classes, to_detector_classes(ds)), val_fraction, seed)
        train_images += tr * (repeats[i] if i < len(repeats) else 1)
        val_images += va
        val_sets.append(va)
    if not train_images:
        raise DatasetError("no training images: the datasets are empty")
    return train_images, val_images, val_sets

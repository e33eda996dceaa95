"""The common in-memory form every reader returns and every trainer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """A dataset problem a person can fix; the message names the file and line or field."""


@dataclass
class LabeledImage:
    """One image and its boxes.

    Attributes:
        path: the image file.
        width, height: image size in pixels (as read from the file header or annotation).
        boxes_xyxy: ``(N, 4)`` float32 pixel ``[x1, y1, x2, y2]``.
        class_names: ``N`` class names, each one of the dataset's ``classes``.
        annotated_classes: the classes that are exhaustively labelled in this image. A photo from
            the shelf-gaps set labels only ``gap``: its unlabelled products must not be treated as
            background, so trainers mask the loss of classes not listed here.
        extras: per-box arrays of length ``N`` (e.g. ``brand``, ``shelf_row``).
    """

    path: Path
    width: int
    height: int
    boxes_xyxy: np.ndarray
    class_names: list[str]
    annotated_classes: tuple[str, ...] | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        self.class_names = list(self.class_names)
        if len(self.class_names) != len(self.boxes_xyxy):
            raise DatasetError(
                f"{self.path}: {len(self.boxes_xyxy)} boxes but {len(self.class_names)} class names"
            )


@dataclass
class Dataset:
    """A list of labelled images sharing one class list."""

    classes: list[str]
    images: list[LabeledImage]
    problems: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_boxes(self) -> int:
        return sum(len(im.boxes_xyxy) for im in self.images)

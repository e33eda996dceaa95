"""The one detection type every stage passes on.

Boxes are always pixel ``xyxy`` float32 in the coordinates of the image they were found in.
Extras (``brand_id``, ``brand_score``, ``shelf_row``, ...) live in ``data`` as arrays of the
same length, so boolean-mask indexing keeps them aligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("product", "gap")
PRODUCT: int = 0
GAP: int = 1
# A training box that is neither an object nor background (e.g. an uncertain pseudo-label): the
# anchors that would learn from it are left out of the loss. Never a detector output.
IGNORE_CLASS: str = "ignore"
IGNORE_ID: int = -2


def class_name(class_id: int) -> str:
    """Name of a detector class id (``0 -> "product"``, ``1 -> "gap"``)."""
    try:
        return CLASS_NAMES[int(class_id)]
    except IndexError as exc:
        raise ValueError(f"unknown class id {class_id}; known: {list(CLASS_NAMES)}") from exc


def class_id_of(name: str) -> int:
    """Class id of a detector class name."""
    try:
        return CLASS_NAMES.index(name)
    except ValueError as exc:
        raise ValueError(f"unknown class {name!r}; known: {list(CLASS_NAMES)}") from exc


@dataclass
class Detections:
    """Boxes found in one image.

    Attributes:
        xyxy: ``(N, 4)`` float32, pixel ``[x1, y1, x2, y2]``.
        confidence: ``(N,)`` float32 scores in ``[0, 1]``.
        class_id: ``(N,)`` int32 detector classes (see ``CLASS_NAMES``).
        data: named extras, each an array of length ``N`` (e.g. ``brand_id``, ``shelf_row``).

    Example:
        >>> d = Detections(np.array([[0, 0, 10, 20]]), np.array([0.9]), np.array([0]))
        >>> len(d), d.widths_px.tolist()
        (1, [10.0])
        >>> len(d[d.class_id == GAP])
        0
    """

    xyxy: np.ndarray
    confidence: np.ndarray | None = None
    class_id: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        if self.confidence is None:
            self.confidence = np.ones(n, dtype=np.float32)
        if self.class_id is None:
            self.class_id = np.zeros(n, dtype=np.int32)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        if len(self.confidence) != n or len(self.class_id) != n:
            raise ValueError(
                f"Detections: xyxy has {n} boxes but confidence has {len(self.confidence)} "
                f"and class_id has {len(self.class_id)}"
            )
        data = {}
        for key, value in self.data.items():
            arr = np.asarray(value)
            if len(arr) != n:
                raise ValueError(f"Detections.data[{key!r}] has length {len(arr)}, expected {n}")
            data[key] = arr
        self.data = data

    @classmethod
    def empty(cls) -> Detections:
        """No boxes."""
        return cls(np.empty((0, 4), dtype=np.float32))

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        """Concatenate several Detections; extras present in only some parts are dropped."""
        parts = [p for p in parts if p is not None]
        if not parts:
            return cls.empty()
        keys = set(parts[0].data)
        for p in parts[1:]:
            keys &= set(p.data)
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.confidence for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            {k: np.concatenate([p.data[k] for p in parts]) for k in sorted(keys)},
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, str):
            raise TypeError("use detections.data[name] for extras")
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            {k: v[index] for k, v in self.data.items()},
        )

    def with_data(self, **extras: Any) -> Detections:
        """A copy with extra named arrays added or replaced."""
        data = dict(self.data)
        data.update({k: np.asarray(v) for k, v in extras.items()})
        return Detections(self.xyxy.copy(), self.confidence.copy(), self.class_id.copy(), data)

    @property
    def widths_px(self) -> np.ndarray:
        """``(N,)`` box widths in pixels."""
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def heights_px(self) -> np.ndarray:
        """``(N,)`` box heights in pixels."""
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def centers_xy(self) -> np.ndarray:
        """``(N, 2)`` box centres in pixels."""
        return np.stack(
            [(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2],
            axis=1,
        ).reshape(-1, 2)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready list: ``{"xyxy": [...], "class": "product", "score": 0.9, ...extras}``."""
        records = []
        for i in range(len(self)):
            rec: dict[str, Any] = {
                "xyxy": [round(float(v), 2) for v in self.xyxy[i]],
                "class": class_name(self.class_id[i]),
                "score": round(float(self.confidence[i]), 4),
            }
            for k, v in self.data.items():
                item = v[i]
                rec[k] = item.item() if hasattr(item, "item") else item
            records.append(rec)
        return records


def box_intersection_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas of ``(N, 4)`` and ``(M, 4)`` ``xyxy`` boxes, shape ``(N, M)``
    (in the boxes' dtype)."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(iw, 0, None) * np.clip(ih, 0, None)


def box_iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` pixel ``xyxy`` boxes, shape ``(N, M)``.

    (Any consistent corner order works: ``yxyx`` boxes give the same IoU.)"""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    inter = box_intersection_xyxy(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)

"""``DetectorConfig``: the settings saved as ``config.json`` in every model folder (no TensorFlow)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from skuaudit.detections import CLASS_NAMES
from skuaudit.detector.boxes import AnchorSpec

# How the training loss is normalised (``detector.network.detection_loss``).
LOSS_NORMALISATIONS = ("image", "class", "batch")


@dataclass
class DetectorConfig:
    """Everything needed to rebuild, decode and tile a detector; saved as ``config.json``.

    Every cap is a setting: ``max_detections`` (default 400) and ``pre_nms_top_k`` bound the output
    of dense shelves, ``tile_*`` control full-resolution photos.

    Attributes:
        image_size: square model input side in pixels (multiple of 32).
        alpha: MobileNetV2 width multiplier.
        fpn_channels: channels of the FPNLite pyramid and heads.
        head_depth: separable 3x3 convolutions shared by the box and class outputs (every
            pyramid level runs the same ones); models saved before this setting have 2.
        separate_towers: give the box and the class outputs a tower of ``head_depth``
            convolutions each (RetinaNet) instead of one shared tower; models saved before this
            setting share theirs.
        class_names: detector classes, in logit order.
        score_threshold: default minimum class score of a returned box.
        class_score_thresholds: per-class defaults (``{"product": 0.65}``) that replace
            ``score_threshold`` for those classes; an explicit ``detect(score_threshold=...)``
            applies to every class.
        single_pass_class_score_thresholds: per-class defaults of the one-pass path (video
            frames, ``detect(tiled=False)``, the offline page) where they differ from
            ``class_score_thresholds``: one pass sees a frame at lower resolution than the
            photo path's tiles, so its scores run lower, and its counts should agree with a
            photo's.
        nms_iou: IoU above which a lower-scored box of the same class is suppressed.
        max_detections: most boxes returned per image (and per tile).
        pre_nms_top_k: most candidate boxes per class entering NMS.
        tile_above_px: ``tiled=None`` tiles images whose longer side exceeds this (the training
            crops of ``datasets.examples.TileSpec`` start at 900 px). A model trained on zoom-in
            crops of smaller photos (``TileSpec.small_photo_fraction``) can tile those too: the
            default model tiles above 400 px, so a 640x480 photo of a dense shelf is not squashed
            to the input.
        tile_fraction: tile side as a fraction of the image's longer side (at least ``image_size``),
            inside the range of ``TileSpec.side_fraction`` so products look as in training.
        tile_overlap: overlap of neighbouring tiles as a fraction of the tile side.
        whole_image_classes: in tiled mode, also run the whole image in one pass and merge its
            boxes of these classes with the tiles' (e.g. ``["gap"]``: an empty stretch of shelf can
            be wider than a tile, and whole shelf photos squashed to the input are what the
            shelf-gaps data shows); ``[]`` runs the tiles alone.
        flip_classes: in tiled mode (photos, not video frames), also run every tile mirrored
            left-right and, for these classes, fuse the boxes of the two views (weighted box
            fusion, ``postprocess.fuse_views``; e.g. ``["gap"]``); the other classes keep the
            plain view's boxes. ``[]`` runs one view.
        extra_tile_fractions: in tiled mode (photos, not video frames), more sets of tiles whose
            side is this fraction of the photo's longer side (like ``tile_fraction``, without the
            ``image_size`` floor; e.g. ``[0.5, 0.75]``), run (and mirrored, for ``flip_classes``)
            for ``multiscale_classes`` only. A set whose side is within 10 % of one already run
            is skipped (it would show the model the same view again). ``[]``: one tile size.
        multiscale_classes: classes whose boxes from every ``extra_tile_fractions`` set are fused
            (weighted box fusion with the other views, ``postprocess.fuse_views``); the other
            classes keep the first set's boxes.
        class_tile_fractions: more tile sets for one class each, ``{class: [fraction, ...]}``
            (e.g. ``{"product": [0.33]}``: smaller tiles, so small packs look larger), fused like
            ``extra_tile_fractions`` but for that class only, run once (not mirrored: cheaper,
            and the mirrored view is in the first set's already), and like ``tile_fraction``
            never smaller than ``image_size`` (a video frame is not zoomed into).
        fusion_iou: IoU above which boxes of two views are fused into one.
        fusion_min_score: the views' boxes of fused classes (``flip_classes``,
            ``multiscale_classes``, ``class_tile_fractions``) enter the fusion from this score
            up, whatever threshold ``detect`` is asked for, so a fused box has the same score at
            any threshold: the thresholds calibrated on fused scores (boxes from 0.05 up) then
            count the same boxes in the app (default thresholds). A fused score is the mean of its
            members' times the share of views that found it, so it depends on which weak members
            are there. ``None`` (models saved before this setting): the views keep boxes from the
            threshold asked for.
        containment: share of a box's area inside another box for it to count as nested
            (``postprocess.suppress_contained``, applied after NMS and tile merging).
        stack_min_contained: a box holding this many nested boxes of its class is a stack box and
            is dropped (its items are counted); ``0`` keeps stack boxes.
        drop_contained: drop a box nested in a higher-scored box of its class.
        empty_classes: classes that mark an empty stretch of shelf (e.g. ``["gap"]``): a box of
            another class with ``containment`` of its area inside a higher-scored box of one of
            them that reaches its own default threshold is dropped
            (``postprocess.suppress_inside_empty``; a product cannot stand in a counted gap).
            ``[]``: off.

    Anchors: side ``anchor_size_factor x stride`` (square anchors of 16-192 px at 320) and
    width/height ratios from tall bottles (0.33) to wide shelf gaps (4.0). Against the first
    layout (side 3 x stride, ratios up to 1.8) many more wide shelf gaps have an anchor at
    IoU >= 0.5, products keep theirs, and every box still claims its best anchor (the measured
    shares are in the README's Model section).
    """

    image_size: int = 320
    alpha: float = 0.35
    fpn_channels: int = 64
    head_depth: int = 2
    separate_towers: bool = False
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    box_variance: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)
    strides: tuple[int, ...] = (8, 16, 32, 64)
    anchor_size_factor: float = 2.0
    anchor_scales: tuple[float, ...] = (1.0, 1.5)
    anchor_aspect_ratios: tuple[float, ...] = (0.33, 0.75, 1.6, 4.0)
    score_threshold: float = 0.3
    class_score_thresholds: dict[str, float] = field(default_factory=dict)
    single_pass_class_score_thresholds: dict[str, float] = field(default_factory=dict)
    nms_iou: float = 0.5
    max_detections: int = 400
    pre_nms_top_k: int = 3000
    tile_above_px: int = 900
    tile_fraction: float = 0.4
    tile_overlap: float = 0.25
    whole_image_classes: list[str] = field(default_factory=list)
    flip_classes: list[str] = field(default_factory=list)
    extra_tile_fractions: tuple[float, ...] = ()
    multiscale_classes: list[str] = field(default_factory=list)
    class_tile_fractions: dict[str, list[float]] = field(default_factory=dict)
    fusion_iou: float = 0.55
    fusion_min_score: float | None = None
    containment: float = 0.8
    stack_min_contained: int = 2
    drop_contained: bool = True
    empty_classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.image_size < 64 or self.image_size % 32:
            raise ValueError(
                f"image_size must be a multiple of 32 and >= 64, got {self.image_size}"
            )
        if not 0 < self.alpha <= 1.4:
            raise ValueError(f"alpha must be in (0, 1.4], got {self.alpha}")
        if self.head_depth < 1:
            raise ValueError(f"head_depth must be >= 1, got {self.head_depth}")
        if self.max_detections < 1 or self.pre_nms_top_k < 1:
            raise ValueError("max_detections and pre_nms_top_k must be positive")
        if not 0 <= self.tile_overlap < 0.5:
            raise ValueError(f"tile_overlap must be in [0, 0.5), got {self.tile_overlap}")
        if not isinstance(self.class_tile_fractions, dict) or not all(
            isinstance(fractions, list | tuple) for fractions in self.class_tile_fractions.values()
        ):
            raise ValueError(
                "class_tile_fractions must map class names to lists of fractions, got "
                f"{self.class_tile_fractions!r}"
            )
        for setting, names in (
            ("class_score_thresholds", self.class_score_thresholds),
            ("single_pass_class_score_thresholds", self.single_pass_class_score_thresholds),
            ("whole_image_classes", self.whole_image_classes),
            ("flip_classes", self.flip_classes),
            ("multiscale_classes", self.multiscale_classes),
            ("class_tile_fractions", self.class_tile_fractions),
            ("empty_classes", self.empty_classes),
        ):
            unknown = sorted(set(names) - set(self.class_names))
            if unknown:
                raise ValueError(
                    f"{setting} names unknown classes {unknown}; known: {self.class_names}"
                )
        for setting, fractions in (
            ("extra_tile_fractions", self.extra_tile_fractions),
            *(
                (f"class_tile_fractions[{name!r}]", f)
                for name, f in self.class_tile_fractions.items()
            ),
        ):
            if any(not 0.2 <= fraction <= 1.0 for fraction in fractions):
                # below 0.2 a set has more than ~50 tiles per view
                raise ValueError(f"{setting} must be in [0.2, 1], got {list(fractions)}")
        if not 0 < self.fusion_iou < 1:
            raise ValueError(f"fusion_iou must be in (0, 1), got {self.fusion_iou}")
        if self.fusion_min_score is not None and not 0 < self.fusion_min_score < 1:
            raise ValueError(f"fusion_min_score must be in (0, 1), got {self.fusion_min_score}")
        if not 0 < self.containment <= 1:
            raise ValueError(f"containment must be in (0, 1], got {self.containment}")
        if self.stack_min_contained < 0:
            raise ValueError(
                f"stack_min_contained must be >= 0 (0 = off), got {self.stack_min_contained}"
            )
        self.box_variance = tuple(self.box_variance)
        self.strides = tuple(self.strides)
        self.anchor_scales = tuple(self.anchor_scales)
        self.anchor_aspect_ratios = tuple(self.anchor_aspect_ratios)
        self.extra_tile_fractions = tuple(self.extra_tile_fractions)
        self.class_tile_fractions = {
            name: [float(f) for f in fractions]
            for name, fractions in self.class_tile_fractions.items()
        }

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def tile_fractions_of(self, name: str) -> tuple[float, ...]:
        """The tile sets (fractions of the longer side) whose boxes of class ``name`` are fused
        with the first set's in tiled mode: ``extra_tile_fractions`` for ``multiscale_classes``,
        then the class's own ``class_tile_fractions``."""
        shared = self.extra_tile_fractions if name in self.multiscale_classes else ()
        return (*shared, *self.class_tile_fractions.get(name, ()))

    def default_thresholds(self, single_pass: bool = False) -> np.ndarray:
        """``(C,)`` float32 default minimum score of each class, in ``class_names`` order, of
        the photo path or (``single_pass``) of one pass over a frame."""
        overrides = self.single_pass_class_score_thresholds if single_pass else {}
        return np.array(
            [
                overrides.get(c, self.class_score_thresholds.get(c, self.score_threshold))
                for c in self.class_names
            ],
            dtype=np.float32,
        )

    def threshold_map(self, single_pass: bool = False) -> dict[str, float]:
        """``{class name: default minimum score}`` (``default_thresholds`` by name)."""
        return {
            c: float(t)
            for c, t in zip(self.class_names, self.default_thresholds(single_pass), strict=True)
        }

    @property
    def anchor_spec(self) -> AnchorSpec:
        return AnchorSpec(
            self.image_size,
            self.strides,
            self.anchor_size_factor,
            self.anchor_scales,
            self.anchor_aspect_ratios,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        """Build from a ``config.json`` dict; unknown keys (training metadata) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, path: Path) -> DetectorConfig:
        return cls.from_dict(json.loads(Path(path).read_text())["detector"])

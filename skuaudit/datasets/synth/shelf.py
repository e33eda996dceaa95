"""The shelf: back, rows of facings in runs of one product, gaps, edges with price labels and
occluders, photographed by the camera (``render_shelf``), with an exact box per facing and gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from skuaudit.datasets.base import LabeledImage
from skuaudit.datasets.synth.brands import (
    BrandCatalogue,
    BrandIdentity,
    contrast_colour,
    hsv_to_bgr,
    make_catalogue,
    random_colour,
)
from skuaudit.datasets.synth.camera import apply_camera, warp_boxes
from skuaudit.datasets.synth.sprites import (
    fit_text,
    load_product_crops,
    load_textures,
    product_sprite,
)
from skuaudit.detections import CLASS_NAMES, GAP, PRODUCT, Detections

# width / height of a facing, per family
_FAMILY_ASPECT: dict[str, tuple[float, float]] = {
    "box": (0.55, 1.35),
    "bottle": (0.26, 0.42),
    "can": (0.5, 0.68),
    "pouch": (0.6, 0.9),
    "jar": (0.65, 1.0),
}
_STACKABLE = {"box", "can", "jar", "pouch"}


@dataclass
class SynthShelf:
    """One rendered shelf and its exact boxes.

    Attributes:
        image_bgr: ``(H, W, 3)`` uint8.
        boxes_xyxy: ``(N, 4)`` float32 pixel boxes of facings and gaps.
        class_ids: ``(N,)`` int32, 0 product, 1 gap.
        brands: brand name per box, ``""`` for gaps.
        shelf_rows: ``(N,)`` int32 shelf row, 0 = top row.
        seed: the seed it was rendered from.
    """

    image_bgr: np.ndarray
    boxes_xyxy: np.ndarray
    class_ids: np.ndarray
    brands: list[str]
    shelf_rows: np.ndarray
    seed: int = 0

    def to_detections(self) -> Detections:
        """The boxes as ``Detections`` (confidence 1) with ``brand`` and ``shelf_row`` data."""
        return Detections(
            self.boxes_xyxy,
            np.ones(len(self.boxes_xyxy), np.float32),
            self.class_ids,
            {"brand": np.array(self.brands, dtype=object), "shelf_row": self.shelf_rows},
        )

    def to_labeled_image(self, path: str | Path) -> LabeledImage:
        """The boxes as a ``LabeledImage`` for an image stored at ``path``."""
        height, width = self.image_bgr.shape[:2]
        return LabeledImage(
            path=Path(path),
            width=width,
            height=height,
            boxes_xyxy=self.boxes_xyxy,
            class_names=[CLASS_NAMES[c] for c in self.class_ids],
            annotated_classes=CLASS_NAMES,
            extras={"brand": np.array(self.brands, dtype=object), "shelf_row": self.shelf_rows},
        )


@dataclass
class _Layout:
    """Boxes collected while drawing, before the camera warp."""

    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    class_ids: list[int] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    def add(
        self, box: tuple[float, float, float, float], class_id: int, brand: str, row: int
    ) -> None:
        self.boxes.append(box)
        self.class_ids.append(class_id)
        self.brands.append(brand)
        self.rows.append(row)


def _paste(canvas: np.ndarray, sprite: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Copy ``sprite`` where ``mask`` into ``canvas`` at ``(x, y)``, clipped to the canvas."""
    H, W = canvas.shape[:2]
    h, w = mask.shape
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x2 <= x1 or y2 <= y1:
        return
    sx, sy = x1 - x, y1 - y
    np.copyto(
        canvas[y1:y2, x1:x2],
        sprite[sy : sy + y2 - y1, sx : sx + x2 - x1],
        where=mask[sy : sy + y2 - y1, sx : sx + x2 - x1, None],
    )


def _shelf_back(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    kind = rng.integers(0, 4)
    base = np.array(
        hsv_to_bgr(rng.random(), rng.uniform(0, 0.25), rng.uniform(0.3, 0.95)), np.float32
    )
    if kind == 0:  # pegboard
        pitch = int(rng.integers(10, 22))
        tile = np.ones((pitch, pitch), np.float32)
        cv2.circle(tile, (pitch // 2, pitch // 2), max(1, pitch // 7), 0.45, -1)
        gain = np.tile(tile, (height // pitch + 1, width // pitch + 1))[:height, :width]
    elif kind == 1:  # wire grid
        pitch = int(rng.integers(14, 40))
        gain = np.ones((height, width), np.float32)
        gain[:, ::pitch] = 0.6
        gain[::pitch] = 0.6
    else:  # painted or wooden panel
        noise = rng.uniform(0.85, 1.1, size=(int(rng.integers(2, 40)), int(rng.integers(2, 6))))
        gain = cv2.resize(noise.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(gain[..., None] * base, 0, 255).astype(np.uint8)


def _price_label(
    canvas: np.ndarray, rng: np.random.Generator, x: int, y: int, w: int, h: int, colour: tuple
) -> None:
    cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, -1)
    price = f"{rng.integers(0, 20)}.{rng.integers(0, 100):02d}"
    ink = (0, 0, 200) if rng.random() < 0.3 else (20, 20, 20)
    fit_text(
        canvas, price, (x + w // 3, y + 1, x + w - 1, y + h - 1), cv2.FONT_HERSHEY_SIMPLEX, ink
    )
    for i in range(int(rng.integers(3, 8))):
        bx = x + 2 + i * 2
        if bx < x + w // 3:
            cv2.line(canvas, (bx, y + h // 3), (bx, y + h - 2), (30, 30, 30), 1)


def _shelf_edge(
    canvas: np.ndarray,
    rng: np.random.Generator,
    y: int,
    edge_h: int,
    label_xs: list[int],
    style: tuple,
) -> None:
    W = canvas.shape[1]
    colour, label_colour = style
    canvas[max(y, 0) : max(y + edge_h, 0)] = colour
    lip = max(1, edge_h // 8)
    canvas[max(y, 0) : max(y + lip, 0)] = np.clip(np.array(colour) + 40, 0, 255)
    canvas[max(y + edge_h - lip, 0) : max(y + edge_h, 0)] = np.clip(np.array(colour) * 0.5, 0, 255)
    label_h = max(3, int(edge_h * rng.uniform(0.55, 0.8)))
    label_w = max(8, int(label_h * rng.uniform(1.4, 2.4)))
    ly = y + (edge_h - label_h) // 2
    for x in label_xs:
        if 0 <= x < W - label_w and rng.random() < 0.85:
            _price_label(canvas, rng, x, ly, label_w, label_h, label_colour)


def _choose_sku(
    rng: np.random.Generator, catalogue: BrandCatalogue, recent: list[int]
) -> tuple[BrandIdentity, str, int]:
    # brands cluster in blocks on real shelves: revisit a recent brand half the time
    if recent and rng.random() < 0.5:
        brand = catalogue.brands[recent[int(rng.integers(len(recent)))]]
    else:
        index = int(rng.integers(len(catalogue)))
        recent.append(index)
        del recent[:-3]
        brand = catalogue.brands[index]
    family = brand.families[int(rng.integers(len(brand.families)))]
    return brand, family, int(rng.integers(brand.n_variants))


def _fill_row(
    canvas: np.ndarray,
    rng: np.random.Generator,
    layout: _Layout,
    row: int,
    zone: tuple[int, int],
    per_row: float,
    catalogue: BrandCatalogue,
    textures: Sequence[np.ndarray],
    gap_rate: float,
    crops: Sequence[np.ndarray] = (),
) -> list[int]:
    """Fill one shelf row with runs of facings and gaps; returns x positions for price labels.

    With ``crops`` (photos of real products), half of the runs repeat one of them as their
    facings, at its own aspect ratio and without a brand name."""
    W = canvas.shape[1]
    top, bottom = zone
    zone_h = bottom - top
    x = float(-rng.uniform(0, 0.6) * W / per_row)
    label_xs: list[int] = []
    recent: list[int] = []
    typical_w = W / per_row
    row_h = zone_h * rng.uniform(0.6, 0.9)
    stack_rate = rng.uniform(0.0, 0.5)
    while x < W - 4:
        brand, family, variant = _choose_sku(rng, catalogue, recent)
        crop = crops[int(rng.integers(len(crops)))] if crops and rng.random() < 0.5 else None
        if crop is None:
            lo, hi = _FAMILY_ASPECT[family]
            aspect = rng.uniform(lo, hi)
        else:
            aspect = crop.shape[1] / crop.shape[0] * rng.uniform(0.9, 1.1)
        h_full = zone_h * rng.uniform(0.7, 0.93)
        h = min(h_full, max(typical_w / aspect, zone_h * 0.3))
        levels = 1
        stackable = family in _STACKABLE if crop is None else aspect > 1.0
        if stackable and (h < 0.5 * h_full or rng.random() < stack_rate):
            # a column of L facings of height h_full / L: L ~ sqrt keeps the row near per_row
            levels = int(np.clip(round(np.sqrt(h_full * aspect / typical_w)), 1, 3))
            h = h_full / levels
        w = h * aspect
        if w < 6 or h < 8:
            w, h = max(w, 6), max(h, 8)
        label_xs.append(int(x + rng.uniform(0, w)))
        if rng.random() < gap_rate and x > 0:
            gap_w = w * rng.uniform(0.8, 3.0)
            gap_h = min(zone_h * 0.95, max(row_h, h * levels))
            layout.add((x, bottom - gap_h, x + gap_w, bottom), GAP, "", row)
            x += gap_w + rng.uniform(0, 0.05) * w
            continue
        n_facings = int(min(1 + rng.geometric(rng.uniform(0.2, 0.5)), 10))
        if crop is None:
            sprites = [
                product_sprite(brand, family, int(w), int(h), rng, variant, textures)
                for _ in range(2)
            ]
        else:
            size = (max(int(w), 4), max(int(h), 4))
            sprite = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            sprites = [(sprite, np.ones(sprite.shape[:2], bool))] * 2
        spacing = w * rng.uniform(0.0, 0.06)
        for _ in range(n_facings):
            if x >= W - 4:
                break
            for level in range(levels):
                sprite, mask = sprites[int(rng.integers(2))]
                shade = rng.uniform(0.85, 1.08)
                sprite = np.clip(sprite * shade, 0, 255).astype(np.uint8)
                y2 = bottom - level * h
                _paste(canvas, sprite, mask, int(round(x)), int(round(y2 - mask.shape[0])))
                layout.add(
                    (round(x), y2 - mask.shape[0], round(x) + mask.shape[1], y2),
                    PRODUCT,
                    brand.name if crop is None else "",
                    row,
                )
            x += int(w) + spacing + 1
    return label_xs


def _occluders(
    canvas: np.ndarray, rng: np.random.Generator, edges_y: list[int], difficulty: float
) -> None:
    """Hanging clip strips and shelf-talkers that hide parts of facings (boxes stay full)."""
    W = canvas.shape[1]
    for y in edges_y:
        for _ in range(int(rng.poisson(0.6 * difficulty))):
            x = int(rng.uniform(0, W))
            w = int(rng.uniform(8, 30))
            length = int(rng.uniform(30, 140))
            colour = random_colour(rng)
            if rng.random() < 0.5:  # clip strip hanging below the edge
                cv2.rectangle(canvas, (x, y), (x + w // 3, y + length), colour, -1)
            else:  # shelf-talker card sticking up from the edge
                cv2.rectangle(canvas, (x, y - int(w * 1.2)), (x + w * 2, y), colour, -1)
                fit_text(
                    canvas,
                    "NEW",
                    (x + 2, y - int(w * 1.2) + 2, x + w * 2 - 2, y - 2),
                    cv2.FONT_HERSHEY_DUPLEX,
                    contrast_colour(rng, colour),
                )


def _trim_gaps_xyxy(boxes: np.ndarray, class_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Gap boxes narrowed so they stop where the facings beside them start (after the warp)."""
    boxes = boxes.copy()
    for g in np.flatnonzero(class_ids == GAP):
        gx1, gy1, gx2, gy2 = boxes[g]
        near = (class_ids == PRODUCT) & (rows == rows[g])
        near &= (
            (boxes[:, 0] < gx2) & (boxes[:, 2] > gx1) & (boxes[:, 1] < gy2) & (boxes[:, 3] > gy1)
        )
        for p in np.flatnonzero(near):
            if (boxes[p, 0] + boxes[p, 2]) / 2 < (gx1 + gx2) / 2:
                gx1 = max(gx1, boxes[p, 2])
            else:
                gx2 = min(gx2, boxes[p, 0])
        boxes[g, 0], boxes[g, 2] = gx1, max(gx1, gx2)
    return boxes


def _finish_boxes(
    layout: _Layout, matrix: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    class_ids = np.asarray(layout.class_ids, np.int32).reshape(-1)
    rows = np.asarray(layout.rows, np.int32).reshape(-1)
    boxes = warp_boxes(np.asarray(layout.boxes, np.float32).reshape(-1, 4), matrix)
    boxes = _trim_gaps_xyxy(boxes, class_ids, rows)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    clipped = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    c_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (
        (c_area >= 0.45 * np.maximum(area, 1e-6))
        & (clipped[:, 2] - clipped[:, 0] >= 3)
        & (clipped[:, 3] - clipped[:, 1] >= 3)
    )
    idx = np.flatnonzero(keep)
    return clipped[idx], class_ids[idx], [layout.brands[i] for i in idx], rows[idx]


def render_shelf(
    seed: int,
    width: int = 1024,
    height: int = 768,
    *,
    n_rows: int | None = None,
    texture_dir: str | Path | None = None,
    catalogue: BrandCatalogue | None = None,
    difficulty: float = 1.0,
    crop_dir: str | Path | None = None,
) -> SynthShelf:
    """Render one shelf photo with an exact box for every facing and gap.

    Args:
        seed: the same seed gives the same image and boxes.
        width, height: image size in pixels.
        n_rows: shelf rows (2-7 when ``None``).
        texture_dir: optional folder of real photos; crops become product artwork.
        catalogue: brands to stock; ``None`` invents a fresh catalogue per seed, so training
            sees unlimited brand variety.
        difficulty: 0 clean and straight, 1 full camera effects (perspective, blur, noise, JPEG,
            uneven light, occluders).
        crop_dir: optional folder of photos of single real products (e.g.
            ``training.harvest.harvest_product_crops``); half of the runs of facings repeat one
            of them, with no brand name.

    Returns:
        The image and its boxes (products and gaps), brand names and shelf rows.
    """
    if width < 64 or height < 64:
        raise ValueError(f"shelf image must be at least 64x64, got {width}x{height}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    rng = np.random.default_rng([seed, 0x5E1F])
    if catalogue is None:
        catalogue = make_catalogue(int(rng.integers(8, 40)), seed=int(rng.integers(2**31)))
    textures = load_textures(str(texture_dir)) if texture_dir is not None else ()
    crops = load_product_crops(str(crop_dir)) if crop_dir is not None else ()
    rows = int(n_rows if n_rows is not None else rng.integers(2, 8))
    if not 1 <= rows <= 12:
        raise ValueError(f"n_rows must be in 1..12, got {rows}")

    canvas = _shelf_back(rng, width, height)
    pitch = height * rng.uniform(0.85, 1.1) / rows
    y0 = (height - pitch * rows) / 2 + rng.uniform(-0.15, 0.15) * pitch
    edge_h = int(np.clip(pitch * rng.uniform(0.08, 0.16), 6, 60))
    total = rng.uniform(max(60, 15 * rows), min(250, 60 * rows))
    per_row = total / rows
    edge_style = (
        random_colour(rng),
        (int(rng.integers(200, 256)), 255, 255) if rng.random() < 0.5 else (40, 220, 250),
    )
    floor_colour = np.array(random_colour(rng), np.float32)
    gap_rate = rng.uniform(0.03, 0.2)
    interior = rng.uniform(0.35, 0.75)

    layout = _Layout()
    edges_y = []
    for row in range(rows):
        top = int(y0 + row * pitch)
        bottom = int(y0 + (row + 1) * pitch) - edge_h
        if bottom <= 0 or top >= height:
            continue
        zt, zb = max(top, 0), min(bottom, height)
        if zb > zt:
            # shelf interior: darker towards the top where the shelf above casts shadow
            shade = np.linspace(interior * 0.6, interior, zb - zt, dtype=np.float32)
            canvas[zt:zb] = (canvas[zt:zb] * shade[:, None, None]).astype(np.uint8)
            floor_h = int((bottom - top) * rng.uniform(0.04, 0.12))
            canvas[max(bottom - floor_h, 0) : zb] = np.clip(floor_colour * 0.8, 0, 255)
        label_xs = _fill_row(
            canvas, rng, layout, row, (top, bottom), per_row, catalogue, textures, gap_rate, crops
        )
        _shelf_edge(canvas, rng, bottom, edge_h, label_xs, edge_style)
        edges_y.append(bottom)
    floor_top = int(y0 + rows * pitch)
    if floor_top < height:
        canvas[max(floor_top, 0) :] = floor_colour
    _occluders(canvas, rng, edges_y, difficulty)
    image, matrix = apply_camera(canvas, rng, difficulty)
    boxes, class_ids, brands, shelf_rows = _finish_boxes(layout, matrix, width, height)
    return SynthShelf(image, boxes, class_ids, brands, shelf_rows, seed=seed)


def draw_boxes(shelf: SynthShelf, thickness: int = 1) -> np.ndarray:
    """A copy of the shelf image with products in green and gaps in red (``drawing.CLASS_BGR``);
    a box's right and bottom edges are drawn on its last pixel inside."""
    from skuaudit.drawing import CLASS_BGR, draw_boxes

    inside = shelf.boxes_xyxy.astype(int) - np.array([0, 0, 1, 1])
    colours = [CLASS_BGR[int(c)] for c in shelf.class_ids]
    return draw_boxes(shelf.image_bgr.copy(), inside, colours, thickness)

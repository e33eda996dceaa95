"""Synthetic retail shelves with an exact box for every product facing and every empty gap.

A shelf is built in layers, each drawn with OpenCV on small arrays so that a 1024x768 image renders
in a few tens of milliseconds: a shelf back (pegboard, panel or wire), shelf rows of product
facings grouped in runs of the same product, empty gaps that show the dark shelf interior, shelf
edges with price labels, hanging strips and shelf-talkers that partly hide products, then the
camera: perspective, small rotation, uneven light, blur, sensor noise and JPEG artefacts.

Products come from a ``BrandCatalogue``: each ``BrandIdentity`` has a palette, a logo shape, an
invented name and a few flavour variants (a colour band), and sells one to three product families
(``box``, ``bottle``, ``can``, ``pouch``, ``jar``). ``render_product`` draws one facing; the audit
stage uses it to train brand embeddings with held-out catalogues (``make_catalogue`` with another
seed).

``generate_dataset`` writes a folder that every reader in ``skuaudit.datasets.readers`` accepts::

    out_dir/
      images/synth_000000.jpg ...       the shelves
      labels/synth_000000.txt ...       YOLO: "class cx cy w h" normalised, 0 = product, 1 = gap
      data.yaml                         YOLO class names
      annotations.coco.json             COCO boxes; each annotation has "attributes":
                                        {"brand": ..., "shelf_row": ...}
      annotations.csv                   SKU-110K CSV (header-less, class column "product"/"gap")
      brands.json                       the brand identities used

Example:
    >>> shelf = render_shelf(seed=1, width=512, height=384)
    >>> shelf.image_bgr.shape, len(shelf.boxes_xyxy) == len(shelf.brands)
    ((384, 512, 3), True)
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from skuaudit.datasets.base import LabeledImage
from skuaudit.detections import CLASS_NAMES, GAP, PRODUCT, Detections

FAMILIES: tuple[str, ...] = ("box", "bottle", "can", "pouch", "jar")
# width / height of a facing, per family
_FAMILY_ASPECT: dict[str, tuple[float, float]] = {
    "box": (0.55, 1.35),
    "bottle": (0.26, 0.42),
    "can": (0.5, 0.68),
    "pouch": (0.6, 0.9),
    "jar": (0.65, 1.0),
}
_STACKABLE = {"box", "can", "jar", "pouch"}
_LOGO_SHAPES: tuple[str, ...] = (
    "circle",
    "ellipse",
    "star",
    "diamond",
    "triangle",
    "shield",
    "badge",
    "wave",
    "chevron",
    "none",
)
_FONTS: tuple[int, ...] = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
)
_CONSONANTS = "bcdfgklmnprstvzxj"
_VOWELS = "aeiouy"
_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


# --------------------------------------------------------------------------- brands


@dataclass(frozen=True)
class BrandIdentity:
    """The visual identity of one invented brand.

    Attributes:
        name: short invented word printed on every product.
        primary_bgr, secondary_bgr, accent_bgr, text_bgr: the palette.
        material_bgr: colour of bottle bodies and of jar/bottle caps.
        logo_shape: one of ``circle, ellipse, star, diamond, triangle, shield, badge, wave,
            chevron, none`` (``none`` prints the name alone).
        font: OpenCV Hershey font id of the name.
        layout: 0 band at the bottom, 1 band at the top, 2 diagonal band, 3 side stripe.
        families: product families the brand sells.
        variant_bgr: one colour per flavour variant; drawn as the band.
        has_picture: whether packs show a "product photo" panel.
        uppercase: whether the name is printed in capitals.
    """

    name: str
    primary_bgr: tuple[int, int, int]
    secondary_bgr: tuple[int, int, int]
    accent_bgr: tuple[int, int, int]
    text_bgr: tuple[int, int, int]
    material_bgr: tuple[int, int, int]
    logo_shape: str
    font: int
    layout: int
    families: tuple[str, ...]
    variant_bgr: tuple[tuple[int, int, int], ...]
    has_picture: bool
    uppercase: bool

    @property
    def n_variants(self) -> int:
        return len(self.variant_bgr)


@dataclass(frozen=True)
class BrandCatalogue:
    """A deterministic set of brands (see ``make_catalogue``)."""

    brands: tuple[BrandIdentity, ...]
    seed: int = 0

    def __len__(self) -> int:
        return len(self.brands)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.brands]

    def by_name(self, name: str) -> BrandIdentity:
        """The brand called ``name``."""
        for brand in self.brands:
            if brand.name == name:
                return brand
        raise KeyError(f"no brand {name!r} in catalogue; known: {self.names}")


def _hsv_to_bgr(h: float, s: float, v: float) -> tuple[int, int, int]:
    pixel = np.array([[[h * 179.0, s * 255.0, v * 255.0]]], dtype=np.float32)
    bgr = cv2.cvtColor(pixel.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def _luma(bgr: Sequence[int]) -> float:
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    kind = rng.random()
    if kind < 0.12:
        return _hsv_to_bgr(rng.random(), rng.uniform(0, 0.08), rng.uniform(0.85, 1.0))  # white
    if kind < 0.2:
        return _hsv_to_bgr(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.05, 0.25))  # black
    return _hsv_to_bgr(rng.random(), rng.uniform(0.35, 1.0), rng.uniform(0.35, 1.0))


def _brand_name(rng: np.random.Generator) -> str:
    n_syllables = int(rng.integers(2, 4))
    parts = []
    for _ in range(n_syllables):
        syllable = rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS))
        if rng.random() < 0.3:
            syllable += rng.choice(list(_CONSONANTS))
        parts.append(syllable)
    return "".join(parts)[:8].capitalize()


def _contrast_colour(rng: np.random.Generator, background: Sequence[int]) -> tuple[int, int, int]:
    for _ in range(8):
        colour = _random_colour(rng)
        if abs(_luma(colour) - _luma(background)) > 80:
            return colour
    return (20, 20, 20) if _luma(background) > 128 else (245, 245, 245)


def _make_brand(rng: np.random.Generator, name: str) -> BrandIdentity:
    primary = _random_colour(rng)
    accent = _contrast_colour(rng, primary)
    text = _contrast_colour(rng, accent)
    n_families = int(rng.choice([1, 1, 2, 2, 3]))
    families = tuple(str(f) for f in rng.choice(FAMILIES, size=n_families, replace=False))
    n_variants = int(rng.integers(1, 6))
    return BrandIdentity(
        name=name,
        primary_bgr=primary,
        secondary_bgr=_random_colour(rng),
        accent_bgr=accent,
        text_bgr=text,
        material_bgr=_random_colour(rng),
        logo_shape=str(rng.choice(_LOGO_SHAPES)),
        font=int(rng.choice(_FONTS)),
        layout=int(rng.integers(0, 4)),
        families=families,
        variant_bgr=tuple(_random_colour(rng) for _ in range(n_variants)),
        has_picture=bool(rng.random() < 0.5),
        uppercase=bool(rng.random() < 0.5),
    )


def make_catalogue(n_brands: int, seed: int) -> BrandCatalogue:
    """``n_brands`` brands with unique invented names, the same for the same ``seed``.

    Example:
        >>> make_catalogue(3, seed=7).names == make_catalogue(3, seed=7).names
        True
    """
    if n_brands < 1:
        raise ValueError(f"n_brands must be at least 1, got {n_brands}")
    rng = np.random.default_rng([seed, 0xB12A])
    names: list[str] = []
    while len(names) < n_brands:
        name = _brand_name(rng)
        if name not in names:
            names.append(name)
    return BrandCatalogue(tuple(_make_brand(rng, name) for name in names), seed=seed)


@functools.lru_cache(maxsize=8)
def default_catalogue(n_brands: int = 24, seed: int = 0) -> BrandCatalogue:
    """The project's standard catalogue (cached)."""
    return make_catalogue(n_brands, seed)


# --------------------------------------------------------------------------- one product facing


def shrink_texture(image_bgr: np.ndarray, longest: int = 512) -> np.ndarray:
    """A real photo as product artwork: shrunk (INTER_AREA) so its longer side is at most ``longest``."""
    scale = longest / max(image_bgr.shape[:2])
    if scale >= 1:
        return image_bgr
    return cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _read_photos(folder: Path, option: str, longest: int, what: str) -> tuple[np.ndarray, ...]:
    """The readable images of ``folder``, shrunk to at most ``longest`` px; ``option`` and
    ``what`` name the folder and its images in errors."""
    if not folder.is_dir():
        raise ValueError(f"{option} {folder} is not a folder")
    images = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in _IMAGE_EXTENSIONS:
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None and min(image.shape[:2]) >= 8:
            images.append(shrink_texture(image, longest))
    if not images:
        raise ValueError(f"{option} {folder} holds no readable {what}")
    return tuple(images)


@functools.lru_cache(maxsize=4)
def _load_textures(texture_dir: str) -> tuple[np.ndarray, ...]:
    """Real photos from ``texture_dir``, shrunk to at most 512 px, for product artwork."""
    return _read_photos(Path(texture_dir), "texture_dir", 512, "images")


@functools.lru_cache(maxsize=4)
def _load_product_crops(crop_dir: str) -> tuple[np.ndarray, ...]:
    """Photos of single real products from ``crop_dir`` (one per file), for whole facings."""
    return _read_photos(Path(crop_dir), "crop_dir", 256, "product photos")


def _picture(
    rng: np.random.Generator, w: int, h: int, textures: Sequence[np.ndarray]
) -> np.ndarray:
    """A "product photo": a crop of a real photo if given, else smooth random colour blobs."""
    w, h = max(w, 1), max(h, 1)
    if textures and rng.random() < 0.8:
        tex = textures[int(rng.integers(len(textures)))]
        th, tw = tex.shape[:2]
        cw = int(min(tw, max(8, w * rng.uniform(1.0, 3.0))))
        ch = int(min(th, max(8, h * rng.uniform(1.0, 3.0))))
        x0, y0 = int(rng.integers(0, tw - cw + 1)), int(rng.integers(0, th - ch + 1))
        return cv2.resize(tex[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
    cells = rng.integers(0, 256, size=(int(rng.integers(2, 5)), int(rng.integers(2, 5)), 3))
    return cv2.resize(cells.astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)


def _fit_text(
    img: np.ndarray,
    text: str,
    box_xyxy: tuple[int, int, int, int],
    font: int,
    colour: Sequence[int],
    vertical: bool = False,
) -> None:
    """Print ``text`` as large as fits in ``box_xyxy`` (pixel, inclusive-exclusive), centred."""
    x1, y1, x2, y2 = box_xyxy
    bw, bh = x2 - x1, y2 - y1
    if vertical:
        bw, bh = bh, bw
    if bw < 3 or bh < 3:
        return
    (tw, th), base = cv2.getTextSize(text, font, 1.0, 1)
    scale = min(bw / max(tw, 1), bh / max(th + base, 1))
    thickness = max(1, int(round(scale * 1.6)))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    if not vertical:
        org = (x1 + (bw - tw) // 2, y1 + (bh + th) // 2 - base // 2)
        cv2.putText(
            img, text, org, font, scale, tuple(int(c) for c in colour), thickness, cv2.LINE_AA
        )
        return
    patch = np.ascontiguousarray(np.rot90(img[y1:y2, x1:x2], 1))
    org = ((bw - tw) // 2, (bh + th) // 2 - base // 2)
    cv2.putText(
        patch, text, org, font, scale, tuple(int(c) for c in colour), thickness, cv2.LINE_AA
    )
    img[y1:y2, x1:x2] = np.rot90(patch, -1)


def _star(cx: float, cy: float, r: float, points: int = 5) -> np.ndarray:
    angles = np.arange(points * 2) * np.pi / points - np.pi / 2
    radii = np.where(np.arange(points * 2) % 2 == 0, r, r * 0.45)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)


def _draw_logo(
    img: np.ndarray, brand: BrandIdentity, box_xyxy: tuple[int, int, int, int], vertical: bool
) -> None:
    x1, y1, x2, y2 = box_xyxy
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    colour = brand.accent_bgr
    shape = brand.logo_shape
    if shape in ("circle", "ellipse"):
        axes = (int(w / 2), int(h / 2)) if shape == "ellipse" else (int(min(w, h) / 2),) * 2
        cv2.ellipse(img, (int(cx), int(cy)), axes, 0, 0, 360, colour, -1, cv2.LINE_AA)
    elif shape == "star":
        cv2.fillPoly(img, [_star(cx, cy, min(w, h) / 2)], colour, cv2.LINE_AA)
    elif shape == "diamond":
        pts = np.array([[cx, y1], [x2, cy], [cx, y2], [x1, cy]], dtype=np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    elif shape == "triangle":
        pts = np.array([[cx, y1], [x2, y2], [x1, y2]], dtype=np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    elif shape == "shield":
        pts = np.array([[x1, y1], [x2, y1], [x2, cy], [cx, y2], [x1, cy]], dtype=np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    elif shape == "badge":
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), brand.text_bgr, max(1, min(w, h) // 12))
    elif shape == "wave":
        xs = np.linspace(x1, x2, 12)
        top = cy - h * 0.25 + np.sin(np.linspace(0, 2 * np.pi, 12)) * h * 0.15
        pts = np.concatenate([np.stack([xs, top], 1), [[x2, y2], [x1, y2]]]).astype(np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    elif shape == "chevron":
        t = max(2, int(h * 0.35))
        pts = np.array(
            [[x1, y1], [cx, y1 + t], [x2, y1], [x2, y1 + t], [cx, y2], [x1, y1 + t]], dtype=np.int32
        )
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    name = brand.name.upper() if brand.uppercase else brand.name
    pad_x, pad_y = int(w * 0.1), int(h * 0.2)
    _fit_text(
        img,
        name,
        (x1 + pad_x, y1 + pad_y, x2 - pad_x, y2 - pad_y),
        brand.font,
        brand.text_bgr if shape != "none" else brand.accent_bgr,
        vertical,
    )


def _shape_mask(
    family: str, w: int, h: int, rng: np.random.Generator
) -> tuple[np.ndarray, int, int]:
    """Silhouette of a facing, and the top and bottom rows of its printed label."""
    mask = np.zeros((h, w), dtype=np.uint8)
    if family == "bottle":
        cap_h, neck_h, shoulder_h = (
            int(h * f) for f in rng.uniform([0.07, 0.06, 0.08], [0.12, 0.14, 0.15])
        )
        cap_w = w * rng.uniform(0.32, 0.5)
        cx = w / 2
        pts = np.array(
            [
                [cx - cap_w / 2, 0],
                [cx + cap_w / 2, 0],
                [cx + cap_w / 2, cap_h + neck_h],
                [w - 1, cap_h + neck_h + shoulder_h],
                [w - 1, h - 1 - w * 0.08],
                [w * 0.92, h - 1],
                [w * 0.08, h - 1],
                [0, h - 1 - w * 0.08],
                [0, cap_h + neck_h + shoulder_h],
                [cx - cap_w / 2, cap_h + neck_h],
            ],
            dtype=np.int32,
        )
        cv2.fillPoly(mask, [pts], 255)
        return mask, cap_h + neck_h + shoulder_h + int(h * 0.04), int(h * 0.88)
    if family == "jar":
        lid_h = int(h * rng.uniform(0.12, 0.2))
        r = int(max(1, min(w, h) * 0.15))
        inset = int(w * 0.05)
        mask[:lid_h, inset : w - inset] = 255
        cv2.rectangle(mask, (0, lid_h + r), (w - 1, h - 1 - r), 255, -1)
        cv2.rectangle(mask, (r, lid_h), (w - 1 - r, h - 1), 255, -1)
        for x in (r, w - 1 - r):
            for y in (lid_h + r, h - 1 - r):
                cv2.circle(mask, (x, y), r, 255, -1)
        return mask, lid_h + int(h * 0.1), int(h * 0.9)
    if family == "pouch":
        top_inset = int(w * rng.uniform(0.04, 0.12))
        pts = np.array(
            [[top_inset, 0], [w - 1 - top_inset, 0], [w - 1, h - 1], [0, h - 1]], np.int32
        )
        cv2.fillPoly(mask, [pts], 255)
        return mask, int(h * 0.1), h
    if family == "can":
        r = max(1, int(w * 0.06))
        cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 255, -1)
        cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 255, -1)
        return mask, int(h * 0.06), int(h * 0.94)
    mask[:] = 255
    return mask, 0, h


def _column_gain(family: str, w: int, rng: np.random.Generator) -> np.ndarray:
    """Horizontal shading: cylinders get a bright specular stripe, flat packs a soft fall-off."""
    x = (np.arange(w, dtype=np.float32) + 0.5) / max(w, 1)
    if family in ("bottle", "can", "jar"):
        gain = 0.55 + 0.5 * np.sin(np.pi * x) ** 0.6
        peak = rng.uniform(0.2, 0.4)
        gain += 0.45 * np.exp(-(((x - peak) / rng.uniform(0.04, 0.08)) ** 2))
        return gain
    return 1.0 - rng.uniform(0.05, 0.2) * np.abs(x - 0.5) * 2


def _product_sprite(
    brand: BrandIdentity,
    family: str,
    w: int,
    h: int,
    rng: np.random.Generator,
    variant: int,
    textures: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """One facing as ``(bgr (h, w, 3) uint8, mask (h, w) bool)``."""
    w, h = max(int(w), 4), max(int(h), 4)
    mask, label_top, label_bottom = _shape_mask(family, w, h, rng)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = brand.primary_bgr
    if family in ("bottle", "jar"):
        img[:] = brand.material_bgr
        img[: max(1, label_top - int(h * 0.04))] = brand.secondary_bgr  # cap or lid
        label_x = (int(w * 0.04), w - int(w * 0.04)) if family == "bottle" else (0, w)
    else:
        label_x = (0, w)
    lx1, lx2 = label_x
    ly1, ly2 = label_top, label_bottom
    lw, lh = lx2 - lx1, ly2 - ly1
    label = img[ly1:ly2, lx1:lx2]
    label[:] = brand.primary_bgr
    grad = np.linspace(rng.uniform(0.85, 1.05), rng.uniform(0.95, 1.15), lh, dtype=np.float32)
    label[:] = np.clip(label * grad[:, None, None], 0, 255).astype(np.uint8)
    band = brand.variant_bgr[variant % brand.n_variants]
    if brand.layout == 0:
        label[int(lh * 0.72) : int(lh * 0.92)] = band
    elif brand.layout == 1:
        label[int(lh * 0.04) : int(lh * 0.2)] = band
    elif brand.layout == 2:
        pts = np.array([[0, lh * 0.75], [lw, lh * 0.45], [lw, lh * 0.62], [0, lh * 0.92]], np.int32)
        cv2.fillPoly(label, [pts], band, cv2.LINE_AA)
    else:
        label[:, : max(1, int(lw * 0.18))] = band
    if brand.has_picture and lh > 12 and lw > 8:
        pw, ph = int(lw * 0.7), int(lh * 0.3)
        px, py = (lw - pw) // 2, int(lh * 0.5)
        pic = _picture(rng, pw, ph, textures)
        tinted = (0.7 * pic + 0.3 * np.array(band, np.float32)).astype(np.uint8)
        roi = label[py : py + ph, px : px + pw]
        ellipse = np.zeros(roi.shape[:2], np.uint8)
        cv2.ellipse(ellipse, (pw // 2, ph // 2), (pw // 2, ph // 2), 0, 0, 360, 255, -1)
        np.copyto(roi, tinted[: roi.shape[0], : roi.shape[1]], where=ellipse[..., None] > 0)
    vertical = lw < lh * 0.45 and brand.logo_shape in ("none", "badge", "ellipse")
    if vertical:
        logo = (int(lw * 0.1), int(lh * 0.08), int(lw * 0.9), int(lh * 0.7))
    else:
        logo_h = int(min(lh * 0.38, lw * 0.75))
        logo = (int(lw * 0.08), int(lh * 0.12), int(lw * 0.92), int(lh * 0.12) + logo_h)
    _draw_logo(label, brand, logo, vertical)
    if lh > 20:
        ink = brand.text_bgr if brand.logo_shape == "none" else brand.accent_bgr
        for i in range(int(rng.integers(1, 4))):
            y = int(lh * (0.95 - 0.05 * i))
            x2 = int(lw * rng.uniform(0.4, 0.9))
            cv2.line(label, (int(lw * 0.1), y), (x2, y), ink, 1)
    if family == "pouch":
        img[: max(1, int(h * 0.07))] = np.clip(np.array(brand.primary_bgr) * 0.8 + 40, 0, 255)
    elif family == "can":
        rim = max(1, int(h * 0.05))
        img[:rim] = img[h - rim :] = (185, 185, 190)
    elif family == "box":
        top = max(1, int(h * rng.uniform(0.0, 0.06)))
        img[:top] = np.clip(img[:top].astype(np.int16) + 35, 0, 255).astype(np.uint8)
    gain = _column_gain(family, w, rng)
    # print grain and soft blotches, so that no pack is a flat colour
    grain = rng.uniform(0.9, 1.1, size=(int(rng.integers(3, 9)), int(rng.integers(2, 6)), 1))
    texture = cv2.resize(grain.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    shaded = img.astype(np.float32) * gain[None, :, None] * texture[..., None]
    if family in ("bottle", "can", "jar", "pouch"):
        shaded += 60 * np.clip(gain - 1.0, 0, None)[None, :, None]
    return np.clip(shaded, 0, 255).astype(np.uint8), mask > 0


def render_product(
    brand: BrandIdentity,
    family: str,
    width_px: int,
    height_px: int,
    rng: np.random.Generator,
    variant: int = 0,
) -> np.ndarray:
    """A BGR ``(height_px, width_px, 3)`` crop of one product facing on a shelf-back colour.

    Args:
        brand: the brand identity to print.
        family: one of ``FAMILIES`` (the brand's own families look most natural).
        width_px, height_px: crop size.
        rng: source of the small per-pack variation (cap height, shading, picture).
        variant: flavour variant; wraps around ``brand.n_variants``.

    Example:
        >>> b = default_catalogue().brands[0]
        >>> render_product(b, "box", 40, 60, np.random.default_rng(0)).shape
        (60, 40, 3)
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown product family {family!r}; known: {list(FAMILIES)}")
    sprite, mask = _product_sprite(brand, family, width_px, height_px, rng, variant)
    back = np.full_like(sprite, int(rng.integers(40, 200)))
    np.copyto(back, sprite, where=mask[..., None])
    return back


# --------------------------------------------------------------------------- the shelf


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
        _hsv_to_bgr(rng.random(), rng.uniform(0, 0.25), rng.uniform(0.3, 0.95)), np.float32
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
    _fit_text(
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
                _product_sprite(brand, family, int(w), int(h), rng, variant, textures)
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


def _warp_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Axis-aligned bounds of ``(N, 4)`` xyxy boxes after a 3x3 perspective ``matrix``."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack(
        [
            np.stack([x1, y1], 1),
            np.stack([x2, y1], 1),
            np.stack([x2, y2], 1),
            np.stack([x1, y2], 1),
        ],
        1,
    )
    warped = cv2.perspectiveTransform(corners.reshape(-1, 1, 2).astype(np.float32), matrix)
    warped = warped.reshape(-1, 4, 2)
    return np.concatenate([warped.min(1), warped.max(1)], 1)


@functools.lru_cache(maxsize=4)
def _noise_field(height: int, width: int) -> np.ndarray:
    # one fixed field per size, read at a random offset per image: fresh normals per image are slow
    rng = np.random.default_rng(12345)
    return rng.standard_normal((height + 128, width + 128, 3), dtype=np.float32)


def _camera(
    image: np.ndarray, rng: np.random.Generator, difficulty: float
) -> tuple[np.ndarray, np.ndarray]:
    """Perspective, lighting, blur, noise and JPEG; returns the image and the warp matrix."""
    H, W = image.shape[:2]
    d = difficulty
    jitter = rng.uniform(-1, 1, size=(4, 2)) * np.array([W, H]) * 0.025 * d
    angle = np.deg2rad(rng.uniform(-1.0, 1.0) * d)
    src = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float32)
    centre = np.array([W / 2, H / 2])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = ((src - centre) @ rot.T + centre + jitter).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    image = cv2.warpPerspective(image, matrix, (W, H), borderMode=cv2.BORDER_REFLECT)

    light = rng.uniform(1 - 0.35 * d, 1 + 0.2 * d, size=(3, 4)).astype(np.float32)
    gain = cv2.resize(light, (W, H), interpolation=cv2.INTER_CUBIC)
    cast = 1 + rng.uniform(-0.08, 0.08, size=3).astype(np.float32) * d
    out = image.astype(np.float32) * (gain[..., None] * cast * rng.uniform(0.75, 1.15))
    noise_sigma = rng.uniform(1, 7) * d
    if noise_sigma > 0.5:
        oy, ox = (int(v) for v in rng.integers(0, 129, size=2))
        out += _noise_field(H, W)[oy : oy + H, ox : ox + W] * noise_sigma
    image = np.clip(out, 0, 255).astype(np.uint8)
    blur = rng.uniform(0, 1.6) * d
    if rng.random() < 0.15 * d:
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        image = cv2.filter2D(image, -1, kernel)
    elif blur > 0.4:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    if d > 0:
        quality = int(rng.uniform(95 - 60 * d, 95))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else image
    return image, matrix


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
            colour = _random_colour(rng)
            if rng.random() < 0.5:  # clip strip hanging below the edge
                cv2.rectangle(canvas, (x, y), (x + w // 3, y + length), colour, -1)
            else:  # shelf-talker card sticking up from the edge
                cv2.rectangle(canvas, (x, y - int(w * 1.2)), (x + w * 2, y), colour, -1)
                _fit_text(
                    canvas,
                    "NEW",
                    (x + 2, y - int(w * 1.2) + 2, x + w * 2 - 2, y - 2),
                    cv2.FONT_HERSHEY_DUPLEX,
                    _contrast_colour(rng, colour),
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
    boxes = _warp_boxes(np.asarray(layout.boxes, np.float32).reshape(-1, 4), matrix)
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
    textures = _load_textures(str(texture_dir)) if texture_dir is not None else ()
    crops = _load_product_crops(str(crop_dir)) if crop_dir is not None else ()
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
        _random_colour(rng),
        (int(rng.integers(200, 256)), 255, 255) if rng.random() < 0.5 else (40, 220, 250),
    )
    floor_colour = np.array(_random_colour(rng), np.float32)
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
    image, matrix = _camera(canvas, rng, difficulty)
    boxes, class_ids, brands, shelf_rows = _finish_boxes(layout, matrix, width, height)
    return SynthShelf(image, boxes, class_ids, brands, shelf_rows, seed=seed)


def draw_boxes(shelf: SynthShelf, thickness: int = 1) -> np.ndarray:
    """A copy of the shelf image with products in green and gaps in red (``drawing.CLASS_BGR``);
    a box's right and bottom edges are drawn on its last pixel inside."""
    from skuaudit.drawing import CLASS_BGR, draw_boxes

    inside = shelf.boxes_xyxy.astype(int) - np.array([0, 0, 1, 1])
    colours = [CLASS_BGR[int(c)] for c in shelf.class_ids]
    return draw_boxes(shelf.image_bgr.copy(), inside, colours, thickness)


# --------------------------------------------------------------------------- writing datasets


def image_seed(seed: int, index: int) -> int:
    """The ``render_shelf`` seed of image ``index`` of a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _render_to_file(args: tuple[int, int, int, int, str, str | None, str, str | None]) -> dict:
    index, seed, width, height, out_dir, texture_dir, name, crop_dir = args
    shelf = render_shelf(
        image_seed(seed, index), width, height, texture_dir=texture_dir, crop_dir=crop_dir
    )
    cv2.imwrite(
        str(Path(out_dir) / "images" / name), shelf.image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    return {
        "name": name,
        "boxes": shelf.boxes_xyxy.astype(np.float64).round(2).tolist(),
        "class_ids": shelf.class_ids.tolist(),
        "brands": shelf.brands,
        "rows": shelf.shelf_rows.tolist(),
    }


def _write_yolo(out: Path, records: list[dict], width: int, height: int) -> None:
    labels = out / "labels"
    labels.mkdir(exist_ok=True)
    for rec in records:
        lines = []
        for (x1, y1, x2, y2), cid in zip(rec["boxes"], rec["class_ids"], strict=True):
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            lines.append(
                f"{cid} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
            )
        (labels / Path(rec["name"]).with_suffix(".txt").name).write_text("\n".join(lines) + "\n")
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    (out / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames:\n{names}\n")


def _write_coco(out: Path, records: list[dict], width: int, height: int) -> None:
    images, annotations = [], []
    for image_id, rec in enumerate(records, start=1):
        images.append(
            {"id": image_id, "file_name": f"images/{rec['name']}", "width": width, "height": height}
        )
        for box, cid, brand, row in zip(
            rec["boxes"], rec["class_ids"], rec["brands"], rec["rows"], strict=True
        ):
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cid + 1,
                    "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": round((x2 - x1) * (y2 - y1), 2),
                    "iscrowd": 0,
                    "attributes": {"brand": brand, "shelf_row": row},
                }
            )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (out / "annotations.coco.json").write_text(json.dumps(coco))


def _write_sku110k(out: Path, records: list[dict], width: int, height: int) -> None:
    with (out / "annotations.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        for rec in records:
            for (x1, y1, x2, y2), cid in zip(rec["boxes"], rec["class_ids"], strict=True):
                writer.writerow([rec["name"], x1, y1, x2, y2, CLASS_NAMES[cid], width, height])


_WRITERS = {"yolo": _write_yolo, "coco": _write_coco, "sku110k": _write_sku110k}


def generate_dataset(
    out_dir: str | Path,
    n: int,
    seed: int,
    width: int = 1024,
    height: int = 768,
    formats: Sequence[str] = ("yolo", "coco", "sku110k"),
    texture_dir: str | Path | None = None,
    workers: int = 1,
    crop_dir: str | Path | None = None,
) -> Path:
    """Render ``n`` shelves into ``out_dir`` with YOLO, COCO and SKU-110K annotations.

    The layout is described in the module docstring. Image ``i`` is ``render_shelf(image_seed(seed,
    i), ...)``, so a dataset is reproducible image by image and can be extended.

    Args:
        out_dir: folder to write (created if missing).
        n: number of images.
        seed: dataset seed.
        width, height: image size.
        formats: any of ``yolo``, ``coco``, ``sku110k``.
        texture_dir: optional folder of real photos for product artwork.
        workers: processes rendering in parallel.
        crop_dir: optional folder of photos of single real products for whole facings.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    unknown = set(formats) - set(_WRITERS)
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}; known: {sorted(_WRITERS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tex = str(texture_dir) if texture_dir is not None else None
    crops = str(crop_dir) if crop_dir is not None else None
    if crops is not None:
        _load_product_crops(crops)  # a bad folder fails here, not in a worker
    jobs = [(i, seed, width, height, str(out), tex, f"synth_{i:06d}.jpg", crops) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            records = list(pool.map(_render_to_file, jobs, chunksize=4))
    else:
        records = [_render_to_file(job) for job in jobs]
    for name in formats:
        _WRITERS[name](out, records, width, height)
    brands = sorted({b for rec in records for b in rec["brands"] if b})
    (out / "brands.json").write_text(json.dumps({"brands": brands, "seed": seed}, indent=1))
    return out


def catalogue_to_json(catalogue: BrandCatalogue) -> list[dict]:
    """The catalogue as JSON-ready dicts (for model cards and the catalogue page)."""
    return [asdict(b) for b in catalogue.brands]


def cli_main(argv: list[str]) -> int:
    """``skuaudit synth --out DIR --n N --seed S``: write a synthetic shelf dataset."""
    parser = argparse.ArgumentParser(prog="skuaudit synth", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--n", type=int, default=100, help="number of images (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument(
        "--formats", default="yolo,coco,sku110k", help="comma-separated: yolo,coco,sku110k"
    )
    parser.add_argument(
        "--texture-dir",
        type=Path,
        default=None,
        help="folder of real photos used as product artwork (optional)",
    )
    parser.add_argument(
        "--crop-dir",
        type=Path,
        default=None,
        help="folder of photos of single real products, repeated as whole facings (optional)",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = generate_dataset(
            args.out,
            args.n,
            args.seed,
            args.width,
            args.height,
            formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
            texture_dir=args.texture_dir,
            workers=args.workers,
            crop_dir=args.crop_dir,
        )
    except ValueError as exc:
        parser.error(str(exc))
    seconds = time.perf_counter() - start
    print(f"wrote {args.n} shelves to {out} in {seconds:.1f} s ({args.n / seconds:.1f} images/s)")
    return 0

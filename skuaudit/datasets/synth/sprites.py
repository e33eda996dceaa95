"""One product facing: the pack drawn from its brand (``render_product``), and the real photos
that may serve as artwork or as whole facings.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from skuaudit.datasets.synth.brands import FAMILIES, BrandCatalogue, BrandIdentity

_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


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
def load_textures(texture_dir: str) -> tuple[np.ndarray, ...]:
    """Real photos from ``texture_dir``, shrunk to at most 512 px, for product artwork."""
    return _read_photos(Path(texture_dir), "texture_dir", 512, "images")


@functools.lru_cache(maxsize=4)
def load_product_crops(crop_dir: str) -> tuple[np.ndarray, ...]:
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


def fit_text(
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
    fit_text(
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


def product_sprite(
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
        >>> from skuaudit.datasets.synth.brands import default_catalogue
        >>> b = default_catalogue().brands[0]
        >>> render_product(b, "box", 40, 60, np.random.default_rng(0)).shape
        (60, 40, 3)
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown product family {family!r}; known: {list(FAMILIES)}")
    sprite, mask = product_sprite(brand, family, width_px, height_px, rng, variant)
    back = np.full_like(sprite, int(rng.integers(40, 200)))
    np.copyto(back, sprite, where=mask[..., None])
    return back


def reference_packs(
    catalogue: BrandCatalogue,
    per_brand: int,
    width_px: int,
    height_px: int,
    rng: np.random.Generator,
    *,
    first_id: int = 0,
    variants: bool = True,
) -> list[tuple[int, np.ndarray]]:
    """Generated reference facings for a recognition gallery: ``(first_id + brand index, crop)``.

    Pack ``i`` of a brand is of its ``i``-th family (cycling through the brand's families) and,
    with ``variants``, of flavour variant ``i``; brands in catalogue order, a brand's packs
    together.

    Example:
        >>> from skuaudit.datasets.synth.brands import make_catalogue
        >>> packs = reference_packs(make_catalogue(2, seed=1), 3, 24, 48, np.random.default_rng(0))
        >>> [label for label, _ in packs], packs[0][1].shape
        ([0, 0, 0, 1, 1, 1], (48, 24, 3))
    """
    return [
        (
            first_id + b,
            render_product(
                brand,
                brand.families[i % len(brand.families)],
                width_px,
                height_px,
                rng,
                variant=i if variants else 0,
            ),
        )
        for b, brand in enumerate(catalogue.brands)
        for i in range(per_brand)
    ]

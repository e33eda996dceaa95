"""Invented brands: a palette, a logo shape, a name and flavour variants each, in seeded catalogues."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

FAMILIES: tuple[str, ...] = ("box", "bottle", "can", "pouch", "jar")
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


def hsv_to_bgr(h: float, s: float, v: float) -> tuple[int, int, int]:
    pixel = np.array([[[h * 179.0, s * 255.0, v * 255.0]]], dtype=np.float32)
    bgr = cv2.cvtColor(pixel.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def _luma(bgr: Sequence[int]) -> float:
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


def random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    kind = rng.random()
    if kind < 0.12:
        return hsv_to_bgr(rng.random(), rng.uniform(0, 0.08), rng.uniform(0.85, 1.0))  # white
    if kind < 0.2:
        return hsv_to_bgr(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.05, 0.25))  # black
    return hsv_to_bgr(rng.random(), rng.uniform(0.35, 1.0), rng.uniform(0.35, 1.0))


def _brand_name(rng: np.random.Generator) -> str:
    n_syllables = int(rng.integers(2, 4))
    parts = []
    for _ in range(n_syllables):
        syllable = rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS))
        if rng.random() < 0.3:
            syllable += rng.choice(list(_CONSONANTS))
        parts.append(syllable)
    return "".join(parts)[:8].capitalize()


def contrast_colour(rng: np.random.Generator, background: Sequence[int]) -> tuple[int, int, int]:
    for _ in range(8):
        colour = random_colour(rng)
        if abs(_luma(colour) - _luma(background)) > 80:
            return colour
    return (20, 20, 20) if _luma(background) > 128 else (245, 245, 245)


def _make_brand(rng: np.random.Generator, name: str) -> BrandIdentity:
    primary = random_colour(rng)
    accent = contrast_colour(rng, primary)
    text = contrast_colour(rng, accent)
    n_families = int(rng.choice([1, 1, 2, 2, 3]))
    families = tuple(str(f) for f in rng.choice(FAMILIES, size=n_families, replace=False))
    n_variants = int(rng.integers(1, 6))
    return BrandIdentity(
        name=name,
        primary_bgr=primary,
        secondary_bgr=random_colour(rng),
        accent_bgr=accent,
        text_bgr=text,
        material_bgr=random_colour(rng),
        logo_shape=str(rng.choice(_LOGO_SHAPES)),
        font=int(rng.choice(_FONTS)),
        layout=int(rng.integers(0, 4)),
        families=families,
        variant_bgr=tuple(random_colour(rng) for _ in range(n_variants)),
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


def catalogue_to_json(catalogue: BrandCatalogue) -> list[dict]:
    """The catalogue as JSON-ready dicts (for model cards and the catalogue page)."""
    return [asdict(b) for b in catalogue.brands]

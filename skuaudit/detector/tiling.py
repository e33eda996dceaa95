"""Tiles of a photo for the photo path (inference): their layout."""

from __future__ import annotations

import math


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
        n = math.ceil((length - tile) / stride) + 1
        return [int(round(i * (length - tile) / (n - 1))) for i in range(n)]

    return [
        (x, y, min(x + tw, width), min(y + th, height))
        for y in starts(height, th)
        for x in starts(width, tw)
    ]

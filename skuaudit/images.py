"""Decode user images safely: uploads, reference crops and audit snapshots.

Every image that enters from outside goes through ``load_image_bytes``: it refuses empty files,
files over the upload limit, non-images, decompression bombs (the size is read from the header
before any pixel is decoded) and truncated or corrupt files, each with an ``ImageError`` a person
can act on, and applies the EXIF orientation a phone camera writes.

Example:
    >>> import cv2, numpy as np
    >>> ok, png = cv2.imencode(".png", np.zeros((4, 6, 3), np.uint8))
    >>> load_image_bytes(png.tobytes()).shape
    (4, 6, 3)
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skuaudit.config import get_settings
from skuaudit.errors import UserError

ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP")
UPLOAD_TYPES: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
# The smallest photo side worth auditing: a few products need a few dozen pixels each.
MIN_SHELF_PHOTO_SIDE: int = 64


class ImageError(UserError):
    """An image that cannot be used; the message says why."""


def load_image_bytes(
    data: bytes,
    max_pixels: int | None = None,
    *,
    max_bytes: int | None = None,
    name: str = "image",
    min_side: int = 1,
) -> np.ndarray:
    """Decode an uploaded image to a BGR array, upright according to its EXIF orientation.

    Args:
        data: the file's bytes.
        max_pixels: largest accepted width x height; ``None`` uses ``max_image_pixels``.
        max_bytes: largest accepted file size; ``None`` uses ``max_upload_bytes``.
        name: how the message names the file (e.g. the upload's file name).
        min_side: smallest accepted width and height (e.g. ``MIN_SHELF_PHOTO_SIDE`` for photos
            to audit).

    Returns:
        ``(H, W, 3)`` uint8 BGR image.

    Raises:
        ImageError: empty, too large, too small, not an image, a decompression bomb, truncated
            or corrupt.
    """
    settings = get_settings()
    max_pixels = settings.max_image_pixels if max_pixels is None else int(max_pixels)
    max_bytes = settings.max_upload_bytes if max_bytes is None else int(max_bytes)
    if not data:
        raise ImageError(f"{name}: the file is empty")
    if len(data) > max_bytes:
        raise ImageError(
            f"{name}: the file is {len(data) / 2**20:.1f} MB, more than the "
            f"{max_bytes / 2**20:.0f} MB limit; send a smaller photo"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if image.format not in ACCEPTED_FORMATS:
                raise ImageError(
                    f"{name}: {image.format} images are not accepted; use JPEG, PNG or WebP"
                )
            if min(width, height) < min_side:
                raise ImageError(
                    f"{name}: {width}x{height} pixels is too small to show a shelf; send a photo "
                    f"of at least {min_side} pixels a side"
                )
            if width * height > max_pixels:
                raise ImageError(
                    f"{name}: {width}x{height} pixels is more than the limit of {max_pixels:,} "
                    "pixels (possible decompression bomb); resize the photo"
                )
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = np.asarray(image.convert("RGB"))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fires before the check above for the very largest images.
        raise ImageError(
            f"{name}: the image is more than the limit of {max_pixels:,} pixels (possible "
            "decompression bomb); resize the photo"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"{name}: not a readable image file (damaged, or not JPEG, PNG or WebP)"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: the image is corrupt or truncated ({exc})") from exc
    if rgb.size == 0:
        raise ImageError(f"{name}: the image has no pixels")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def load_image_file(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """``load_image_bytes`` for a file on disk; a missing file is an ``ImageError`` too."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    return load_image_bytes(data, max_pixels, name=str(path))


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR image (audit snapshots)."""
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ImageError(f"cannot encode an image of shape {image_bgr.shape} as JPEG")
    return buf.tobytes()


def encode_png(image_bgr: np.ndarray) -> bytes:
    """Lossless PNG bytes of a BGR image (reference crops)."""
    ok, buf = cv2.imencode(".png", image_bgr)
    if not ok:
        raise ImageError(f"cannot encode an image of shape {image_bgr.shape} as PNG")
    return buf.tobytes()


def crop_xyxy(image_bgr: np.ndarray, box_xyxy: np.ndarray) -> np.ndarray:
    """The pixels of one pixel ``xyxy`` box, clipped to the image (may be empty)."""
    height, width = image_bgr.shape[:2]
    x1, y1, x2, y2 = np.asarray(box_xyxy, dtype=np.float32).reshape(4)
    x1, x2 = int(np.clip(np.floor(x1), 0, width)), int(np.clip(np.ceil(x2), 0, width))
    y1, y2 = int(np.clip(np.floor(y1), 0, height)), int(np.clip(np.ceil(y2), 0, height))
    return image_bgr[y1:y2, x1:x2]


# --------------------------------------------------------------------------- photo quality

# Cheap checks a field tool runs before analysing a shelf photo. Thresholds: the variance of the
# Laplacian of the photo scaled to QUALITY_SIDE px; mean brightness 0..255; the median slope of
# the long, nearly horizontal edges (shelf lines).
QUALITY_SIDE = 1000
BLUR_MIN_LAPLACIAN_VAR = 40.0
DARK_MAX_BRIGHTNESS = 45.0
BRIGHT_MIN_BRIGHTNESS = 235.0
MAX_SHELF_SLOPE_DEG = 10.0


def shelf_slope_deg(gray: np.ndarray) -> float | None:
    """Median angle in degrees of the long, nearly horizontal edges of a grey image (the shelf
    lines of a shelf photo); ``None`` when it has none. 0 is level; the sign says which way."""
    edges = cv2.Canny(gray, 60, 180)
    side = max(gray.shape)
    lines = cv2.HoughLinesP(
        edges, 1, np.pi / 360, threshold=80, minLineLength=side // 4, maxLineGap=side // 100
    )
    if lines is None:
        return None
    x1, y1, x2, y2 = lines.reshape(-1, 4).T.astype(np.float64)
    angles = np.degrees(np.arctan2(y2 - y1, x2 - x1))
    angles = (angles + 90) % 180 - 90  # one direction per line
    near_horizontal = angles[np.abs(angles) < 35]
    return float(np.median(near_horizontal)) if len(near_horizontal) >= 3 else None


def photo_quality(image_bgr: np.ndarray) -> list[str]:
    """Warnings about a shelf photo before it is analysed: blurred, too dark or too bright,
    taken at a steep angle. Each names the measured figure and what to do; empty when fine.

    Example:
        >>> photo_quality(np.full((480, 640, 3), 10, np.uint8))[0][:30]
        'blurred (sharpness 0, under 40'
    """
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    scale = QUALITY_SIDE / max(gray.shape)
    gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    warnings = []
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    if sharpness < BLUR_MIN_LAPLACIAN_VAR:
        warnings.append(
            f"blurred (sharpness {sharpness:.0f}, under {BLUR_MIN_LAPLACIAN_VAR:.0f}): hold the "
            "phone still and tap the shelf to focus"
        )
    brightness = float(gray.mean())
    if brightness < DARK_MAX_BRIGHTNESS:
        warnings.append(
            f"too dark (brightness {brightness:.0f} of 255): turn on the light or move closer"
        )
    elif brightness > BRIGHT_MIN_BRIGHTNESS:
        warnings.append(f"too bright (brightness {brightness:.0f} of 255): avoid glare")
    slope = shelf_slope_deg(gray)
    if slope is not None and abs(slope) > MAX_SHELF_SLOPE_DEG:
        warnings.append(
            f"taken at a steep angle (the shelf lines slope {abs(slope):.0f}°): face the shelf "
            "and hold the phone level"
        )
    return warnings

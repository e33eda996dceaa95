from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from skuaudit.images import ImageError, crop_xyxy, encode_jpeg, encode_png, load_image_bytes


def _png(width: int = 8, height: int = 6) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 2] = 255  # red in BGR
    return encode_png(image)


def _exif_rotated_jpeg() -> bytes:
    """A 40x20 (w x h) JPEG whose EXIF says 'rotate 90° clockwise to display' (orientation 6)."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_decodes_png_to_bgr():
    image = load_image_bytes(_png())
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [0, 0, 255]


def test_applies_exif_orientation():
    assert load_image_bytes(_exif_rotated_jpeg()).shape == (40, 20, 3)


def test_webp_is_accepted():
    buf = io.BytesIO()
    Image.new("RGB", (10, 12), (10, 200, 30)).save(buf, "WEBP")
    assert load_image_bytes(buf.getvalue()).shape == (12, 10, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, this is a text file", "not a readable image"),
        (_png()[:40], "not a readable image"),
        (encode_jpeg(np.full((300, 300, 3), 128, np.uint8))[:600], "corrupt or truncated"),
    ],
)
def test_bad_files_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageError, match=message):
        load_image_bytes(data)


def test_photos_too_small_to_audit_are_refused():
    from skuaudit.images import MIN_SHELF_PHOTO_SIDE

    assert load_image_bytes(_png(1, 1)).shape == (1, 1, 3)  # no minimum unless asked
    with pytest.raises(ImageError, match="1x1 pixels is too small to show a shelf"):
        load_image_bytes(_png(1, 1), min_side=MIN_SHELF_PHOTO_SIDE)
    with pytest.raises(ImageError, match="300x63 pixels"):
        load_image_bytes(_png(300, 63), min_side=64)
    assert load_image_bytes(_png(64, 64), min_side=64).shape == (64, 64, 3)


def test_decompression_bomb_is_refused_before_decoding():
    # a 20000 x 20000 PNG compresses to a few hundred KB; the header alone must be enough to refuse
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image_bytes(buf.getvalue(), max_pixels=50_000_000)


def test_size_limits_come_from_settings(monkeypatch):
    monkeypatch.setenv("SKUAUDIT_MAX_IMAGE_PIXELS", "40")
    with pytest.raises(ImageError, match="more than the limit of 40 pixels"):
        load_image_bytes(_png())
    monkeypatch.setenv("SKUAUDIT_MAX_UPLOAD_MB", "1")
    with pytest.raises(ImageError, match="more than the 1 MB limit"):
        load_image_bytes(b"\x89PNG" + bytes(2 * 1024 * 1024))


@pytest.mark.parametrize(
    "box, shape",
    [
        ([2, 1, 5, 4], (3, 3, 3)),
        ([-5, -5, 3, 2], (2, 3, 3)),
        ([7, 5, 20, 20], (1, 1, 3)),
        ([9, 9, 12, 12], (0, 0, 3)),
    ],
)
def test_crop_is_clipped_to_the_image(box, shape):
    assert crop_xyxy(np.zeros((6, 8, 3), np.uint8), np.array(box)).shape == shape


def test_jpeg_round_trip():
    image = cv2.GaussianBlur(
        np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8), (5, 5), 2
    )
    assert load_image_bytes(encode_jpeg(image)).shape == (32, 48, 3)


def test_photo_quality_flags_blur_darkness_and_a_steep_angle():
    import cv2

    from skuaudit.datasets.synth import render_shelf
    from skuaudit.images import photo_quality

    image = render_shelf(0, 1024, 768).image_bgr
    assert photo_quality(image) == []
    assert photo_quality(cv2.GaussianBlur(image, (0, 0), 4))[0].startswith("blurred")
    assert photo_quality((image * 0.3).astype(np.uint8))[-1].startswith("too dark")
    turn = cv2.getRotationMatrix2D((512, 384), 18, 1.0)
    steep = photo_quality(cv2.warpAffine(image, turn, (1024, 768)))
    assert steep and steep[-1].startswith("taken at a steep angle (the shelf lines slope 1")

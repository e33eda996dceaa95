"""The camera over a drawn shelf: perspective, small rotation, uneven light, blur, noise and JPEG,
and the boxes carried through its warp.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
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


def apply_camera(
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

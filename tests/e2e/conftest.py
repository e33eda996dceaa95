"""Fixtures of the browser tests: a fake-camera video of a generated shelf with known products.

Chromium's ``--use-file-for-fake-video-capture`` plays a raw ``.mjpeg`` file (concatenated baseline
JPEGs with 4:2:0 chroma subsampling, i.e. ``yuvj420p``, which is what ``cv2.imencode`` writes) in a
loop at about 30 fps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from skuaudit.datasets.synth import SynthShelf, render_shelf
from skuaudit.detections import PRODUCT


@dataclass(frozen=True)
class ShelfVideo:
    """The written video and the truth over its frames.

    Attributes:
        path: the ``.mjpeg`` file.
        products_min, products_max: fewest and most products whose centre is in view, over the pan.
        brands: brand name -> products in view in the first frame.
        frames: number of frames in one loop.
    """

    path: Path
    products_min: int
    products_max: int
    brands: dict[str, int]
    frames: int


def products_in_view(shelf: SynthShelf, x0: int, width: int) -> np.ndarray:
    """Mask of the shelf's products whose box centre lies in the columns ``[x0, x0 + width)``."""
    centres_x = (shelf.boxes_xyxy[:, 0] + shelf.boxes_xyxy[:, 2]) / 2
    return (shelf.class_ids == PRODUCT) & (centres_x >= x0) & (centres_x < x0 + width)


def pan_offsets(pan_px: int, frames: int) -> list[int]:
    """Left edge of the view per frame: right and back again, so the loop has no jump."""
    half = np.linspace(0, pan_px, frames // 2).round().astype(int).tolist()
    return half + half[::-1]


def write_shelf_video(
    path: Path,
    *,
    seed: int = 11,
    width: int = 640,
    height: int = 480,
    pan_px: int = 24,
    frames: int = 60,
    n_rows: int = 3,
    difficulty: float = 0.5,
) -> ShelfVideo:
    """Render a shelf ``pan_px`` wider than the view and write a slow pan across it as MJPEG.

    The shelf carries the demo database's brands, so the live path's brand recognition is checked
    as well as its counts.
    """
    from skuaudit.demo import demo_catalogue

    shelf = render_shelf(
        seed,
        width + pan_px,
        height,
        n_rows=n_rows,
        difficulty=difficulty,
        catalogue=demo_catalogue(),
    )
    offsets = pan_offsets(pan_px, frames)
    counts = [int(products_in_view(shelf, x0, width).sum()) for x0 in offsets]
    first = products_in_view(shelf, offsets[0], width)
    brands: dict[str, int] = {}
    for brand in np.array(shelf.brands, dtype=object)[first]:
        brands[brand] = brands.get(brand, 0) + 1
    with open(path, "wb") as out:
        for x0 in offsets:
            view = np.ascontiguousarray(shelf.image_bgr[:, x0 : x0 + width])
            ok, jpeg = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, 85])
            assert ok
            out.write(jpeg.tobytes())
    return ShelfVideo(Path(path), min(counts), max(counts), brands, len(offsets))


@pytest.fixture(scope="module")
def shelf_video(tmp_path_factory) -> ShelfVideo:
    """A 2-second pan across a 3-row generated shelf, written as MJPEG for Chromium's fake camera."""
    return write_shelf_video(tmp_path_factory.mktemp("camera") / "shelf.mjpeg")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(command: list[str], env: dict, log_path: Path, cwd: Path) -> Iterator[str]:
    """Run ``command`` (a ``streamlit run`` command line, without the server options) on a free
    loopback port; yields the base URL once the server answers its health check, stops it after.
    """
    import subprocess
    import time
    import urllib.request

    port = free_port()
    options = ["--server.port", str(port), "--server.address", "127.0.0.1"]
    options += ["--server.headless", "true"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*command, *options], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

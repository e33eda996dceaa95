"""Synthetic shelf generator speed, against a flat-colour-box baseline measured in the same run.

    .venv/bin/python bench/bench_synth.py [--n 40] [--batches]

Prints images/s of ``render_shelf`` (1024x768, full camera model) and of a baseline that draws the
same number of flat rectangles and JPEG-round-trips the canvas, and their ratio. With ``--batches``
it also compares the training input (``datasets.batches.TrainingBatches`` over pre-rendered
JPEGs: crops, augmentation, padded targets, 320x320 batches of 8) with rendering each image on the
fly, the input the renders would give without pre-rendering.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import cv2
import numpy as np

from skuaudit.datasets.synth import generate_dataset, render_shelf


def flat_box_render(seed: int, n_boxes: int, width: int = 1024, height: int = 768) -> np.ndarray:
    """The plain baseline: flat colour rectangles on grey, then a JPEG round trip."""
    rng = np.random.default_rng(seed)
    canvas = np.full((height, width, 3), 120, np.uint8)
    xy = rng.integers(0, [width - 40, height - 60], size=(n_boxes, 2))
    for (x, y), colour in zip(xy, rng.integers(0, 256, size=(n_boxes, 3)), strict=True):
        cv2.rectangle(canvas, (int(x), int(y)), (int(x) + 30, int(y) + 50), colour.tolist(), -1)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def bench_render(n: int) -> None:
    render_shelf(0)  # warm caches (noise field)
    counts = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for seed in range(n):
        counts.append(len(render_shelf(seed).boxes_xyxy))
    full = n / (time.perf_counter() - start)
    cpu_ms = (time.process_time() - cpu_start) / n * 1e3
    start = time.perf_counter()
    for seed, count in enumerate(counts):
        flat_box_render(seed, count)
    flat = n / (time.perf_counter() - start)
    print(
        f"render_shelf 1024x768:  {full:6.1f} images/s wall clock, {cpu_ms:.0f} ms CPU/image "
        f"({1e3 / cpu_ms:.1f} images/s per busy core; {np.mean(counts):.0f} boxes/image)"
    )
    print(f"flat-box baseline:      {flat:6.1f} images/s")
    print(f"ratio full/flat:        {full / flat:6.3f}")


def bench_batches(n: int) -> None:
    from skuaudit.datasets.batches import TrainingBatches
    from skuaudit.datasets.examples import TileSpec
    from skuaudit.datasets.readers import read_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = read_dataset(generate_dataset(tmp, n, seed=1, formats=("coco",)), "coco")
        batches = TrainingBatches(data.images, ["product", "gap"], tile=TileSpec(), workers=1)
        batches[0]
        start = time.perf_counter()
        for i in range(n // 8):
            batches[i]
        pre_rendered = (n // 8) * 8 / (time.perf_counter() - start)
        start = time.perf_counter()
        for seed in range(n // 4):
            render_shelf(seed=5000 + seed)
        on_the_fly = (n // 4) / (time.perf_counter() - start)
    print(f"TrainingBatches, pre-rendered JPEGs:  {pre_rendered:6.1f} images/s (one thread)")
    print(f"rendering each image on the fly:      {on_the_fly:6.1f} images/s")
    print(f"ratio pre-rendered/on-the-fly:        {pre_rendered / on_the_fly:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--batches", action="store_true")
    args = parser.parse_args()
    bench_render(args.n)
    if args.batches:
        bench_batches(args.n)


if __name__ == "__main__":
    main()

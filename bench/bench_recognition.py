"""Product recognition time: the photo path (keypoint verification) vs the fast path vs a plain
embedding nearest neighbour, on one generated shelf, measured in one run.

A gallery of 50 generated products x 5 reference facings; a 1600x1200 generated shelf photo whose
product boxes (the first 150) are recognised through ``Recognizer.assign_products``, the code an
audit runs (keypoints verified only where the fast path is unsure, and again with every facing
verified); a 640x480 frame (its own boxes) through the live path (``fast=True``). Each figure is
the median of ``--repeats`` runs after a warm-up.

    nice -n 5 .venv/bin/python bench/bench_recognition.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import replace

import numpy as np

from skuaudit.datasets.synth import make_catalogue, render_product, render_shelf
from skuaudit.detections import PRODUCT
from skuaudit.images import crop_xyxy
from skuaudit.recognition import Gallery, Recognizer


def _median_ms(fn, repeats: int, cpu: list | None = None) -> float:
    """Median wall-clock ms; ``cpu`` receives the median CPU ms of this process (all threads),
    a figure less moved by other jobs on the machine."""
    fn()
    times, cpu_times = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - start_cpu)
    if cpu is not None:
        cpu.append(1000 * float(np.median(cpu_times)))
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--facings", type=int, default=150)
    args = parser.parse_args()

    recognizer = Recognizer.load()
    catalogue = make_catalogue(50, seed=77)
    rng = np.random.default_rng(0)
    references = [
        (b, render_product(brand, brand.families[i % len(brand.families)], 60, 120, rng, variant=i))
        for b, brand in enumerate(catalogue.brands)
        for i in range(5)
    ]
    start = time.perf_counter()
    gallery = Gallery.from_references(references, recognizer)
    describe_ms = 1000 * (time.perf_counter() - start) / len(references)

    for seed in range(100):  # the first generated shelf with enough facings
        shelf = render_shelf(seed, 1600, 1200, catalogue=catalogue)
        det = shelf.to_detections()
        if (det.class_id == PRODUCT).sum() >= args.facings:
            break
    det = det[np.flatnonzero(det.class_id == PRODUCT)[: args.facings]]
    frame = render_shelf(4, 640, 480, catalogue=catalogue)
    frame_det = frame.to_detections()

    def nearest_embedding() -> None:  # the previous recogniser: embedding nearest neighbour
        crops = [crop_xyxy(shelf.image_bgr, box) for box in det.xyxy]
        (recognizer.embed(crops) @ gallery.embeddings.T).argmax(axis=1)

    photo_cpu: list[float] = []
    photo = _median_ms(
        lambda: recognizer.assign_products(shelf.image_bgr, det, gallery), args.repeats, photo_cpu
    )
    # the same facings with every one verified (as if the fast path were never sure)
    verify_all = copy.copy(recognizer)
    verify_all.matching = replace(recognizer.matching, skip_verify_above=1.0)
    photo_all = _median_ms(
        lambda: verify_all.assign_products(shelf.image_bgr, det, gallery), args.repeats
    )
    fast = _median_ms(
        lambda: recognizer.assign_products(shelf.image_bgr, det, gallery, fast=True), args.repeats
    )
    plain = _median_ms(nearest_embedding, args.repeats)
    live_cpu: list[float] = []
    live = _median_ms(
        lambda: recognizer.assign_products(frame.image_bgr, frame_det, gallery, fast=True),
        args.repeats,
        live_cpu,
    )
    n_frame = int((frame_det.class_id == PRODUCT).sum())
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}; gallery {len(gallery)} references of 50 products")
    print(f"describing a reference (embedding, colour, keypoints): {describe_ms:.1f} ms")
    matcher = gallery.matcher(recognizer)
    crops = [crop_xyxy(shelf.image_bgr, box) for box in det.xyxy]
    fast_best = matcher.product_scores(matcher.describe(crops, fast=True), fast=True).max(axis=1)
    verified = float((fast_best < recognizer.matching.skip_verify_above).mean())
    print(
        f"photo path, {len(det)} facings (keypoints verified for {verified:.0%} of them): "
        f"{photo:.0f} ms ({photo_cpu[0]:.0f} ms of CPU)"
    )
    print(f"photo path, every facing verified: {photo_all:.0f} ms")
    print(f"fast path, same facings (embedding + colour): {fast:.0f} ms")
    print(f"plain embedding nearest neighbour, same facings: {plain:.0f} ms")
    print(
        f"live frame 640x480, {n_frame} facings, fast path: {live:.1f} ms "
        f"({live_cpu[0]:.0f} ms of CPU)"
    )
    print(
        f"ratios: photo / fast {photo / fast:.2f}x, every facing verified / fast "
        f"{photo_all / fast:.2f}x, photo / plain {photo / plain:.2f}x, fast / plain {fast / plain:.2f}x"
    )


if __name__ == "__main__":
    main()

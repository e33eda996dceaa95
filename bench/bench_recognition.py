"""Product recognition time: the photo path (keypoint verification) vs the fast path vs a plain
embedding nearest neighbour, on one generated shelf, measured in one run.

A gallery of 50 generated products x 5 reference facings; a 1600x1200 generated shelf photo whose
product boxes (the first 150) are recognised through ``Recognizer.assign_brands``, the code an audit
runs; a 640x480 frame (its own boxes) through the live path (``fast=True``). Each figure is the
median of ``--repeats`` runs after a warm-up.

    nice -n 5 .venv/bin/python bench/bench_recognition.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from skuaudit.datasets.synth import make_catalogue, render_product, render_shelf
from skuaudit.detections import PRODUCT
from skuaudit.images import crop_xyxy
from skuaudit.recognition import Gallery, Recognizer


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
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

    shelf = render_shelf(3, 1600, 1200, catalogue=catalogue)
    det = shelf.to_detections()
    det = det[np.flatnonzero(det.class_id == PRODUCT)[: args.facings]]
    frame = render_shelf(4, 640, 480, catalogue=catalogue)
    frame_det = frame.to_detections()

    def nearest_embedding() -> None:  # the previous recogniser: embedding nearest neighbour
        crops = [crop_xyxy(shelf.image_bgr, box) for box in det.xyxy]
        (recognizer.embed(crops) @ gallery.embeddings.T).argmax(axis=1)

    photo = _median_ms(
        lambda: recognizer.assign_brands(shelf.image_bgr, det, gallery), args.repeats
    )
    fast = _median_ms(
        lambda: recognizer.assign_brands(shelf.image_bgr, det, gallery, fast=True), args.repeats
    )
    plain = _median_ms(nearest_embedding, args.repeats)
    live = _median_ms(
        lambda: recognizer.assign_brands(frame.image_bgr, frame_det, gallery, fast=True),
        args.repeats,
    )
    n_frame = int((frame_det.class_id == PRODUCT).sum())
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}; gallery {len(gallery)} references of 50 products")
    print(f"describing a reference (embedding, colour, keypoints): {describe_ms:.1f} ms")
    print(f"photo path, {len(det)} facings (with keypoint verification): {photo:.0f} ms")
    print(f"fast path, same facings (embedding + colour): {fast:.0f} ms")
    print(f"plain embedding nearest neighbour, same facings: {plain:.0f} ms")
    print(f"live frame 640x480, {n_frame} facings, fast path: {live:.1f} ms")
    print(
        f"ratios: photo / fast {photo / fast:.2f}x, photo / plain {photo / plain:.2f}x, "
        f"fast / plain {fast / plain:.2f}x"
    )


if __name__ == "__main__":
    main()

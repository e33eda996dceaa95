"""Reader throughput against a plain parse of the same annotation files, measured in one run.

    .venv/bin/python bench/bench_readers.py [--n 200]

Generates a small synthetic dataset (320x240 shelves, ~100 boxes each) in a temporary folder and
times ``read_dataset`` in each format against ``json.load`` / ``csv.reader`` / reading the label
lines (no checks, no image headers). If ``../shared/data/shelf-gaps`` exists, it also times the
YOLO reader on those 500 real photos; otherwise it says so and skips that line.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from skuaudit.datasets.readers import read_dataset
from skuaudit.datasets.synth import generate_dataset

SHELF_GAPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "shelf-gaps"


def _timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _plain(root: Path, fmt: str) -> Callable[[], object]:
    if fmt == "coco":
        return lambda: json.loads((root / "annotations.coco.json").read_text())
    if fmt == "sku110k":
        return lambda: list(csv.reader((root / "annotations.csv").open()))
    return lambda: [p.read_text().split() for p in sorted((root / "labels").glob("*.txt"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_dataset(tmp, args.n, seed=0, width=320, height=240)
        boxes = read_dataset(root, "coco").num_boxes
        print(f"{args.n} images, {boxes} boxes")
        for fmt in ("yolo", "coco", "sku110k"):
            ours = _timed(lambda fmt=fmt: read_dataset(root, fmt))
            plain = _timed(_plain(root, fmt))
            print(
                f"{fmt:8s} read_dataset {args.n / ours:8.0f} images/s  plain parse "
                f"{args.n / plain:8.0f} images/s  ratio {plain / ours:.3f}"
            )
    if SHELF_GAPS.is_dir():
        seconds = _timed(lambda: read_dataset(SHELF_GAPS, "yolo", class_map={"0": "gap"}), 1)
        print(f"shelf-gaps (500 real photos, YOLO + checks): {500 / seconds:.0f} images/s")
    else:
        print(f"skipped real-photo timing: {SHELF_GAPS} not found")


if __name__ == "__main__":
    main()

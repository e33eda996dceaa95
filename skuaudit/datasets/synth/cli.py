"""``skuaudit synth``: write a synthetic shelf data set."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from skuaudit.datasets.synth.writers import generate_dataset

DESCRIPTION = (
    "Synthetic retail shelves with an exact box for every product facing and every empty gap."
)


def cli_main(argv: list[str]) -> int:
    """``skuaudit synth --out DIR --n N --seed S``: write a synthetic shelf dataset."""
    parser = argparse.ArgumentParser(prog="skuaudit synth", description=DESCRIPTION)
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--n", type=int, default=100, help="number of images (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument(
        "--formats", default="yolo,coco,sku110k", help="comma-separated: yolo,coco,sku110k"
    )
    parser.add_argument(
        "--texture-dir",
        type=Path,
        default=None,
        help="folder of real photos used as product artwork (optional)",
    )
    parser.add_argument(
        "--crop-dir",
        type=Path,
        default=None,
        help="folder of photos of single real products, repeated as whole facings (optional)",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = generate_dataset(
            args.out,
            args.n,
            args.seed,
            args.width,
            args.height,
            formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
            texture_dir=args.texture_dir,
            workers=args.workers,
            crop_dir=args.crop_dir,
        )
    except ValueError as exc:
        parser.error(str(exc))
    seconds = time.perf_counter() - start
    print(f"wrote {args.n} shelves to {out} in {seconds:.1f} s ({args.n / seconds:.1f} images/s)")
    return 0

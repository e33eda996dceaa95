"""``skuaudit detect PHOTO... [--json]``: run the detector on photos and print the boxes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skuaudit.config import get_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skuaudit detect", description="Detect products and gaps in photos."
    )
    parser.add_argument("photos", nargs="+", type=Path, help="image files (JPEG, PNG, ...)")
    parser.add_argument(
        "--model", type=Path, default=None, help="model folder (default: the shipped default model)"
    )
    parser.add_argument(
        "--score-threshold", type=float, default=None, help="minimum score (default: the model's)"
    )
    add_tiling_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON list for all photos")
    return parser


def add_tiling_arguments(parser: argparse.ArgumentParser) -> None:
    """The photo-path switches: ``--tiled`` / ``--single-pass`` into ``args.tiled`` (``None``:
    the model's size rule), ``--flip`` / ``--no-flip`` into ``args.flip`` (``None``: the
    model's ``flip_classes``) and ``--multiscale`` / ``--no-multiscale`` into
    ``args.multiscale`` (``None``: the model's ``multiscale_classes``); see
    :func:`apply_view_arguments`."""
    switches = (
        ("--tiled", "--single-pass", "tiled",
         "always tile (default: tile images larger than the model's tile_above_px)",
         "never tile: one pass per image"),
        ("--flip", "--no-flip", "flip",
         "tiled photos: also run the mirrored tiles and fuse both views' boxes of every class "
         "(default: the model's flip_classes)",
         "tiled photos: one view"),
        ("--multiscale", "--no-multiscale", "multiscale",
         "tiled photos: fuse the boxes of the model's extra tile sizes for every class "
         "(default: the model's multiscale_classes)",
         "tiled photos: one tile size (also for the model's class_tile_fractions)"),
    )  # fmt: skip
    for on, off, dest, on_help, off_help in switches:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(on, dest=dest, action="store_true", default=None, help=on_help)
        group.add_argument(off, dest=dest, action="store_false", help=off_help)


def apply_view_arguments(config, flip: bool | None, multiscale: bool | None = None) -> None:
    """``--flip`` fuses the mirrored view for every class, ``--no-flip`` for none;
    ``--multiscale`` fuses the extra tile sizes for every class, ``--no-multiscale`` for none
    (neither ``extra_tile_fractions`` nor ``class_tile_fractions``); ``None`` keeps the model's
    ``flip_classes`` / ``multiscale_classes`` / ``class_tile_fractions``.

    Raises:
        ValueError: ``multiscale=True`` for a model without ``extra_tile_fractions``.
    """
    if flip is not None:
        config.flip_classes = list(config.class_names) if flip else []
    if multiscale and not config.extra_tile_fractions:
        raise ValueError("--multiscale: the model has no extra_tile_fractions in its config.json")
    if multiscale is not None:
        config.multiscale_classes = list(config.class_names) if multiscale else []
    if multiscale is False:
        config.class_tile_fractions = {}


def _read_image(path: Path):
    import cv2
    import numpy as np

    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(f"{path}: not a readable image (corrupt or unsupported format)")
    pixels = image.shape[0] * image.shape[1]
    if pixels > get_settings().max_image_pixels:
        raise ValueError(f"{path}: image has {pixels} pixels, more than SKUAUDIT_MAX_IMAGE_PIXELS")
    return image


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # Check every photo first, so a bad one costs no model load and no partial output.
    try:
        images = [_read_image(p) for p in args.photos]
    except ValueError as exc:
        print(f"skuaudit detect: {exc}", file=sys.stderr)
        return 2
    from skuaudit.detector import Detector, ModelLoadError

    try:
        detector = Detector.load(args.model or get_settings().default_model_dir)
    except ModelLoadError as exc:
        print(f"skuaudit detect: {exc}", file=sys.stderr)
        return 2
    try:
        apply_view_arguments(detector.config, args.flip, args.multiscale)
    except ValueError as exc:
        print(f"skuaudit detect: {exc}", file=sys.stderr)
        return 2
    results = []
    for path, image in zip(args.photos, images, strict=True):
        detections = detector.detect(image, score_threshold=args.score_threshold, tiled=args.tiled)
        results.append({"image": str(path), "detections": detections.to_records()})
    if args.json:
        print(json.dumps(results))
    else:
        for res in results:
            classes = [d["class"] for d in res["detections"]]
            print(
                f"{res['image']}: {classes.count('product')} products, {classes.count('gap')} gaps"
            )
    return 0

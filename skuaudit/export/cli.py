"""``skuaudit export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skuaudit.export.base import FORMATS, ExportError
from skuaudit.export.folders import export_model


def cli_main(argv: list[str]) -> int:
    """``skuaudit export --model DIR --format tfjs|tflite|savedmodel --out DIR [--int8]``."""
    parser = argparse.ArgumentParser(
        prog="skuaudit export", description="Export a detector model folder."
    )
    parser.add_argument(
        "--model", required=True, type=Path, help="model folder (config.json, model.keras)"
    )
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, type=Path, help="new or empty output folder")
    parser.add_argument(
        "--int8", action="store_true", help="tflite: int8 post-training quantisation"
    )
    args = parser.parse_args(argv)

    from skuaudit.detector import ModelLoadError

    try:
        out = export_model(args.model, args.format, args.out, int8=args.int8)
    except (ModelLoadError, ExportError, ValueError, OSError) as exc:
        print(f"skuaudit export: {exc}", file=sys.stderr)
        return 2
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    print(
        f"exported {args.model} as {args.format}{' int8' if args.int8 else ''} to {out} ({size_mb:.1f} MB)"
    )
    return 0

"""Train detectors on a lent GPU machine that has JAX but no TensorFlow (``training.jax_train``).

Three steps; only ``train`` runs on the GPU machine::

    # 1. here (TensorFlow): pack what the GPU machine needs into an ignored folder that travels
    python scripts/train_on_accelerator.py pack --out .carry --init-model models/default
    # 2. there (KERAS_BACKEND=jax, keras/albumentations carried as wheels): render the synthetic
    #    shelves, then train every --variant on one batch stream for --budget-s seconds
    KERAS_BACKEND=jax python3 scripts/train_on_accelerator.py train --carry .carry --out $OUT \\
        --budget-s 420 --variant f:0.35:1e-3:.carry/init.npz --variant wide:1.0:3e-3
    # 3. here (TensorFlow): a model folder from the weights, then its photo-path settings
    python scripts/train_on_accelerator.py finish --weights RUN/wide.last.npz --out /tmp/wide
    python scripts/train_default_model.py --calibrate-only --out /tmp/wide \\
        --tile-above-px 400 --flip-classes gap

``pack`` copies the shelf-gaps photos (YOLO) and the product artwork of the synthetic shelves (the
shelf-photos not in ``row_counts.json``, shrunk to 512 px as the renderer would) and, with
``--init-model``, that model's weights; none of it is committed (``.carry`` is git-ignored). The
data and training settings are those of ``train_default_model.py``'s last stages: synthetic shelves
(1,500 renders, seed 1, photo artwork) plus the shelf-gaps photos x6 per epoch with the product loss
masked, 320 px tiles and zoom-in crops 0.35-1.0, head of 4 convolutions per separate tower.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

SHARED = REPO_ROOT.parent / "shared" / "data"
ANCHOR_RATIOS = (0.33, 0.75, 1.6, 4.0)  # the shipped model's (config.json)


def report(event: dict) -> None:
    print(json.dumps(event, default=str), flush=True)


def pack(args: argparse.Namespace) -> int:
    import cv2

    from skuaudit.datasets.synth import shrink_texture

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    gaps = out / "shelf-gaps"
    if gaps.exists():
        shutil.rmtree(gaps)
    shutil.copytree(args.gaps, gaps)
    textures = out / "textures"
    textures.mkdir(exist_ok=True)
    excluded = {row["image"] for row in json.loads((args.photos / "row_counts.json").read_text())}
    count = 0
    for photo in sorted((args.photos / "images").glob("*.jpg")):
        if photo.name in excluded:
            continue
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            continue
        cv2.imwrite(
            str(textures / photo.name), shrink_texture(image), [cv2.IMWRITE_JPEG_QUALITY, 95]
        )
        count += 1
    if args.init_model is not None:
        from skuaudit.training.jax_train import export_model_weights

        export_model_weights(args.init_model, out / "init.npz")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    report({"event": "packed", "textures": count, "bytes": size, "out": str(out)})
    return 0


def train(args: argparse.Namespace) -> int:
    from skuaudit.datasets.readers import read_dataset
    from skuaudit.datasets.synth import generate_dataset
    from skuaudit.training.cli import parse_fraction_range
    from skuaudit.training.jax_train import Variant, train_variants
    from skuaudit.training.train import TrainConfig

    started = time.monotonic()
    variants = [Variant.parse(text) for text in args.variant]
    workers = args.workers or max(1, (os.cpu_count() or 2) - 2)
    synth_dir = args.work / "synth_tex"
    if not (synth_dir / "data.yaml").is_file():
        generate_dataset(
            synth_dir,
            args.synth_images,
            seed=1,
            formats=("yolo",),
            texture_dir=args.carry / "textures",
            workers=workers,
        )
    report({"event": "rendered", "seconds": round(time.monotonic() - started, 1)})
    synth = read_dataset(synth_dir, "yolo")
    gaps = read_dataset(args.carry / "shelf-gaps", "yolo", class_map={"0": "gap"})
    textures = len(list((args.carry / "textures").glob("*.jpg")))
    config = TrainConfig(
        out_dir=args.out,
        batch_size=args.batch_size,
        image_size=320,
        val_fraction=0.2,
        seed=0,
        tile=True,
        val_batches=args.val_batches,
        max_boxes=args.max_boxes,
        dataset_repeats=[1, args.gap_repeats],
        loss_normalisation="image",
        anchor_aspect_ratios=ANCHOR_RATIOS,
        anchor_size_factor=2.0,
        small_photo_crop=parse_fraction_range(args.small_photo_crop),
        mosaic=args.mosaic,
        head_depth=args.head_depth,
        separate_towers=True,
        export_tflite=False,
        data_description=[
            f"synthetic shelves: {len(synth)} renders 1024x768 (generate_dataset seed 1, product "
            f"artwork from the {textures} shelf-photos not in row_counts.json), "
            f"{synth.num_boxes} product/gap boxes, random crops",
            f"shelf-gaps (SKU-110K subset annotated by Munimul/ESD): {len(gaps)} photos 416x416, "
            f"{gaps.num_boxes} gap boxes, product loss masked, each photo x{args.gap_repeats} "
            "per epoch",
        ],
    )
    budget = args.budget_s - (time.monotonic() - started)
    train_variants(
        variants,
        [synth, gaps],
        config,
        budget_s=budget,
        out_dir=args.out,
        workers=workers,
        warmup_steps=args.warmup_steps,
        eval_every_s=args.eval_every_s,
        reserve_s=args.reserve_s,
        max_steps=args.max_steps,
        progress_callback=report,
    )
    return 0


def finish(args: argparse.Namespace) -> int:
    from skuaudit.datasets.readers import read_dataset
    from skuaudit.training.jax_train import model_folder_from_weights, read_weights
    from skuaudit.training.train import TrainConfig, split_datasets

    meta, _ = read_weights(args.weights)
    metric_sets = []
    if args.synth is not None and args.gaps is not None:
        cfg = meta["info"].get("config", {})
        config = TrainConfig(
            out_dir=args.out,
            val_fraction=cfg.get("val_fraction", 0.2),
            seed=cfg.get("seed", 0),
        )
        datasets = [
            read_dataset(args.synth, "yolo"),
            read_dataset(args.gaps, "yolo", class_map={"0": "gap"}),
        ]
        metric_sets = split_datasets(config, datasets)[2]
    model_folder_from_weights(args.weights, args.out, metrics_sets=metric_sets)
    report({"event": "finished", "out": str(args.out), "metrics": bool(metric_sets)})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="copy the data the GPU machine needs into --out")
    p.add_argument("--out", type=Path, default=REPO_ROOT / ".carry")
    p.add_argument("--gaps", type=Path, default=SHARED / "shelf-gaps")
    p.add_argument("--photos", type=Path, default=SHARED / "shelf-photos")
    p.add_argument("--init-model", type=Path, default=None)
    p.set_defaults(run=pack)

    t = sub.add_parser("train", help="train on JAX (KERAS_BACKEND=jax)")
    t.add_argument("--carry", type=Path, default=REPO_ROOT / ".carry")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--work", type=Path, default=Path("/tmp/skuaudit_accel"))
    t.add_argument("--variant", action="append", required=True, help="NAME:ALPHA:LR[:INIT.npz]")
    t.add_argument("--budget-s", type=float, required=True, help="wall-clock seconds, all in")
    t.add_argument("--synth-images", type=int, default=1500)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--gap-repeats", type=int, default=6)
    t.add_argument("--small-photo-crop", default="0.35,1.0")
    t.add_argument("--mosaic", type=float, default=0.0, help="see skuaudit train --mosaic")
    t.add_argument("--head-depth", type=int, default=4)
    t.add_argument("--max-boxes", type=int, default=300)
    t.add_argument("--val-batches", type=int, default=8)
    t.add_argument("--warmup-steps", type=int, default=300)
    t.add_argument("--eval-every-s", type=float, default=60.0)
    t.add_argument(
        "--reserve-s",
        type=float,
        default=20.0,
        help="seconds kept for the last validation and writes (more when no validation ran yet: "
        "its first call compiles)",
    )
    t.add_argument("--workers", type=int, default=None)
    t.add_argument("--max-steps", type=int, default=None, help="stop early (smoke tests)")
    t.set_defaults(run=train)

    f = sub.add_parser("finish", help="model folder from a weights file (TensorFlow)")
    f.add_argument("--weights", type=Path, required=True)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--synth", type=Path, default=None, help="synthetic set, for the card's AP")
    f.add_argument("--gaps", type=Path, default=None, help="shelf-gaps, for the card's AP")
    f.set_defaults(run=finish)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())

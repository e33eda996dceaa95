"""Train the shipped default model in ``models/default`` (stage 1; stage 2 is optional).

Data (none of it is stored in the repository):

- synthetic shelves rendered by ``skuaudit.datasets.synth.generate_dataset`` into ``--work``;
- the real empty-gap boxes of ``../shared/data/shelf-gaps`` (YOLO, class 0 = empty -> ``gap``).
  Those photos also show unlabelled products, so they list only ``gap`` as annotated and the
  product-class loss is masked on them;
- stage 2 (``--self-train-steps N``) only: the real photos of
  ``../shared/data/shelf-photos/images``, pseudo-labelled by the stage-1 model (products scoring
  at least ``--pseudo-threshold`` after NMS and the nested-box rules; with
  ``--pseudo-ignore-threshold T`` the products scoring from T up to it become ignore boxes,
  learned neither as products nor as background; gap loss masked). The photos named in
  ``row_counts.json`` are **excluded**: their counted rows are the yardstick of real-photo
  counting.

Every set is split 80/20 by image (sorted names, seed 0).

1. from scratch on synthetic shelves + shelf-gaps (``--steps``), or fine-tuned from
   ``--init-model``, into ``--out`` (into ``--work/stage1`` when stage 2 follows);
2. self-training: fine-tune from stage 1 on the same data (gap photos x ``--gap-repeats``) plus
   the pseudo-labelled photos (``--self-train-steps``, ``--self-train-repeats`` copies of each
   photo per epoch), into ``--out``.
   1,200 steps of it (about 20 minutes on CPU) did not lower the row-count error of the first
   default model, so the shipped model has none.

Each run ends by setting the photo-path settings of the model folder (``calibrate_thresholds``:
per-class thresholds, the whole-image gap pass and, with ``--tile-above-px``, ``--flip-classes``
and ``--multiscale-classes``, the tiling rule and the classes fused with the mirrored view and
with more tile sizes).

The shipped model is a chain of fine-tunings (``models/default/MODEL_CARD.md`` lists them; ~196
minutes of CPU in all)::

    W="--work /tmp/skuaudit_run2 --photo-textures --synth-images 1500 --gap-repeats 3 --lr 1e-3 --eval-every 500"
    git worktree add /tmp/first 9cc29bf; A=/tmp/first/models/default   # the first default model
    python scripts/train_default_model.py $W --init-model $A --anchor-size-factor 2 \
        --anchor-ratios 0.33,0.6,1.0,1.8 --steps 9000 --out /tmp/B    # stopped after step 2500
    python scripts/train_default_model.py $W --init-model /tmp/B --steps 8000 --out /tmp/C  # stopped after 4500
    python scripts/train_default_model.py $W --init-model /tmp/C --small-photo-crop 0.45,1.0 \
        --steps 7000 --out /tmp/D
    python scripts/train_default_model.py $W --gap-repeats 6 --lr 7e-4 --eval-every 1000 \
        --init-model /tmp/D --head-depth 4 --small-photo-crop 0.35,1.0 --steps 12000 \
        --tile-above-px 400 --out /tmp/E
    python scripts/train_default_model.py $W --gap-repeats 6 --lr 7e-4 --eval-every 1000 \
        --init-model /tmp/E --head-depth 4 --separate-towers --small-photo-crop 0.35,1.0 \
        --steps 9000 --tile-above-px 400 --flip-classes gap --out models/default
    python scripts/train_default_model.py --calibrate-only --out models/default \
        --multiscale-classes gap --extra-tile-fractions 0.5,0.75   # the extra gap tile sizes

Other uses::

    python scripts/train_default_model.py --resume          # continue a run cut short
    python scripts/train_default_model.py --calibrate-only --out models/default   # settings only
    python scripts/train_default_model.py --stage1 models/default --self-train-steps 1200
    python scripts/train_default_model.py $W --gap-repeats 6 --lr 7e-4 --eval-every 1000 \
        --init-model models/default --alpha 0.75 --head-depth 4 --separate-towers \
        --small-photo-crop 0.35,1.0 --steps 9000 --tile-above-px 400 --flip-classes gap \
        --multiscale-classes gap --extra-tile-fractions 0.5,0.75 --out /tmp/H
        # the wider stage H of the model card (69 min; not shipped)
    python scripts/train_default_model.py $W --gap-repeats 6 --lr 5e-4 --eval-every 1000 \
        --init-model models/default --head-depth 4 --separate-towers --small-photo-crop 0.35,1.0 \
        --steps 7000 --tile-above-px 400 --flip-classes gap --multiscale-classes gap \
        --extra-tile-fractions 0.5,0.75 --mosaic 0.5 --out /tmp/M
        # the mosaic stage of the model card (32 min; not shipped; without --mosaic: its control)
    python scripts/train_default_model.py $W --gap-repeats 6 --lr 5e-4 --eval-every 1000 \
        --init-model models/default --real-crops 0.7 --head-depth 4 --separate-towers \
        --small-photo-crop 0.35,1.0 --steps 7000 --tile-above-px 400 --flip-classes gap \
        --multiscale-classes gap --extra-tile-fractions 0.5,0.75 --out /tmp/C
        # renders with real product crops (34 min; not shipped)
    python scripts/train_default_model.py $W --gap-repeats 6 --eval-every 1000 \
        --stage1 models/default --self-train-steps 6000 --self-train-repeats 15 \
        --pseudo-threshold 0.5 --pseudo-ignore-threshold 0.2 --head-depth 4 --separate-towers \
        --small-photo-crop 0.35,1.0 --tile-above-px 400 --flip-classes gap \
        --multiscale-classes gap --extra-tile-fractions 0.5,0.75 --out /tmp/S
        # self-training with ignore boxes (28 min; not shipped)

The model folder of each stage is rewritten at every evaluation that improves the validation loss,
so an interrupted run still leaves a usable model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from skuaudit.datasets.readers import read_dataset  # noqa: E402
from skuaudit.datasets.synth import generate_dataset  # noqa: E402
from skuaudit.detections import IGNORE_CLASS  # noqa: E402
from skuaudit.training.cli import parse_fraction_range  # noqa: E402
from skuaudit.training.train import (  # noqa: E402
    TrainConfig,
    harvest_product_crops,
    pseudo_label_photos,
    train_detector,
)

SHARED = REPO_ROOT.parent / "shared" / "data"


def class_list(text: str) -> list[str]:
    """``--flip-classes`` / ``--multiscale-classes``: ``"gap"`` -> ``["gap"]``, ``""`` -> ``[]``."""
    return [c for c in text.split(",") if c]


def report(event: dict) -> None:
    print(
        json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in event.items()}),
        flush=True,
    )


def self_training_photos(photos_dir: Path, exclude_json: Path) -> list[Path]:
    """The photos of ``photos_dir/images`` minus those named by ``exclude_json`` (``image`` keys)."""
    excluded = {row["image"] for row in json.loads(exclude_json.read_text())}
    return [p for p in sorted((photos_dir / "images").glob("*.jpg")) if p.name not in excluded]


def calibrate_thresholds(
    model_dir: Path,
    work: Path,
    gaps,
    n: int = 30,
    tile_above_px: int | None = None,
    flip_classes: list[str] | None = None,
    multiscale: tuple[list[str], list[float]] | None = None,
) -> dict:
    """Set the photo-path settings in ``model_dir/config.json``: ``whole_image_classes`` ``gap``,
    ``tile_above_px``, ``flip_classes`` and ``multiscale`` (``(multiscale_classes,
    extra_tile_fractions)``) when given (photos larger than that are tiled, and also run mirrored
    and at more tile sizes for those classes), and
    ``class_score_thresholds``, each at the score where the detected count equals the true count
    (``count_matching_threshold``, with the photo path's tiling rule):

    - ``product``: on ``n`` held-out generated shelves (render seeds 700000+, never used in
      training; tiled like a photo);
    - ``gap``: on the *training* split of the shelf-gaps photos ``gaps`` (the validation split
      stays for AP; the photos label every gap).

    The counted real rows of ``row_counts.json`` are not used: they stay a yardstick."""
    import cv2

    from skuaudit.datasets.base import Dataset
    from skuaudit.datasets.synth import render_shelf
    from skuaudit.detector import Detector
    from skuaudit.training.train import count_matching_threshold, split_by_image

    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    # Gaps wider than a tile, and whole photos squashed to the input as the shelf-gaps data shows
    # them: the photo path adds one whole-image pass for gaps (gap AP50 0.628 -> 0.666 on the
    # shelf-gaps validation photos resized to 1200x1600; 0.781 -> 0.753 on generated shelves).
    config["detector"]["whole_image_classes"] = ["gap"]
    if tile_above_px is not None:
        config["detector"]["tile_above_px"] = tile_above_px
    if flip_classes is not None:
        config["detector"]["flip_classes"] = list(flip_classes)
    if multiscale is not None:
        config["detector"]["multiscale_classes"] = list(multiscale[0])
        config["detector"]["extra_tile_fractions"] = list(multiscale[1])
    mirrored = set(config["detector"].get("flip_classes", []))
    config_path.write_text(json.dumps(config, indent=2) + "\n")

    folder = work / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        shelf = render_shelf(seed=700_000 + i)
        path = folder / f"shelf_{i:03d}.jpg"
        cv2.imwrite(str(path), shelf.image_bgr)
        images.append(shelf.to_labeled_image(path))
    detector = Detector.load(model_dir)
    gaps_train, _ = split_by_image(Dataset(gaps.classes, gaps.images), 0.2, seed=0)
    tiled = [max(im.width, im.height) > config["detector"]["tile_above_px"] for im in gaps_train]
    tiling = "tiled" if all(tiled) else "one pass" if not any(tiled) else "tiled when large"
    if "gap" in mirrored and any(tiled):
        tiling += ", with the mirrored view"
    detector_config = config["detector"]
    if "gap" in detector_config.get("multiscale_classes", []) and any(tiled):
        scales = detector_config.get("extra_tile_fractions", [])
        tiling += (
            ", with tiles of " + " / ".join(f"{s:g}" for s in scales) + " x the longer side too"
        )
    results = {
        "product": (
            count_matching_threshold(detector, images, "product"),
            f"{n} generated shelves, render seeds 700000-{700000 + n - 1}, tiled"
            + (", with the mirrored view" if "product" in mirrored else ""),
        ),
        "gap": (
            count_matching_threshold(detector, gaps_train, "gap"),
            f"the {len(gaps_train)} shelf-gaps training photos (split seed 0), {tiling}",
        ),
    }
    config["detector"]["class_score_thresholds"] = {
        name: round(result["threshold"], 3) for name, (result, _) in results.items()
    }
    config["training"].pop("product_threshold_calibration", None)
    config["training"]["threshold_calibration"] = {
        name: {
            "images": images_text,
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()},
        }
        for name, (result, images_text) in results.items()
    }
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    for name, (result, _) in results.items():
        report({"event": "calibrated", "class": name, **result})
    return {name: result for name, (result, _) in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gaps", type=Path, default=SHARED / "shelf-gaps")
    parser.add_argument("--photos", type=Path, default=SHARED / "shelf-photos")
    parser.add_argument(
        "--exclude",
        type=Path,
        default=None,
        help="JSON list of {image: ...} kept out of self-training (default: PHOTOS/row_counts.json)",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/skuaudit_default_model"))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "default")
    parser.add_argument("--synth-images", type=int, default=600)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of stage 1")
    parser.add_argument(
        "--alpha",
        type=float,
        default=0.35,
        help="MobileNetV2 width multiplier (wider than --init-model's: its channels are kept and "
        "the new ones start without effect on them)",
    )
    parser.add_argument(
        "--head-depth",
        type=int,
        default=2,
        help="separable convolutions of the box/class head (deeper than --init-model's: the new "
        "ones start as the identity)",
    )
    parser.add_argument(
        "--separate-towers",
        action="store_true",
        help="separate box and class towers (a shared --init-model tower is copied into both)",
    )
    parser.add_argument(
        "--init-model",
        type=Path,
        default=None,
        help="start stage 1 from this model folder's weights (fine-tuning) instead of from scratch",
    )
    parser.add_argument(
        "--gap-repeats", type=int, default=1, help="copies of each shelf-gaps photo per epoch"
    )
    parser.add_argument(
        "--loss-normalisation",
        choices=("image", "batch"),
        default="image",
        help="'batch' reproduces the first default model (see detector.model.detection_loss)",
    )
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument(
        "--calibrate-only",
        action="store_true",
        help="only set the photo-path settings (per-class thresholds, whole-image gap pass, "
        "--tile-above-px) of the existing model folder --out",
    )
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stage1", type=Path, default=None, help="existing stage-1 model folder")
    parser.add_argument("--pseudo-threshold", type=float, default=0.6)
    parser.add_argument(
        "--pseudo-ignore-threshold",
        type=float,
        default=None,
        help="products scoring from this up to --pseudo-threshold become ignore boxes "
        "(learned neither as products nor as background; default: none)",
    )
    parser.add_argument("--self-train-steps", type=int, default=0, help="0: no stage 2")
    parser.add_argument("--self-train-lr", type=float, default=5e-4)
    parser.add_argument("--self-train-repeats", type=int, default=6)
    parser.add_argument(
        "--anchor-ratios",
        default=None,
        help="comma-separated anchor width/height ratios (default: DetectorConfig's)",
    )
    parser.add_argument(
        "--anchor-size-factor",
        type=float,
        default=None,
        help="anchor side in strides at scale 1 (default: DetectorConfig's)",
    )
    parser.add_argument(
        "--small-photo-crop",
        default="1.0,1.0",
        help="LOW,HIGH: zoom-in crops of the 416 px shelf-gaps photos as a fraction of their sides "
        "(1.0,1.0: whole photos)",
    )
    parser.add_argument(
        "--mosaic",
        type=float,
        default=0.0,
        help="probability that a shelf-gaps training photo becomes a 2x2 mosaic of it and three "
        "others (default 0)",
    )
    parser.add_argument(
        "--tile-above-px",
        type=int,
        default=None,
        help="photo path: tile photos whose longer side exceeds this (default: the model's "
        "config.json value)",
    )
    parser.add_argument(
        "--flip-classes",
        type=class_list,
        default=None,
        help="photo path: classes whose boxes fuse tiled photos with their mirror image, e.g. "
        "gap; '' for none (default: the model's config.json value)",
    )
    parser.add_argument(
        "--multiscale-classes",
        type=class_list,
        default=None,
        help="photo path: classes whose boxes fuse more tile sizes (--extra-tile-fractions), e.g. "
        "gap; '' for none (default: the model's config.json value)",
    )
    parser.add_argument(
        "--extra-tile-fractions",
        type=lambda text: [float(s) for s in text.split(",") if s],
        default=[],
        help="with --multiscale-classes: sides of the extra tile sets as fractions of the "
        "photo's longer side, e.g. 0.5,0.75",
    )
    parser.add_argument(
        "--photo-textures",
        action="store_true",
        help="render the synthetic shelves (seed 1, into WORK/synth_tex) with product artwork cut "
        "from the shelf-photos not named in row_counts.json",
    )
    parser.add_argument(
        "--real-crops",
        type=float,
        default=None,
        metavar="SCORE",
        help="with --init-model: cut its product boxes scoring at least SCORE out of the "
        "shelf-photos not named in row_counts.json (into WORK/crops) and render the synthetic "
        "shelves (into WORK/synth_crops) with half of their runs of facings made of those real "
        "products (both folders are reused when present)",
    )
    args = parser.parse_args()
    if args.real_crops is not None and args.init_model is None:
        parser.error("--real-crops needs --init-model (the model that finds the products)")
    ratios = tuple(float(r) for r in args.anchor_ratios.split(",")) if args.anchor_ratios else None
    multiscale = None
    if args.multiscale_classes is not None:
        multiscale = (args.multiscale_classes, args.extra_tile_fractions)
    if args.calibrate_only:
        calibrate_thresholds(
            args.out,
            args.work,
            read_dataset(args.gaps, "yolo", class_map={"0": "gap"}),
            tile_above_px=args.tile_above_px,
            flip_classes=args.flip_classes,
            multiscale=multiscale,
        )
        return 0

    exclude = args.exclude or args.photos / "row_counts.json"
    synth_seed, synth_dir, textures = 0, args.work / "synth", None
    if args.photo_textures:
        synth_seed, synth_dir = 1, args.work / "synth_tex"
        textures = args.work / "textures"
        textures.mkdir(parents=True, exist_ok=True)
        for photo in self_training_photos(args.photos, exclude):
            link = textures / photo.name
            if not link.exists():
                link.symlink_to(photo.resolve())
    crop_dir, n_crops = None, 0
    if args.real_crops is not None:
        from skuaudit.detector import Detector

        synth_dir, crop_dir = args.work / "synth_crops", args.work / "crops"
        if not crop_dir.is_dir():
            harvest_product_crops(
                Detector.load(args.init_model),
                self_training_photos(args.photos, exclude),
                crop_dir,
                score_threshold=args.real_crops,
            )
        n_crops = len(list(crop_dir.glob("*.png")))
    if not (synth_dir / "data.yaml").is_file():
        generate_dataset(
            synth_dir,
            args.synth_images,
            seed=synth_seed,
            formats=("yolo",),
            texture_dir=textures,
            workers=2,
            crop_dir=crop_dir,
        )
    synth = read_dataset(synth_dir, "yolo")
    gaps = read_dataset(args.gaps, "yolo", class_map={"0": "gap"})
    artwork = (
        f", product artwork from the {len(list(textures.iterdir()))} shelf-photos not in "
        f"{exclude.name}"
        if textures
        else ""
    )
    if crop_dir is not None:
        artwork += (
            f"; half of the runs of facings repeat one of {n_crops} real products cut from those "
            f"photos (the init model's product boxes at score >= {args.real_crops})"
        )
    description = [
        f"synthetic shelves: {len(synth)} renders 1024x768 (generate_dataset seed {synth_seed}"
        f"{artwork}), {synth.num_boxes} product/gap boxes, random crops",
        f"shelf-gaps (SKU-110K subset annotated by Munimul/ESD): {len(gaps)} photos 416x416, "
        f"{gaps.num_boxes} gap boxes, product loss masked, each photo x{args.gap_repeats} per epoch",
    ]
    common = dict(
        batch_size=8,
        image_size=320,
        alpha=args.alpha,
        head_depth=args.head_depth,
        separate_towers=args.separate_towers,
        val_fraction=0.2,
        seed=0,
        tile=True,
        eval_every=args.eval_every,
        patience=8,
        val_batches=20,
        resume=args.resume,
        eval_max_images=100,
        loss_normalisation=args.loss_normalisation,
        anchor_aspect_ratios=ratios,
        anchor_size_factor=args.anchor_size_factor,
        small_photo_crop=parse_fraction_range(args.small_photo_crop),
        mosaic=args.mosaic,
    )
    stage1 = args.stage1
    if stage1 is None:
        stage1 = args.work / "stage1" if args.self_train_steps else args.out
        config = TrainConfig(
            out_dir=stage1,
            steps=args.steps,
            learning_rate=args.lr,
            checkpoint_dir=args.work / "checkpoints",
            data_description=description,
            init_model_dir=args.init_model,
            dataset_repeats=[1, args.gap_repeats],
            **common,
        )
        train_detector(config, [synth, gaps], progress_callback=report)
    if not args.self_train_steps:
        calibrate_thresholds(
            stage1,
            args.work,
            gaps,
            tile_above_px=args.tile_above_px,
            flip_classes=args.flip_classes,
            multiscale=multiscale,
        )
        return 0

    from skuaudit.detector import Detector

    photos = self_training_photos(args.photos, exclude)
    pseudo = pseudo_label_photos(
        Detector.load(stage1),
        photos,
        score_threshold=args.pseudo_threshold,
        ignore_threshold=args.pseudo_ignore_threshold,
    )
    n_ignore = sum(name == IGNORE_CLASS for im in pseudo.images for name in im.class_names)
    ignored = (
        f", {n_ignore} ignore boxes (score {args.pseudo_ignore_threshold} to "
        f"{args.pseudo_threshold}: learned neither as products nor as background)"
        if args.pseudo_ignore_threshold is not None
        else ""
    )
    config = TrainConfig(
        out_dir=args.out,
        steps=args.self_train_steps,
        learning_rate=args.self_train_lr,
        checkpoint_dir=args.work / "checkpoints_self_train",
        init_model_dir=stage1,
        dataset_repeats=[1, args.gap_repeats, args.self_train_repeats],
        data_description=[
            *description,
            f"shelf-photos (SKU-110K): {len(pseudo)} real photos (the {exclude.name} photos "
            f"excluded), {pseudo.num_boxes - n_ignore} product pseudo-labels of the stage-1 model "
            f"at score >= {args.pseudo_threshold}{ignored}, gap loss masked, each photo "
            f"x{args.self_train_repeats} per epoch",
        ],
        **common,
    )
    train_detector(config, [synth, gaps, pseudo], progress_callback=report)
    calibrate_thresholds(
        args.out,
        args.work,
        gaps,
        tile_above_px=args.tile_above_px,
        flip_classes=args.flip_classes,
        multiscale=multiscale,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

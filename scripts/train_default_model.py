"""Train the shipped detector ``models/default`` on real shelf photos labelled by a teacher.

Data (none of it is stored in the repository; ``../shared/data/README.md`` describes it):

- ``shelf-photos``: 95 real shelf photos (1600 px), product boxes of the SKU-110K-trained teacher
  (``--labels``, default ``teacher-tiled``: the whole photo plus a 2x2 grid of tiles). The photos
  of ``row_counts.json`` are left out: their hand-counted rows stay a fair yardstick.
  No gap labels: the gap loss is masked there.
- ``shelf-gaps``: 500 real shelf photos (416x416), the human gap boxes of ``labels/`` and the
  teacher's product boxes, merged: both classes are labelled.

Teacher boxes scoring at least ``--min-score`` are products; those from ``--ignore-score`` up to
it are ignore regions (neither product nor background); lower ones are dropped. Each set is split
80/20 by photo (sorted names, seed 0); the validation photos are never trained on.

The run fine-tunes ``--init-model`` (optionally grown: a wider ``--alpha``) and ends by setting
the photo path of the model folder (``skuaudit.training.calibration``): the tiling rule, the
mirrored view, the extra gap views and the per-class thresholds, the product one where the
detected count equals the teacher's count on the held-out shelf photos, the gap one where it
equals the human count on the shelf-gaps training photos, and the one-pass product threshold
(video frames) where one pass counts what the photo path counts on 640x480 frames of the training
shelf photos. ``models/default/MODEL_CARD.md`` lists the runs that made the shipped model;
``--resume`` continues a run cut short (the model folder is rewritten at every evaluation that
improves the validation loss, so an interrupted run still leaves a usable model).

Usage::

    nice -n 5 .venv/bin/python scripts/train_default_model.py --out models/default \\
        --init-model models/default --steps 20000
    python scripts/train_default_model.py --calibrate-only --out models/default
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from skuaudit.datasets.base import Dataset  # noqa: E402
from skuaudit.datasets.readers import ScoreBands, merge_labels, read_dataset  # noqa: E402
from skuaudit.datasets.splits import split_by_image  # noqa: E402
from skuaudit.detections import IGNORE_CLASS  # noqa: E402
from skuaudit.detector.config import LOSS_NORMALISATIONS  # noqa: E402
from skuaudit.training.calibration import PhotoPath, calibrate_model, video_frames  # noqa: E402
from skuaudit.training.cli import parse_fraction_range  # noqa: E402
from skuaudit.training.evaluate import image_names, keep_images  # noqa: E402
from skuaudit.training.train import TrainConfig, train_detector  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "data"
# The photo path of the shipped model: tiles above 400 px and their mirrored view (products and
# gaps); products also from smaller tiles (a third of the photo); gaps also from the whole photo
# and tiles of half and three quarters of the photo; products inside a counted gap dropped
# (model card: the figures of each).
PHOTO_PATH = PhotoPath(
    tile_above_px=400,
    whole_image_classes=("gap",),
    flip_classes=("product", "gap"),
    multiscale_classes=("gap",),
    extra_tile_fractions=(0.5, 0.75),
    class_tile_fractions={"product": (0.33,)},
    empty_classes=("gap",),
)
FUSION_MIN_SCORE = 0.15  # the views' boxes fused from this score up (model card: why 0.15)


FRAMES_PER_PHOTO = 2  # one-pass calibration frames per training photo


def report(event: dict) -> None:
    print(
        json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in event.items()}),
        flush=True,
    )


def read_real_data(args) -> tuple[Dataset, Dataset]:
    """``(shelf photos with teacher products, shelf-gaps photos with gaps and products)``."""
    bands = ScoreBands(args.min_score, args.ignore_score)
    products = {"0": "product"}
    photos = read_dataset(
        args.photos, "yolo", class_map=products, labels=args.labels, score_bands=bands
    )
    excluded = image_names(args.exclude or args.photos / "row_counts.json")
    photos = keep_images(photos, lambda name: name not in excluded)
    gaps = merge_labels(
        [
            read_dataset(args.gaps, "yolo", class_map={"0": "gap"}),
            read_dataset(
                args.gaps, "yolo", class_map=products, labels=args.labels, score_bands=bands
            ),
        ]
    )
    return photos, gaps


def describe(photos: Dataset, gaps: Dataset, args) -> list[str]:
    def counts(ds: Dataset) -> str:
        names = [n for im in ds.images for n in im.class_names]
        parts = [f"{names.count(c)} {c}" for c in ("product", "gap") if c in ds.classes]
        return ", ".join(parts) + f", {names.count(IGNORE_CLASS)} ignore"

    teacher = (
        f"teacher boxes (`{args.labels}/`, YOLOv8n trained on SKU-110K) at score >= "
        f"{args.min_score} as products, {args.ignore_score}-{args.min_score} as ignore regions"
    )
    return [
        f"shelf-photos (SKU-110K): {len(photos)} real photos 1600 px (the row_counts.json "
        f"photos left out), {teacher}; {counts(photos)}; gap loss masked; random crops of "
        f"{args.crop_aspect} width/height; each photo x{args.photo_repeats} per epoch",
        f"shelf-gaps (SKU-110K subset, gaps by Munimul/ESD): {len(gaps)} real photos 416x416, "
        f"human gap boxes + {teacher}; {counts(gaps)}; zoom-in crops {args.small_photo_crop}; "
        f"each photo x{args.gap_repeats} per epoch",
    ]


def calibrate(
    model_dir: Path, photos: Dataset, gaps: Dataset, fusion_min_score: float = FUSION_MIN_SCORE
) -> dict:
    """Photo path and thresholds: products on the held-out shelf photos (teacher count), gaps
    on the shelf-gaps training photos (human count), and products in one pass on 640x480 frames
    of the training shelf photos (the photo path's count on the same frames)."""
    import cv2
    import numpy as np

    photos_train, photos_val = split_by_image(photos, 0.2, seed=0)
    gaps_train, _ = split_by_image(gaps, 0.2, seed=0)
    rng = np.random.default_rng(1)
    frames = [
        frame
        for im in photos_train
        for frame in video_frames(cv2.imread(str(im.path)), FRAMES_PER_PHOTO, rng)
    ]
    results = calibrate_model(
        model_dir,
        {
            "product": (
                photos_val,
                f"the {len(photos_val)} held-out shelf-photos (split seed 0), teacher boxes",
            ),
            "gap": (
                gaps_train,
                f"the {len(gaps_train)} shelf-gaps training photos (split seed 0), human boxes",
            ),
        },
        dataclasses.replace(PHOTO_PATH, fusion_min_score=fusion_min_score),
        single_pass_frames=(
            frames,
            f"{len(frames)} 640x480 frames of the {len(photos_train)} training shelf-photos",
        ),
    )
    for name, result in results.items():
        report({"event": "calibrated", "class": name, **result})
    return results


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The options of this script (``scripts/train_on_accelerator.py`` adds its own)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], add_help=add_help)
    parser.add_argument("--photos", type=Path, default=SHARED / "shelf-photos")
    parser.add_argument("--gaps", type=Path, default=SHARED / "shelf-gaps")
    parser.add_argument(
        "--exclude",
        type=Path,
        default=None,
        help="JSON list of {image: ...} left out of training (default: PHOTOS/row_counts.json)",
    )
    parser.add_argument("--labels", default="teacher-tiled", help="teacher label folder")
    parser.add_argument("--min-score", type=float, default=0.4)
    parser.add_argument("--ignore-score", type=float, default=0.1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/skuaudit_default_model"))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "default")
    parser.add_argument("--init-model", type=Path, default=REPO_ROOT / "models" / "default")
    parser.add_argument("--steps", type=int, default=24000)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--alpha", type=float, default=None, help="grow the backbone to this width")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--photo-repeats", type=int, default=6)
    parser.add_argument("--gap-repeats", type=int, default=1)
    parser.add_argument(
        "--loss-normalisation",
        default="class",
        choices=LOSS_NORMALISATIONS,
        help="class (default): each class's loss over its own boxes in a photo, so six gaps "
        "among 150 products are not drowned (image: over all its boxes)",
    )
    parser.add_argument("--crop-aspect", default="0.75,1.333", type=parse_fraction_range)
    parser.add_argument("--small-photo-crop", default="0.35,1.0", type=parse_fraction_range)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--cache-mb", type=int, default=1500, help="decoded photos kept in memory")
    parser.add_argument("--workers", type=int, default=2, help="threads loading examples")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--calibrate-only", action="store_true", help="only set the photo path of --out"
    )
    parser.add_argument(
        "--fusion-min-score",
        type=float,
        default=FUSION_MIN_SCORE,
        help="photo path: the views' boxes enter the fusion from this score up",
    )
    return parser


def train_config(args, photos: Dataset, gaps: Dataset, **overrides) -> TrainConfig:
    """The run's ``TrainConfig``: ``--init-model``'s architecture (``--alpha`` grows it)."""
    from skuaudit.training.warm_start import architecture_of

    architecture = architecture_of(args.init_model)
    if args.alpha is not None:
        architecture["alpha"] = args.alpha
    settings = dict(
        out_dir=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        val_fraction=0.2,
        seed=0,
        tile=True,
        eval_every=args.eval_every,
        patience=8,
        val_batches=20,
        checkpoint_dir=args.work / "checkpoints",
        resume=args.resume,
        eval_max_images=100,
        data_description=describe(photos, gaps, args),
        init_model_dir=args.init_model,
        dataset_repeats=[args.photo_repeats, args.gap_repeats],
        small_photo_crop=args.small_photo_crop,
        crop_aspect=args.crop_aspect,
        loss_normalisation=args.loss_normalisation,
        image_cache_mb=args.cache_mb,
        workers=args.workers,
        **architecture,
    )
    return TrainConfig(**{**settings, **overrides})


def main() -> int:
    args = build_parser().parse_args()
    photos, gaps = read_real_data(args)
    if args.calibrate_only:
        calibrate(args.out, photos, gaps, args.fusion_min_score)
        return 0
    train_detector(train_config(args, photos, gaps), [photos, gaps], progress_callback=report)
    calibrate(args.out, photos, gaps, args.fusion_min_score)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

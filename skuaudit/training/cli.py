"""``skuaudit train``: train a detector on one or more datasets and write a model folder.

Each ``--dataset`` starts a data source; the ``--format``, ``--class-map``, ``--labels``,
``--min-score`` and ``--ignore-score`` after it apply to that source (a single ``--format``
applies to all). Sources of the same folder are merged into one data set, so the human gap boxes
and a labelling model's product boxes of the same photos label both classes there::

    skuaudit train --dataset ../shared/data/shelf-gaps --format yolo --class-map 0=gap \\
                   --dataset ../shared/data/shelf-gaps --labels teacher-tiled --class-map 0=product \\
                   --min-score 0.4 --ignore-score 0.1 --init-model models/default --out models/mine
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from skuaudit.detector.config import LOSS_NORMALISATIONS
from skuaudit.training.rates import FINE_TUNE_LEARNING_RATE, SCRATCH_LEARNING_RATE
from skuaudit.training.train import TrainConfig

FORMATS = ("yolo", "voc", "coco", "sku110k", "synth")
# A `skuaudit synth` folder (generate_dataset) is read through its YOLO labels.
_READER_FORMAT = {"synth": "yolo"}


class _SourceAction(argparse.Action):
    """Collect ``--dataset`` / ``--format`` / ``--class-map`` into one dict per source."""

    def __call__(self, parser, namespace, value, option_string=None):
        sources = getattr(namespace, "sources", None) or []
        if self.dest == "dataset":
            sources.append(
                {
                    "path": Path(value),
                    "format": None,
                    "class_map": None,
                    "labels": "labels",
                    "min_score": None,
                    "ignore_score": None,
                }
            )
        elif not sources:
            parser.error(f"{option_string} must follow a --dataset")
        else:
            sources[-1][self.dest] = value
        namespace.sources = sources


def parse_fraction_range(text: str) -> tuple[float, float]:
    """``"0.45,1.0"`` -> ``(0.45, 1.0)`` for ``--small-photo-crop``."""
    parts = [p.strip() for p in text.split(",")]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--small-photo-crop {text!r} is not LOW,HIGH (e.g. 0.45,1.0)") from None
    return low, high


# Architecture of a run from scratch (TrainConfig's defaults); a fine-tuning run (--init-model)
# takes its source's.
_NEW_MODEL = {
    f.name: f.default
    for f in fields(TrainConfig)
    if f.name in ("alpha", "head_depth", "separate_towers", "image_size")
}


def architecture(args: argparse.Namespace) -> dict:
    """``TrainConfig`` architecture fields of the parsed ``args``: those given on the command
    line, the rest from ``--init-model``'s ``config.json`` (anchors included) or ``_NEW_MODEL``.

    Raises:
        ModelLoadError: ``--init-model`` is not a model folder with a readable ``config.json``.
    """
    chosen = {key: getattr(args, key) for key in _NEW_MODEL}
    if args.init_model is None:
        return {key: _NEW_MODEL[key] if value is None else value for key, value in chosen.items()}
    from skuaudit.training.warm_start import architecture_of

    fields = architecture_of(args.init_model)
    fields.update({key: value for key, value in chosen.items() if value is not None})
    return fields


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skuaudit train", description="Train the SSD MobileNetV2 detector."
    )
    p.add_argument(
        "--dataset", action=_SourceAction, required=True, help="dataset folder (repeatable)"
    )
    p.add_argument(
        "--format", action=_SourceAction, choices=FORMATS, help="format of the preceding --dataset"
    )
    p.add_argument(
        "--class-map", action=_SourceAction, help="e.g. 0=gap: map source classes to product/gap"
    )
    p.add_argument(
        "--labels",
        action=_SourceAction,
        help="YOLO: label folder of the preceding --dataset beside images/ (default labels), e.g. "
        "teacher for a labelling model's boxes",
    )
    p.add_argument(
        "--min-score",
        action=_SourceAction,
        type=float,
        help="YOLO labels with a score column: boxes scoring at least this are objects",
    )
    p.add_argument(
        "--ignore-score",
        action=_SourceAction,
        type=float,
        help="with --min-score: boxes scoring from this up to it are ignore regions (learned "
        "neither as objects nor as background)",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="model folder to write, e.g. models/mine"
    )
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--init-model",
        type=Path,
        default=None,
        help="fine-tune: start from this model folder's weights (e.g. models/default); the "
        "architecture options below default to its own",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=None,
        help=f"MobileNetV2 width multiplier (default {_NEW_MODEL['alpha']}; with --init-model "
        "its alpha, or a larger one: a wider backbone that starts from its outputs)",
    )
    p.add_argument(
        "--head-depth",
        type=int,
        default=None,
        help="separable 3x3 convolutions of the box/class head (of each tower with "
        f"--separate-towers; default {_NEW_MODEL['head_depth']}; with --init-model its depth, or "
        "more: the new ones start as the identity)",
    )
    p.add_argument(
        "--separate-towers",
        action="store_true",
        default=None,
        help="one tower of convolutions for the boxes and one for the classes (RetinaNet) "
        "instead of a shared one; fine-tuning from a shared tower starts both as copies of it",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help=f"square model input, a multiple of 32 (default {_NEW_MODEL['image_size']}; with "
        "--init-model its size)",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help=f"peak learning rate (default {SCRATCH_LEARNING_RATE:g}; with --init-model "
        f"{FINE_TUNE_LEARNING_RATE:g})",
    )
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument(
        "--no-tile",
        dest="tile",
        action="store_false",
        help="train on whole images, no random crops",
    )
    p.add_argument(
        "--small-photo-crop",
        default="1.0,1.0",
        help="LOW,HIGH: zoom-in crops of photos too small to tile, as a fraction of their sides "
        "(e.g. 0.45,1.0 for 416 px gap photos; default: whole photos)",
    )
    p.add_argument(
        "--mosaic",
        type=float,
        default=0.0,
        help="probability that a training photo too small to tile becomes a 2x2 mosaic of it and "
        "three other such photos of its dataset (e.g. 0.5 for the 416 px gap photos; default 0)",
    )
    p.add_argument(
        "--crop-aspect",
        default="1.0,1.0",
        help="LOW,HIGH: width/height range of the random crops of large photos, stretched to the "
        "square input as a video frame is (e.g. 0.75,1.333; default: square)",
    )
    p.add_argument(
        "--image-cache-mb",
        type=int,
        default=1024,
        help="decoded training photos kept in memory (default 1024; 0: decode every draw)",
    )
    p.add_argument(
        "--loss-normalisation",
        choices=LOSS_NORMALISATIONS,
        default="image",
        help="image: each photo's loss over its own boxes (default); class: each class over its "
        "own boxes in the photo, for a class with few boxes among many of another (gaps among "
        "products); batch: over the batch's boxes",
    )
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument(
        "--patience", type=int, default=4, help="evaluations without improvement before stopping"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", type=Path, default=None, help="default: OUT/checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable annotation entries instead of failing",
    )
    return p


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    sources = args.sources
    formats = {s["format"] for s in sources if s["format"]}
    if len(formats) == 1:
        for s in sources:
            s["format"] = s["format"] or next(iter(formats))
    missing = [str(s["path"]) for s in sources if not s["format"]]
    if missing:
        print(f"skuaudit train: --format needed for {', '.join(missing)}", file=sys.stderr)
        return 2
    from skuaudit.datasets.base import DatasetError
    from skuaudit.detector import ModelLoadError
    from skuaudit.training.train import train_detector

    try:
        datasets = read_sources(sources, args.skip_bad)
        config = TrainConfig(
            out_dir=args.out,
            steps=args.steps,
            batch_size=args.batch_size,
            init_model_dir=args.init_model,
            **architecture(args),
            learning_rate=(
                args.learning_rate
                if args.learning_rate is not None
                else FINE_TUNE_LEARNING_RATE
                if args.init_model
                else SCRATCH_LEARNING_RATE
            ),
            val_fraction=args.val_fraction,
            seed=args.seed,
            tile=args.tile,
            small_photo_crop=parse_fraction_range(args.small_photo_crop),
            crop_aspect=parse_fraction_range(args.crop_aspect),
            image_cache_mb=args.image_cache_mb,
            mosaic=args.mosaic,
            loss_normalisation=args.loss_normalisation,
            eval_every=args.eval_every,
            patience=args.patience,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            data_description=[
                f"{d.meta['words']} ({len(d)} images, {d.num_boxes} boxes)" for d in datasets
            ],
        )
    except (DatasetError, ModelLoadError, ValueError, FileNotFoundError) as exc:
        print(f"skuaudit train: {exc}", file=sys.stderr)
        return 2

    def report(event: dict) -> None:
        parts = [f"{event['event']} {event['step']}/{event['total_steps']}"]
        for key in ("loss", "val_loss", "images_per_s", "eta_s"):
            if event.get(key) is not None:
                parts.append(
                    f"{key} {event[key]:.3f}" if key != "eta_s" else f"eta {event[key]:.0f}s"
                )
        print("  ".join(parts), file=sys.stderr, flush=True)

    try:
        out = train_detector(config, datasets, progress_callback=report)
    except (DatasetError, ModelLoadError, ValueError) as exc:  # data, or a model that cannot fit
        print(f"skuaudit train: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


def _source_words(source: dict) -> str:
    words = f"{source['path']} ({source['format']}"
    if source["labels"] != "labels":
        words += f", labels {source['labels']}"
    if source["class_map"]:
        words += f", class map {source['class_map']}"
    if source["min_score"] is not None:
        words += f", score >= {source['min_score']}"
        if source["ignore_score"] is not None:
            words += f", ignore from {source['ignore_score']}"
    return words + ")"


def read_sources(sources: list[dict], skip_bad: bool = False) -> list:
    """One ``Dataset`` per data folder: the ``--dataset`` sources read, those of one folder
    merged (``merge_labels``); each carries its description in ``meta["words"]``.

    Raises:
        DatasetError: a source that cannot be read. ValueError: bad score settings.
    """
    from skuaudit.datasets.readers import (
        ScoreBands,
        merge_labels,
        parse_class_map,
        read_dataset,
    )

    groups: dict[Path, list] = {}
    for source in sources:
        if source["ignore_score"] is not None and source["min_score"] is None:
            raise ValueError(f"{source['path']}: --ignore-score needs --min-score")
        bands = None
        if source["min_score"] is not None:
            bands = ScoreBands(source["min_score"], source["ignore_score"])
        dataset = read_dataset(
            source["path"],
            _READER_FORMAT.get(source["format"], source["format"]),
            skip_bad=skip_bad,
            class_map=parse_class_map(source["class_map"]),
            labels=source["labels"],
            score_bands=bands,
        )
        groups.setdefault(Path(source["path"]).resolve(), []).append((source, dataset))
    datasets = []
    for members in groups.values():
        dataset = members[0][1] if len(members) == 1 else merge_labels([d for _, d in members])
        dataset.meta["words"] = " + ".join(_source_words(s) for s, _ in members)
        datasets.append(dataset)
    return datasets

"""Reproduce the shipped default model in ``models/default``.

Data (none of it is stored in the repository):

- synthetic shelves rendered by ``skuaudit.datasets.synth.generate_dataset`` into ``--work``;
- the real empty-gap boxes of ``../shared/data/shelf-gaps`` (YOLO, class 0 = empty -> ``gap``).
  Those photos also show unlabelled products, so they list only ``gap`` as annotated and the
  product-class loss is masked on them. Both sets are split 80/20 by image (sorted names, seed 0).

Usage (CPU, about an hour)::

    nice -n 5 python scripts/train_default_model.py --steps 3000
    python scripts/train_default_model.py --resume          # continue a run cut short

The model folder is rewritten at every evaluation that improves the validation loss, so an
interrupted run still leaves a usable model.
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
from skuaudit.training.train import TrainConfig, train_detector  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--gaps", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "shelf-gaps"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/skuaudit_default_model"))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "default")
    parser.add_argument("--synth-images", type=int, default=800)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    synth_dir = args.work / "synth"
    if not (synth_dir / "data.yaml").is_file():
        generate_dataset(synth_dir, args.synth_images, seed=0, formats=("yolo",))
    synth = read_dataset(synth_dir, "yolo")
    gaps = read_dataset(args.gaps, "yolo", class_map={"0": "gap"})
    config = TrainConfig(
        out_dir=args.out,
        steps=args.steps,
        batch_size=8,
        image_size=320,
        alpha=0.35,
        learning_rate=2e-3,
        val_fraction=0.2,
        seed=0,
        tile=True,
        eval_every=args.eval_every,
        patience=8,
        val_batches=20,
        checkpoint_dir=args.work / "checkpoints",
        resume=args.resume,
        eval_max_images=100,
        data_description=[
            f"synthetic shelves: {len(synth)} renders 1024x768 (generate_dataset seed 0), "
            f"{synth.num_boxes} product/gap boxes, random crops",
            f"shelf-gaps (SKU-110K subset annotated by Munimul/ESD): {len(gaps)} photos 416x416, "
            f"{gaps.num_boxes} gap boxes, product loss masked",
        ],
    )

    def report(event: dict) -> None:
        print(
            json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in event.items()}),
            flush=True,
        )

    train_detector(config, [synth, gaps], progress_callback=report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the default model's recipe on a lent GPU machine that has JAX but no TensorFlow.

The data, the network and the training loop are those of ``scripts/train_default_model.py``
(``skuaudit.training.train.train_detector`` runs on Keras 3's JAX backend as on TensorFlow); only
the batch size, the steps and a wall-clock budget differ. Three steps; only ``train`` runs on the
GPU machine::

    # 1. here (TensorFlow): pack the teacher-labelled photos and the starting model into an
    #    ignored folder that travels (the photos re-encoded to fit the machine's 64 MiB)
    python scripts/train_on_accelerator.py pack --out .carry --init-model models/default
    # 2. there (KERAS_BACKEND=jax): train until --steps or --budget-s, writing a model folder
    #    (model.keras, config.json; no model.tflite: that needs TensorFlow)
    KERAS_BACKEND=jax python3 scripts/train_on_accelerator.py train --carry .carry \\
        --out $OUT/model --steps 30000 --batch-size 64 --lr 3e-3 --budget-s 480
    # 3. here (TensorFlow): model.tflite, the card's validation figures and the photo path
    python scripts/train_on_accelerator.py finish --model RUN/model --out /tmp/gpu_model

Nothing of ``.carry`` is committed (it is git-ignored; the photos' licences forbid it).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import train_default_model as recipe  # noqa: E402

PACKED_JPEG_QUALITY = 80


def report(event: dict) -> None:
    print(json.dumps(event, default=str), flush=True)


def pack(args) -> int:
    """Copy what ``train`` reads: both photo sets (images re-encoded, every label folder, the
    row counts) and the starting model folder's ``model.keras`` and ``config.json``."""
    import cv2

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for source, name in ((args.photos, "shelf-photos"), (args.gaps, "shelf-gaps")):
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        (target / "images").mkdir(parents=True)
        for photo in sorted((source / "images").glob("*.jpg")):
            image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
            cv2.imwrite(
                str(target / "images" / photo.name),
                image,
                [cv2.IMWRITE_JPEG_QUALITY, PACKED_JPEG_QUALITY],
            )
        for labels in ("labels", args.labels):
            if (source / labels).is_dir():
                shutil.copytree(source / labels, target / labels)
        if (source / "row_counts.json").is_file():
            shutil.copy2(source / "row_counts.json", target / "row_counts.json")
    init = out / "init-model"
    if init.exists():
        shutil.rmtree(init)
    init.mkdir()
    for name in ("model.keras", "config.json"):
        shutil.copy2(args.init_model / name, init / name)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    report({"event": "packed", "bytes": size, "out": str(out)})
    if size > 60 * 2**20:
        print(f"warning: {size / 2**20:.0f} MiB: the device machine carries 64 MiB in all")
    return 0


def train(args) -> int:
    import keras

    if keras.backend.backend() != "jax":
        print("train runs on the JAX backend: set KERAS_BACKEND=jax", file=sys.stderr)
        return 2
    started = time.monotonic()
    args.photos, args.gaps = args.carry / "shelf-photos", args.carry / "shelf-gaps"
    args.init_model = args.carry / "init-model"
    photos, gaps = recipe.read_real_data(args)
    budget = None if args.budget_s is None else args.budget_s - (time.monotonic() - started)
    config = recipe.train_config(args, photos, gaps, export_tflite=False, time_budget_s=budget)
    recipe.train_detector(config, [photos, gaps], progress_callback=report)
    return 0


def finish(args) -> int:
    """A TensorFlow model folder of a JAX run's: ``model.tflite``, the card's validation
    figures on the same validation photos, and the photo path (``train_default_model``)."""
    from skuaudit.datasets.splits import split_datasets
    from skuaudit.detector import load_raw_model, save_model_folder
    from skuaudit.detector.detector import CONFIG_FILE, read_model_config
    from skuaudit.training.evaluate import validation_metrics
    from skuaudit.training.model_card import model_card, update_card

    info = json.loads((args.model / CONFIG_FILE).read_text()).get("training", {})
    info["config"] = {**info.get("config", {}), "out_dir": str(args.out)}
    save_model_folder(
        load_raw_model(args.model),
        read_model_config(args.model),
        args.out,
        training_info=info,
        model_card=model_card(info),
    )
    photos, gaps = recipe.read_real_data(args)
    val_sets = split_datasets([photos, gaps], 0.2, seed=0)[2]
    info["metrics"] = validation_metrics(args.out, val_sets)
    update_card(args.out / CONFIG_FILE, info)
    recipe.calibrate(args.out, photos, gaps, args.fusion_min_score)
    report({"event": "finished", "out": str(args.out)})
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="copy the data the GPU machine needs into --out")
    p.add_argument("--out", type=Path, default=REPO_ROOT / ".carry")
    p.add_argument("--photos", type=Path, default=recipe.SHARED / "shelf-photos")
    p.add_argument("--gaps", type=Path, default=recipe.SHARED / "shelf-gaps")
    p.add_argument("--labels", default="teacher-tiled")
    p.add_argument("--init-model", type=Path, default=REPO_ROOT / "models" / "default")
    p.set_defaults(run=pack)

    t = sub.add_parser(
        "train",
        parents=[recipe.build_parser(add_help=False)],
        help="train on JAX (KERAS_BACKEND=jax); the options of train_default_model.py too",
    )
    t.add_argument("--carry", type=Path, default=REPO_ROOT / ".carry")
    t.add_argument("--budget-s", type=float, default=None, help="wall-clock seconds, all in")
    t.set_defaults(run=train)

    f = sub.add_parser(
        "finish",
        parents=[recipe.build_parser(add_help=False)],
        help="TensorFlow model folder of a JAX run (--model) into --out",
    )
    f.add_argument("--model", type=Path, required=True, help="the model folder train wrote")
    f.set_defaults(run=finish)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())

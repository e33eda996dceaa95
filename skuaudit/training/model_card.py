"""The model card (``MODEL_CARD.md``) and training record (``config.json["training"]``) of a
model folder written by ``train_detector``."""

from __future__ import annotations

import json
from pathlib import Path


def update_card(config_path: Path, info: dict) -> None:
    """Store ``info`` as the training record of ``config.json`` and rewrite ``MODEL_CARD.md``."""
    payload = json.loads(config_path.read_text())
    payload["training"] = info
    config_path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    (config_path.parent / "MODEL_CARD.md").write_text(model_card(info))


def model_card(info: dict) -> str:
    """The Markdown model card of a training record."""
    from skuaudit.detector.config import DetectorConfig

    cfg = info["config"]
    trainer = f"`{info['trainer']}`" if info.get("trainer") else "`skuaudit train`"
    lines = [
        f"# Model card: {Path(cfg['out_dir']).name}",
        "",
        f"SSD MobileNetV2 (alpha {cfg['alpha']}) with an FPNLite pyramid and a head of "
        f"{cfg.get('head_depth', 2)} separable convolutions"
        f"{' per tower (separate box and class towers)' if cfg.get('separate_towers') else ''}"
        f", input {cfg['image_size']}x"
        f"{cfg['image_size']}, classes `product` and `gap`. "
        + (
            f"Fine-tuned from `{cfg['init_model_dir']}` by {trainer}."
            if cfg.get("init_model_dir")
            else f"Trained from scratch by {trainer}."
        ),
        "",
        "## Data",
        *[
            f"- dataset {i}: {d}"
            for i, d in enumerate(cfg.get("data_description") or ["(not described)"])
        ],
        f"- {info['train_images']} training images, {info['val_images']} validation images "
        f"(split by image, seed {cfg['seed']}, validation fraction {cfg['val_fraction']})",
        "",
        "## Training",
        f"- steps done: {info.get('steps_done')} of {cfg['steps']}, batch {cfg['batch_size']}, "
        f"peak learning rate {cfg['learning_rate']}, crop/tile {cfg['tile']}, zoom-in crops of "
        f"photos too small to tile {list(cfg.get('small_photo_crop') or (1.0, 1.0))}"
        + (f", mosaic of them with probability {cfg['mosaic']}" if cfg.get("mosaic") else ""),
        f"- loss normalised per {cfg.get('loss_normalisation', 'batch')}; anchor width/height "
        f"ratios {list(cfg.get('anchor_aspect_ratios') or DetectorConfig().anchor_aspect_ratios)}, "
        f"side {cfg.get('anchor_size_factor') or DetectorConfig().anchor_size_factor} x stride; "
        f"dataset repeats per epoch {cfg.get('dataset_repeats') or 'all 1'}",
        f"- time: {info.get('train_seconds')} s on {info['hardware']} "
        f"({info.get('framework') or 'TensorFlow ' + str(info.get('tensorflow'))})",
        f"- last saved validation loss: {info.get('val_loss')}",
    ]
    metrics = info.get("metrics")
    if metrics:
        lines += [
            "",
            "## Validation metrics (COCO, maxDets 300; datasets numbered as under Data)",
            "",
            "| dataset | class | AP50 | AP50:95 | AR300 | images |",
            "|---|---|---|---|---|---|",
        ]
        for source, per_class in metrics.items():
            for name, m in per_class.items():
                lines.append(
                    f"| {source} | {name} | {m['AP50']:.3f} | {m['AP']:.3f} | {m['AR300']:.3f} | {m['images']} |"
                )
    lines += [
        "",
        "## Known limits",
        "- The figures above are measured on the validation photos of the training data sets;",
        "  photos unlike them (other stores, cameras, lighting) may score lower: measure on your",
        "  own with `skuaudit evaluate` before activating the model.",
        "- Boxes of objects larger than the tile overlap may be split in tiled mode.",
        "",
    ]
    return "\n".join(lines)

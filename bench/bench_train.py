"""Training throughput: skuaudit's training loop vs a bare train step, measured in one run.

- ours: ``train_detector`` on pre-rendered synthetic shelves (tiling, augmentation, target
  encoding, focal + Huber loss, progress events); images/s read from its progress events after the
  first (tracing) steps.
- baseline: the same network (``build_raw_model``) trained by a bare ``tf.function`` step on one
  cached random batch with a trivial loss: the compute ceiling without any data pipeline.

    .venv/bin/python bench/bench_train.py [--steps 40] [--batch-size 8] [--image-size 320]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2


def ours(steps: int, batch_size: int, image_size: int, folder: Path) -> float:
    from skuaudit.datasets.base import Dataset
    from skuaudit.datasets.synth import render_shelf
    from skuaudit.training.train import TrainConfig, train_detector

    images = []
    for seed in range(24):
        shelf = render_shelf(seed=10_000 + seed, width=1024, height=768)
        path = folder / f"shelf_{seed}.jpg"
        cv2.imwrite(str(path), shelf.image_bgr)
        images.append(shelf.to_labeled_image(path))
    events: list[dict] = []
    config = TrainConfig(
        out_dir=folder / "model",
        steps=steps,
        batch_size=batch_size,
        image_size=image_size,
        eval_every=10**6,
        log_every=5,
        export_tflite=False,
        val_fraction=0.1,
        eval_max_images=1,
    )
    train_detector(config, [Dataset(["product", "gap"], images)], progress_callback=events.append)
    rates = [e["images_per_s"] for e in events if e.get("event") == "step" and e["step"] > 10]
    return statistics.median(rates)


def baseline(steps: int, batch_size: int, image_size: int) -> float:
    import tensorflow as tf

    from skuaudit.detector import DetectorConfig, build_raw_model

    model = build_raw_model(DetectorConfig(image_size=image_size))
    optimizer = tf.keras.optimizers.Adam(1e-3)
    batch = tf.random.uniform((batch_size, image_size, image_size, 3), 0, 255)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True)))
        optimizer.apply_gradients(
            zip(
                tape.gradient(loss, model.trainable_variables),
                model.trainable_variables,
                strict=True,
            )
        )
        return loss

    step(batch)  # trace
    start = time.perf_counter()
    for _ in range(steps):
        step(batch).numpy()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=320)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours_ips = ours(args.steps, args.batch_size, args.image_size, Path(tmp))
    base_ips = baseline(max(10, args.steps // 2), args.batch_size, args.image_size)
    print(f"training {args.image_size}px batch {args.batch_size}, alpha 0.35")
    print(f"  skuaudit train loop : {ours_ips:7.1f} images/s")
    print(f"  bare train step     : {base_ips:7.1f} images/s (no data pipeline)")
    print(f"  ratio ours/bare     : {ours_ips / base_ips:7.2f}")


if __name__ == "__main__":
    main()

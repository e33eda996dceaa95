"""What a larger detector would cost: TFLite latency and bare training speed per network size.

For each MobileNetV2 width (``alpha``), FPN width (``fpn_channels``) and head depth
(``head_depth``, default 2), with random weights:

- TFLite single pass at 320x320 (median ms, 2 threads), the runtime the app ships;
- a bare ``tf.function`` train step (batch 8, one cached batch, trivial loss): images/s, the
  compute ceiling of training without a data pipeline;

and both as ratios to the first size (alpha 0.35, 64 channels, head of 2: the size of the default
model before its head grew to 4, the second size), measured in the same run. The issue's budget
is 12 ms per frame on 2 cores.

    .venv/bin/python bench/bench_detector_sizes.py [--sizes 0.35:64,0.35:64:4,0.5:96,0.75:96]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def measure(
    alpha: float, fpn_channels: int, head_depth: int, runs: int, steps: int
) -> tuple[float, float, int]:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from bench_detector import median_ms

    from skuaudit.detector import DetectorConfig, build_raw_model
    from skuaudit.detector.detector import convert_to_tflite

    config = DetectorConfig(alpha=alpha, fpn_channels=fpn_channels, head_depth=head_depth)
    model = build_raw_model(config)
    interpreter = Interpreter(model_content=convert_to_tflite(model), num_threads=2)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    x = np.random.default_rng(0).uniform(0, 255, (1, 320, 320, 3)).astype(np.float32)

    def infer() -> None:
        interpreter.set_tensor(index, x)
        interpreter.invoke()

    tflite_ms = median_ms(infer, runs)

    batch = tf.constant(np.repeat(x, 8, axis=0))
    optimizer = tf.keras.optimizers.Adam(1e-3)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(batch, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    step()  # tracing
    start = time.perf_counter()
    for _ in range(steps):
        step()
    images_per_s = steps * 8 / (time.perf_counter() - start)
    return tflite_ms, images_per_s, model.count_params()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        default="0.35:64,0.35:64:4,0.5:64,0.5:96,0.75:96,1.0:96",
        help="comma-separated ALPHA:FPN_CHANNELS[:HEAD_DEPTH]",
    )
    parser.add_argument("--runs", type=int, default=50, help="TFLite passes per size")
    parser.add_argument("--steps", type=int, default=10, help="train steps per size")
    args = parser.parse_args()
    import streamlit_webrtc  # noqa: F401  (import order: see ../shared/STACK.md)

    rows = []
    for size in args.sizes.split(","):
        alpha, channels, depth = (size.split(":") + ["2"])[:3]
        rows.append(
            (
                float(alpha),
                int(channels),
                int(depth),
                *measure(float(alpha), int(channels), int(depth), args.runs, args.steps),
            )
        )
    base_ms, base_rate = rows[0][3], rows[0][4]
    print("\n## Detector sizes (320x320, 2 threads; ratios to the first size)")
    print(
        "| alpha | FPN channels | head convs | parameters | TFLite ms | x "
        "| train images/s (bare step) | x |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for alpha, channels, depth, ms, rate, params in rows:
        print(
            f"| {alpha} | {channels} | {depth} | {params / 1e6:.2f} M | {ms:.1f} | "
            f"{ms / base_ms:.2f} | {rate:.1f} | {rate / base_rate:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

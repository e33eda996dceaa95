"""The TFLite export of the raw network, float32 or int8 quantised on generated shelves."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from skuaudit.export.base import fresh_dir, load_model_folder, write_sidecars


def representative_images(
    image_size: int, count: int = 16, seed: int = 1234
) -> Iterator[np.ndarray]:
    """Generated shelves resized to the model input, ``(1, S, S, 3)`` float32 RGB ``0..255`` each.

    Used to calibrate int8 quantisation; seeded, so an export is reproducible.
    """
    import cv2

    from skuaudit.datasets.synth import image_seed, render_shelf

    for i in range(count):
        shelf = render_shelf(image_seed(seed, i), width=640, height=480)
        resized = cv2.resize(
            shelf.image_bgr, (image_size, image_size), interpolation=cv2.INTER_AREA
        )
        yield cv2.cvtColor(resized, cv2.COLOR_BGR2RGB).astype(np.float32)[None]


def convert_tflite(model, config, *, int8: bool = False, calibration_images: int = 16) -> bytes:
    """TFLite flatbuffer of the raw network, float32 or int8 post-training quantised.

    Args:
        model: raw Keras detector.
        config: its ``DetectorConfig``.
        int8: quantise weights and activations to int8 (inputs and outputs stay float32).
        calibration_images: generated shelves used to calibrate the activation ranges.
    """
    import tensorflow as tf

    # model.export + from_saved_model: from_concrete_functions fails on int8 (READ_VARIABLE).
    with tempfile.TemporaryDirectory(prefix="skuaudit-tflite-") as tmp:
        model.export(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: (
                [x] for x in representative_images(config.image_size, calibration_images)
            )
        return converter.convert()


def export_tflite(model_dir: str | Path, out_dir: str | Path, *, int8: bool = False) -> Path:
    """Write ``model.tflite`` (raw outputs) with its anchors, labels and config.

    Raises:
        ModelLoadError: the model folder is incomplete or corrupt.
        ExportError: ``out_dir`` not empty.
    """
    model, config = load_model_folder(Path(model_dir))
    out_dir = fresh_dir(out_dir)
    (out_dir / "model.tflite").write_bytes(convert_tflite(model, config, int8=int8))
    write_sidecars(
        config,
        out_dir,
        {
            "format": "tflite",
            "quantization": "int8" if int8 else "float32",
            "outputs": {"raw": "(1, A, 4 + C)"},
        },
    )
    return out_dir

"""The TensorFlow.js graph model export: ``detect_normalized`` converted, with hosting notes."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from skuaudit.export.base import ExportError, fresh_dir, load_model_folder, write_sidecars
from skuaudit.export.savedmodel import save_serving_module

TFJS_SHARD_BYTES = 4 * 1024 * 1024


def tfjs_io_names(model_json: dict) -> tuple[dict[str, str], dict[str, str]]:
    """``(inputs, outputs)``: signature key -> graph tensor name, read from a TF.js ``model.json``.

    The converter renames outputs (``Identity:0``, ``Identity_1:0``, ... in sorted key order); the
    signature map keeps the original keys, so runtimes look the names up rather than guess.
    """
    signature = model_json.get("signature") or {}
    inputs = {key: spec["name"] for key, spec in (signature.get("inputs") or {}).items()}
    outputs = {key: spec["name"] for key, spec in (signature.get("outputs") or {}).items()}
    return inputs, outputs


def export_tfjs(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a TF.js graph model (``model.json`` + 4 MiB shards) of ``detect_normalized``.

    ``export.json`` lists the graph's input and output tensor names by signature key.

    Raises:
        ModelLoadError: the model folder is incomplete or corrupt.
        ExportError: tensorflowjs missing, conversion failure, or ``out_dir`` not empty.
    """
    from skuaudit.compat import TensorflowjsMissingError, tensorflowjs_converter

    model, config = load_model_folder(Path(model_dir))
    try:
        with (
            tensorflowjs_converter() as tfjs,
            tempfile.TemporaryDirectory(prefix="skuaudit-tfjs-") as tmp,
        ):
            out_dir = fresh_dir(out_dir)
            save_serving_module(model, config, Path(tmp))
            try:
                tfjs.converters.convert_tf_saved_model(
                    tmp,
                    str(out_dir),
                    signature_def="detect_normalized",
                    weight_shard_size_bytes=TFJS_SHARD_BYTES,
                )
            except (ValueError, RuntimeError) as exc:
                shutil.rmtree(out_dir, ignore_errors=True)
                raise ExportError(f"TensorFlow.js conversion failed: {exc}") from exc
    except TensorflowjsMissingError as exc:
        raise ExportError(str(exc)) from exc
    inputs, outputs = tfjs_io_names(json.loads((out_dir / "model.json").read_text()))
    write_sidecars(
        config,
        out_dir,
        {"format": "tfjs", "execute": "executeAsync", "inputs": inputs, "outputs": outputs},
    )
    (out_dir / "README.txt").write_text(TFJS_HOSTING)
    return out_dir


TFJS_HOSTING = """\
This folder is a TensorFlow.js graph model of a skuaudit detector.

Host it: copy the whole folder (model.json, the group1-shard*.bin weight files and the .json
files beside them) to any static web server, e.g. an nginx or Caddy location, a bucket with
public web access, or `python3 -m http.server` for a test. Serve it over HTTPS; a page on
another origin also needs CORS (Access-Control-Allow-Origin) on these files. The shards are
4 MiB each, so browsers cache them.

Run it (TensorFlow.js 4.x, wasm or webgl backend):

    const model = await tf.loadGraphModel("https://YOUR-HOST/PATH/model.json");
    const outputs = await model.executeAsync(input);   // the graph holds NMS: executeAsync

`input` is a float32 tensor (1, S, S, 3) of RGB 0..255 resized to S = export.json's
image_size. export.json names the input and output tensors, the class names and the counting
rules (per-class score thresholds, nested boxes) that skuaudit applies after the graph.
"""

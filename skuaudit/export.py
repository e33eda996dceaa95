"""Export a detector model folder to SavedModel, TensorFlow.js (graph model) and TFLite.

Formats and what each folder holds (every one also gets ``labels.json``, ``config.json`` and
``export.json``, the last naming the inputs and outputs a runtime must use):

- ``savedmodel``: a SavedModel with two signatures.
  ``serving_default(image, score_threshold)``: ``image`` ``(H, W, 3)`` uint8 RGB of any size,
  ``score_threshold`` a float32 scalar -> ``boxes_xyxy`` ``(N, 4)`` pixels of ``image``,
  ``scores`` ``(N,)``, ``classes`` ``(N,)`` int32 (order of ``labels.json``), best score first.
  ``detect_normalized(image, score_threshold)``: ``image`` ``(1, S, S, 3)`` float32 RGB ``0..255``
  already resized to the model input -> ``boxes_yxyx_norm``, ``scores``, ``classes`` and ``raw``
  (``(1, A, 4 + C)`` box deltas and class logits).
- ``tfjs``: ``detect_normalized`` converted to a TF.js *graph* model (``model.json`` + 4 MiB weight
  shards). Decode and per-class NMS stay inside the graph: the converter accepts
  ``NonMaxSuppressionV5`` (``tf.image.non_max_suppression_with_scores``) and tfjs runs it correctly,
  whereas ``combined_non_max_suppression`` does not convert and ``non_max_suppression_padded`` gives
  wrong boxes in tfjs. Per-class NMS is one NMS over boxes shifted by ``2 * class_id``. The graph
  holds NMS, so tfjs must run it with ``executeAsync``. ``anchors.json`` is written beside it for
  runtimes that decode the ``raw`` output themselves.
- ``tflite``: the raw network (``(1, S, S, 3)`` -> ``(1, A, 4 + C)``) as ``model.tflite``, float32 or,
  with ``int8=True``, post-training int8 quantised (float input and output) calibrated on generated
  shelves. ``skuaudit.detector.decode_detections`` and ``anchors.json`` turn its output into boxes.

The exported graphs apply one ``score_threshold`` and per-class NMS only. ``Detector.detect`` also
applies the nested-box rules (``skuaudit.detector.postprocess.suppress_contained``) and the
per-class ``class_score_thresholds`` of ``config.json``; ``export.json`` carries both under
``counting`` and ``skuaudit/web/offline_component/counting.js`` applies them to the graph's output
(the offline audit page and ``tools/tfjs_infer.mjs`` use it, so offline counts match photo audits).

Example:
    >>> export_model("models/default", "tfjs", "exports/default-tfjs")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_RUNNER = REPO_ROOT / "tools" / "tfjs_infer.mjs"
FORMATS: tuple[str, ...] = ("tfjs", "tflite", "savedmodel")
TFJS_SHARD_BYTES = 4 * 1024 * 1024
EXPORT_INFO_FILE = "export.json"
ANCHORS_FILE = "anchors.json"
# boxes of class k are shifted by CLASS_OFFSET * k so a single NMS never compares two classes;
# normalised boxes lie in [0, 1], so 2 keeps every class apart.
CLASS_OFFSET = 2.0


class ExportError(RuntimeError):
    """An export that cannot be done; the message says which file or setting to fix."""


def _load(model_dir: Path):
    """``(raw Keras model, DetectorConfig)`` of a model folder, or a ``ModelLoadError``."""
    from skuaudit.detector.detector import load_raw_model, read_model_config

    config = read_model_config(model_dir)
    return load_raw_model(model_dir), config


def build_serving_module(model, config):
    """A ``tf.Module`` with the two export signatures (see the module docstring).

    Args:
        model: raw Keras detector (``(B, S, S, 3)`` -> ``(B, A, 4 + C)``).
        config: its ``DetectorConfig``.

    Returns:
        Module with ``detect_image`` (``serving_default``) and ``detect_normalized`` tf.functions.
    """
    import tensorflow as tf

    from skuaudit.detector import make_anchors
    from skuaudit.detector.boxes import yxyx_to_center

    size, num_classes = config.image_size, config.num_classes
    anchors_center = yxyx_to_center(make_anchors(config.anchor_spec))
    num_anchors = len(anchors_center)
    top_k = min(config.pre_nms_top_k * num_classes, num_anchors * num_classes)
    variance = np.asarray(config.box_variance, dtype=np.float32)

    def postprocess(raw: tf.Tensor, score_threshold: tf.Tensor) -> dict[str, tf.Tensor]:
        deltas = raw[0, :, :4] * variance
        centers = deltas[:, :2] * anchors_center[:, 2:] + anchors_center[:, :2]
        # same clip as decode_deltas: exp() of a wild output would overflow
        sizes = tf.exp(tf.clip_by_value(deltas[:, 2:], -4.0, 4.0)) * anchors_center[:, 2:]
        boxes = tf.clip_by_value(
            tf.concat([centers - sizes / 2, centers + sizes / 2], axis=1), 0.0, 1.0
        )
        scores = tf.reshape(tf.sigmoid(raw[0, :, 4:]), [-1])  # index = anchor * C + class
        top_scores, top_idx = tf.math.top_k(scores, k=top_k, sorted=True)
        anchor_idx = top_idx // num_classes
        classes = top_idx - anchor_idx * num_classes
        cand_boxes = tf.gather(boxes, anchor_idx)
        shifted = cand_boxes + CLASS_OFFSET * tf.cast(classes, tf.float32)[:, None]
        keep, kept_scores = tf.image.non_max_suppression_with_scores(
            shifted,
            top_scores,
            max_output_size=config.max_detections,
            iou_threshold=config.nms_iou,
            score_threshold=score_threshold,
        )
        return {
            "boxes_yxyx_norm": tf.gather(cand_boxes, keep),
            "scores": kept_scores,
            "classes": tf.gather(classes, keep),
        }

    class DetectorModule(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(
            input_signature=[
                tf.TensorSpec([1, size, size, 3], tf.float32, name="image"),
                tf.TensorSpec([], tf.float32, name="score_threshold"),
            ]
        )
        def detect_normalized(self, image, score_threshold):
            raw = self.model(image, training=False)
            return {**postprocess(raw, score_threshold), "raw": raw}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                tf.TensorSpec([], tf.float32, name="score_threshold"),
            ]
        )
        def detect_image(self, image, score_threshold):
            hw = tf.cast(tf.shape(image)[:2], tf.float32)
            resized = tf.image.resize(
                tf.cast(image, tf.float32)[None], [size, size], antialias=True
            )
            out = postprocess(self.model(resized, training=False), score_threshold)
            y1x1y2x2 = out["boxes_yxyx_norm"] * tf.concat([hw, hw], axis=0)
            boxes_xyxy = tf.gather(y1x1y2x2, [1, 0, 3, 2], axis=1)
            return {"boxes_xyxy": boxes_xyxy, "scores": out["scores"], "classes": out["classes"]}

    return DetectorModule()


def _write_sidecars(config, out_dir: Path, info: dict) -> None:
    from skuaudit.detector import make_anchors

    (out_dir / "labels.json").write_text(json.dumps(list(config.class_names), indent=2) + "\n")
    (out_dir / "config.json").write_text(
        json.dumps({"detector": config.to_dict()}, indent=2) + "\n"
    )
    anchors = np.round(make_anchors(config.anchor_spec).astype(np.float64), 7).tolist()
    (out_dir / ANCHORS_FILE).write_text(json.dumps({"format": "yxyx_norm", "anchors": anchors}))
    base = {
        "image_size": config.image_size,
        "class_names": list(config.class_names),
        "score_threshold": config.score_threshold,
        "nms_iou": config.nms_iou,
        "max_detections": config.max_detections,
        "box_variance": list(config.box_variance),
        # What an audit counts (per-class defaults, nested-box rules): applied after the graph by
        # skuaudit/web/offline_component/counting.js, as Detector.detect does after NMS. The
        # graph runs one pass per frame: the one-pass defaults.
        "counting": {
            "class_score_thresholds": [
                float(t) for t in config.default_thresholds(single_pass=True)
            ],
            "containment": config.containment,
            "stack_min_contained": config.stack_min_contained,
            "drop_contained": config.drop_contained,
        },
    }
    (out_dir / EXPORT_INFO_FILE).write_text(json.dumps({**base, **info}, indent=2) + "\n")


def _fresh_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir}: output folder is not empty; choose a new folder or empty it")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _save_module(model, config, saved_model_dir: Path) -> None:
    import tensorflow as tf

    module = build_serving_module(model, config)
    tf.saved_model.save(
        module,
        str(saved_model_dir),
        signatures={
            "serving_default": module.detect_image,
            "detect_normalized": module.detect_normalized,
        },
    )


def export_savedmodel(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a SavedModel with ``serving_default`` and ``detect_normalized`` signatures.

    Raises:
        ModelLoadError: the model folder is incomplete or corrupt.
        ExportError: ``out_dir`` is not empty.
    """
    model, config = _load(Path(model_dir))
    out_dir = _fresh_dir(out_dir)
    _save_module(model, config, out_dir)
    _write_sidecars(
        config,
        out_dir,
        {
            "format": "savedmodel",
            "signatures": {
                "serving_default": {
                    "inputs": ["image", "score_threshold"],
                    "outputs": ["boxes_xyxy", "scores", "classes"],
                },
                "detect_normalized": {
                    "inputs": ["image", "score_threshold"],
                    "outputs": ["boxes_yxyx_norm", "scores", "classes", "raw"],
                },
            },
        },
    )
    return out_dir


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

    model, config = _load(Path(model_dir))
    try:
        with (
            tensorflowjs_converter() as tfjs,
            tempfile.TemporaryDirectory(prefix="skuaudit-tfjs-") as tmp,
        ):
            out_dir = _fresh_dir(out_dir)
            _save_module(model, config, Path(tmp))
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
    _write_sidecars(
        config,
        out_dir,
        {"format": "tfjs", "execute": "executeAsync", "inputs": inputs, "outputs": outputs},
    )
    (out_dir / "README.txt").write_text(TFJS_HOSTING)
    return out_dir


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
    model, config = _load(Path(model_dir))
    out_dir = _fresh_dir(out_dir)
    (out_dir / "model.tflite").write_bytes(convert_tflite(model, config, int8=int8))
    _write_sidecars(
        config,
        out_dir,
        {
            "format": "tflite",
            "quantization": "int8" if int8 else "float32",
            "outputs": {"raw": "(1, A, 4 + C)"},
        },
    )
    return out_dir


def export_model(
    model_dir: str | Path,
    fmt: str,
    out_dir: str | Path,
    *,
    int8: bool = False,
    replace: bool = False,
) -> Path:
    """Export ``model_dir`` to ``fmt`` (one of ``FORMATS``) in ``out_dir``; returns ``out_dir``.

    Args:
        model_dir: the model folder.
        fmt: ``tfjs``, ``tflite`` or ``savedmodel``.
        out_dir: a new or empty folder, or with ``replace`` an earlier export to overwrite.
        int8: tflite only: int8 post-training quantisation.
        replace: write into a new sibling folder, then swap it in for ``out_dir``; a failed export
            leaves the earlier one as it was.

    Raises:
        ValueError: unknown format, or ``int8`` with a format other than tflite.
        ModelLoadError: the model folder is incomplete or corrupt.
        ExportError: the export itself failed, or ``out_dir`` is not empty (without ``replace``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    if int8 and fmt != "tflite":
        raise ValueError("--int8 applies to the tflite format only")
    if not replace:
        return _export(model_dir, fmt, Path(out_dir), int8)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        _export(model_dir, fmt, staging, int8)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, out_dir)
    return out_dir


def _export(model_dir: str | Path, fmt: str, out_dir: Path, int8: bool) -> Path:
    if fmt == "tfjs":
        return export_tfjs(model_dir, out_dir)
    if fmt == "tflite":
        return export_tflite(model_dir, out_dir, int8=int8)
    return export_savedmodel(model_dir, out_dir)


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Put the finished export ``staging`` where ``out_dir`` is, then delete the earlier export.

    Two renames on one file system: if the second fails the earlier export is moved back.
    """
    previous = None
    try:
        if out_dir.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            out_dir.replace(previous)
        staging.replace(out_dir)
    except OSError as exc:
        if previous is not None and not out_dir.exists():
            previous.replace(out_dir)
            previous = None
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(
            f"{out_dir}: the new export could not replace the earlier one: {exc}"
        ) from exc
    finally:
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)


def lab_export_dir(version_name: str, fmt: str, *, int8: bool = False) -> Path:
    """Where the Model lab keeps its export of a model version: ``<models>/exports/NAME-FMT[-int8]``.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` in the name become ``-``.
    """
    import re

    from skuaudit.config import get_settings

    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", version_name).strip("-.") or "model"
    return get_settings().models_dir / "exports" / f"{stem}-{fmt}{'-int8' if int8 else ''}"


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


def folder_size_bytes(folder: str | Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def human_size(size_bytes: int) -> str:
    """``"4.2 MB"``-style size (powers of 1024).

    Example:
        >>> human_size(5_300_000), human_size(900)
        ('5.1 MB', '900 bytes')
    """
    if size_bytes < 1024:
        return f"{size_bytes} bytes"
    size = float(size_bytes)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def zip_folder(folder: str | Path) -> bytes:
    """A zip of ``folder``: every file, under a top folder of the same name (what a person
    unzips is one folder, not loose files)."""
    import io
    import zipfile

    folder = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()


def lab_exports(version_name: str) -> list[dict]:
    """The Model lab's exports of a model version that exist: ``format`` (e.g. ``"tflite
    int8"``), ``path``, ``size_bytes``; in ``FORMATS`` order."""
    found = []
    for fmt in FORMATS:
        for int8 in (False, True) if fmt == "tflite" else (False,):
            path = lab_export_dir(version_name, fmt, int8=int8)
            if (path / EXPORT_INFO_FILE).is_file():
                found.append(
                    {
                        "format": f"{fmt}{' int8' if int8 else ''}",
                        "path": path,
                        "size_bytes": folder_size_bytes(path),
                    }
                )
    return found


def run_tfjs_in_node(
    export_dir: str | Path,
    image_rgb: np.ndarray,
    *,
    score_threshold: float | None = None,
    backend: str = "wasm",
    repeat: int = 1,
    timeout_s: float = 300,
) -> dict:
    """Run an exported TF.js model under Node (``tools/tfjs_infer.mjs``) on one model input.

    Needs ``node`` and the repository's npm packages (``npm ci``). Used by the parity test and the
    export benchmark.

    Args:
        export_dir: folder written by ``export_tfjs``.
        image_rgb: ``(S, S, 3)`` or ``(1, S, S, 3)`` RGB ``0..255`` (any numeric dtype).
        score_threshold: ``None`` uses the model's default.
        backend: ``"wasm"`` or ``"cpu"``.
        repeat: runs; the timings of each are returned.
        timeout_s: kill Node after this long.

    Returns:
        ``{"backend", "outputs": {key: np.ndarray}, "timings_ms": [...], "median_ms"}``.

    Raises:
        ExportError: Node or the npm packages are missing, or the runner failed.
    """
    import subprocess

    node = shutil.which("node")
    if node is None:
        raise ExportError("running TF.js needs Node.js (node) on PATH")
    if not (REPO_ROOT / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        raise ExportError(f"TF.js npm packages are missing: run 'npm ci' in {REPO_ROOT}")
    with tempfile.TemporaryDirectory(prefix="skuaudit-node-") as tmp:
        input_path, out_path = Path(tmp) / "image.f32", Path(tmp) / "result.json"
        np.ascontiguousarray(image_rgb, dtype="<f4").tofile(input_path)
        cmd = [
            node,
            str(NODE_RUNNER),
            "--model",
            str(export_dir),
            "--input",
            str(input_path),
            "--backend",
            backend,
            "--repeat",
            str(repeat),
            "--out",
            str(out_path),
        ]
        if score_threshold is not None:
            cmd += ["--score-threshold", repr(float(score_threshold))]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT)
        if proc.returncode != 0:
            raise ExportError(f"TF.js runner failed: {proc.stderr.strip()[-2000:]}")
        result = json.loads(out_path.read_text())
    result["outputs"] = {
        k: np.asarray(v["data"], dtype=np.float32).reshape(v["shape"])
        for k, v in result["outputs"].items()
    }
    return result


def cli_main(argv: list[str]) -> int:
    """``skuaudit export --model DIR --format tfjs|tflite|savedmodel --out DIR [--int8]``."""
    parser = argparse.ArgumentParser(
        prog="skuaudit export", description="Export a detector model folder."
    )
    parser.add_argument(
        "--model", required=True, type=Path, help="model folder (config.json, model.keras)"
    )
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, type=Path, help="new or empty output folder")
    parser.add_argument(
        "--int8", action="store_true", help="tflite: int8 post-training quantisation"
    )
    args = parser.parse_args(argv)

    from skuaudit.detector import ModelLoadError

    try:
        out = export_model(args.model, args.format, args.out, int8=args.int8)
    except (ModelLoadError, ExportError, ValueError, OSError) as exc:
        print(f"skuaudit export: {exc}", file=sys.stderr)
        return 2
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    print(
        f"exported {args.model} as {args.format}{' int8' if args.int8 else ''} to {out} ({size_mb:.1f} MB)"
    )
    return 0

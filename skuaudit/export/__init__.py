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

The package, one module per part (every name is importable from ``skuaudit.export`` as before):

- ``base``: the formats, ``ExportError``, the model folder an export reads and the files written
  beside every export (``labels.json``, ``config.json``, ``anchors.json``, ``export.json``).
- ``savedmodel``: the serving module (decode and per-class NMS in the graph) and its SavedModel.
- ``tfjs``: that module's ``detect_normalized`` converted to a TF.js graph model (the converter's
  patches live in ``skuaudit.compat``).
- ``tflite``: the raw network as TFLite, float32 or int8 calibrated on generated shelves.
- ``folders``: ``export_model`` (any format; ``replace`` swaps a finished export in), the Model
  lab's export folders, their sizes and zips.
- ``node``: an exported TF.js model run under Node (the parity test and the benchmark).
- ``cli``: ``skuaudit export``.

Example:
    >>> export_model("models/default", "tfjs", "exports/default-tfjs")  # doctest: +SKIP
"""

from skuaudit.export.base import ANCHORS_FILE, EXPORT_INFO_FILE, FORMATS, ExportError
from skuaudit.export.cli import cli_main
from skuaudit.export.folders import (
    export_model,
    folder_size_bytes,
    human_size,
    lab_export_dir,
    lab_exports,
    zip_folder,
)
from skuaudit.export.node import NODE_RUNNER, REPO_ROOT, run_tfjs_in_node
from skuaudit.export.savedmodel import CLASS_OFFSET, build_serving_module, export_savedmodel
from skuaudit.export.tfjs import TFJS_HOSTING, TFJS_SHARD_BYTES, export_tfjs, tfjs_io_names
from skuaudit.export.tflite import convert_tflite, export_tflite, representative_images

__all__ = [
    "ANCHORS_FILE",
    "CLASS_OFFSET",
    "EXPORT_INFO_FILE",
    "FORMATS",
    "NODE_RUNNER",
    "REPO_ROOT",
    "TFJS_HOSTING",
    "TFJS_SHARD_BYTES",
    "ExportError",
    "build_serving_module",
    "cli_main",
    "convert_tflite",
    "export_model",
    "export_savedmodel",
    "export_tflite",
    "export_tfjs",
    "folder_size_bytes",
    "human_size",
    "lab_export_dir",
    "lab_exports",
    "representative_images",
    "run_tfjs_in_node",
    "tfjs_io_names",
    "zip_folder",
]

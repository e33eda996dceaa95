"""Export of a tiny trained detector to SavedModel, TF.js and TFLite, and parity of each runtime.

Parity compares detections of the same input: boxes are matched by class and IoU >= 0.99 (ties in
score may swap rows), then scores must agree within 1e-3. The TF.js model runs under Node with the
wasm backend (``tools/tfjs_infer.mjs``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from skuaudit.detections import box_iou_xyxy
from skuaudit.export import REPO_ROOT, TFJS_SHARD_BYTES, cli_main, run_tfjs_in_node

SCORE_TOL = 1e-3


def _needs_node() -> None:
    if shutil.which("node") and (REPO_ROOT / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        return
    if os.environ.get("CI"):
        pytest.fail("Node.js and the npm packages (npm ci) are required in CI")
    pytest.skip("needs node and 'npm ci' (node_modules/@tensorflow/tfjs)")


@pytest.fixture(scope="module")
def exports(tiny_detector, tmp_path_factory) -> dict[str, Path]:
    """The tiny detector exported to every format; tfjs through the CLI."""
    from skuaudit.export import export_model

    model_dir, _ = tiny_detector
    root = tmp_path_factory.mktemp("exports")
    assert (
        cli_main(["--model", str(model_dir), "--format", "tfjs", "--out", str(root / "tfjs")]) == 0
    )
    out = {"tfjs": root / "tfjs"}
    out["savedmodel"] = export_model(model_dir, "savedmodel", root / "savedmodel")
    out["tflite"] = export_model(model_dir, "tflite", root / "tflite")
    out["tflite_int8"] = export_model(model_dir, "tflite", root / "tflite_int8", int8=True)
    return out


@pytest.fixture(scope="module")
def shelf_input(tiny_detector) -> np.ndarray:
    """A generated shelf resized to the model input: ``(1, S, S, 3)`` float32 RGB 0..255."""
    from skuaudit.datasets.synth import render_shelf
    from skuaudit.detector import DetectorConfig

    size = DetectorConfig.from_json(tiny_detector[0] / "config.json").image_size
    image = render_shelf(seed=777, width=512, height=384).image_bgr
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB).astype(np.float32)[None]


def match_detections(ref: dict, other: dict) -> tuple[float, float]:
    """``(matched fraction of ref boxes, max abs score diff of matched pairs)``.

    Each dict holds ``boxes`` ``(N, 4)`` (any corner format, same in both), ``scores``, ``classes``.
    """
    if len(ref["scores"]) == 0:
        return (1.0 if len(other["scores"]) == 0 else 0.0), 0.0
    iou = (
        box_iou_xyxy(ref["boxes"], other["boxes"])
        if len(other["scores"])
        else np.zeros((len(ref["scores"]), 0))
    )
    iou = np.where(ref["classes"][:, None] == other["classes"][None, :], iou, 0.0)
    diffs, matched = [], 0
    for i in range(len(ref["scores"])):
        candidates = np.flatnonzero(iou[i] >= 0.99)
        if len(candidates):
            matched += 1
            diffs.append(np.min(np.abs(other["scores"][candidates] - ref["scores"][i])))
    return matched / len(ref["scores"]), float(max(diffs, default=0.0))


def test_every_format_is_written(exports):
    model_json = json.loads((exports["tfjs"] / "model.json").read_text())
    assert model_json["format"] == "graph-model"
    assert "tf.loadGraphModel(" in (exports["tfjs"] / "README.txt").read_text()  # how to host
    shards = sorted(exports["tfjs"].glob("group1-shard*.bin"))
    assert shards and all(p.stat().st_size <= TFJS_SHARD_BYTES for p in shards)
    info = json.loads((exports["tfjs"] / "export.json").read_text())
    assert set(info["outputs"]) == {"boxes_yxyx_norm", "scores", "classes", "raw"}
    assert (
        info["outputs"]["boxes_yxyx_norm"]
        == model_json["signature"]["outputs"]["boxes_yxyx_norm"]["name"]
    )
    assert "NonMaxSuppressionV5" in {n["op"] for n in model_json["modelTopology"]["node"]}
    assert (exports["savedmodel"] / "saved_model.pb").is_file()
    for key in ("tflite", "tflite_int8"):
        assert (exports[key] / "model.tflite").stat().st_size > 0
        assert len(json.loads((exports[key] / "anchors.json").read_text())["anchors"]) > 0
    assert (exports["tflite_int8"] / "model.tflite").stat().st_size < (
        exports["tflite"] / "model.tflite"
    ).stat().st_size


def _savedmodel_detect(saved_model_dir: Path, image: np.ndarray, threshold: float) -> dict:
    import tensorflow as tf

    fn = tf.saved_model.load(str(saved_model_dir)).signatures["detect_normalized"]
    out = fn(image=tf.constant(image), score_threshold=tf.constant(threshold, tf.float32))
    return {k: v.numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def python_reference(exports, shelf_input) -> tuple[dict, float]:
    """SavedModel detections on the shelf, with a threshold low enough to keep a few dozen boxes."""
    import tensorflow as tf

    raw = (
        tf.saved_model.load(str(exports["savedmodel"]))
        .signatures["detect_normalized"](
            image=tf.constant(shelf_input), score_threshold=tf.constant(0.0)
        )["raw"]
        .numpy()
    )
    scores = np.sort(1 / (1 + np.exp(-raw[0, :, 4:].ravel())))[::-1]
    threshold = float(scores[min(60, len(scores) - 1)])
    return _savedmodel_detect(exports["savedmodel"], shelf_input, threshold), threshold


def test_tfjs_parity_in_node(exports, shelf_input, python_reference):
    _needs_node()
    ref, threshold = python_reference
    result = run_tfjs_in_node(
        exports["tfjs"], shelf_input, score_threshold=threshold, backend="wasm"
    )
    js = result["outputs"]
    raw_diff = float(np.max(np.abs(js["raw"] - ref["raw"])))
    fraction, score_diff = match_detections(
        {"boxes": ref["boxes_yxyx_norm"], "scores": ref["scores"], "classes": ref["classes"]},
        {
            "boxes": js["boxes_yxyx_norm"],
            "scores": js["scores"],
            "classes": js["classes"].astype(np.int32),
        },
    )
    print(
        f"tfjs parity: {len(ref['scores'])} boxes, matched {fraction:.3f}, max score diff {score_diff:.2e}, "
        f"max raw diff {raw_diff:.2e}"
    )
    assert len(ref["scores"]) > 10
    assert fraction >= 0.95
    assert score_diff <= SCORE_TOL


@pytest.mark.parametrize("key, tolerance", [("tflite", SCORE_TOL), ("tflite_int8", 0.1)])
def test_tflite_parity(tiny_detector, exports, shelf_input, key, tolerance):
    from ai_edge_litert.interpreter import Interpreter

    from skuaudit.detector import Detector, decode_detections

    detector = Detector.load(tiny_detector[0], runtime="tf")
    reference_raw = detector.predict_raw(shelf_input)[0]
    interpreter = Interpreter(model_path=str(exports[key] / "model.tflite"), num_threads=2)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], shelf_input)
    interpreter.invoke()
    lite_raw = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    cfg = detector.config
    ref_scores = np.sort(1 / (1 + np.exp(-reference_raw[:, 4:].ravel())))[::-1]
    threshold = float(ref_scores[60])

    def decode(raw):
        det = decode_detections(
            raw,
            detector.anchors_yxyx_norm,
            (cfg.image_size, cfg.image_size),
            box_variance=cfg.box_variance,
            score_threshold=threshold,
            nms_iou=cfg.nms_iou,
            max_detections=cfg.max_detections,
            pre_nms_top_k=cfg.pre_nms_top_k,
        )
        return {"boxes": det.xyxy, "scores": det.confidence, "classes": det.class_id}

    ref, lite = decode(reference_raw), decode(lite_raw)
    raw_diff = float(np.max(np.abs(lite_raw - reference_raw)))
    fraction, score_diff = match_detections(ref, lite)
    print(
        f"{key} parity: {len(ref['scores'])} boxes, matched {fraction:.3f}, max score diff {score_diff:.2e}, "
        f"max raw diff {raw_diff:.2e}"
    )
    if key == "tflite":
        assert fraction >= 0.95
        assert score_diff <= tolerance
    else:  # int8 moves scores and boxes: only require the same scale of outputs
        assert np.corrcoef(lite_raw[:, 4:].ravel(), reference_raw[:, 4:].ravel())[0, 1] > 0.9


def test_savedmodel_serving_signature_takes_any_image(exports):
    import tensorflow as tf

    serve = tf.saved_model.load(str(exports["savedmodel"])).signatures["serving_default"]
    from skuaudit.datasets.synth import render_shelf

    image = cv2.cvtColor(render_shelf(seed=5, width=500, height=300).image_bgr, cv2.COLOR_BGR2RGB)
    out = serve(image=tf.constant(image), score_threshold=tf.constant(0.0))
    boxes = out["boxes_xyxy"].numpy()
    assert boxes.shape[1] == 4 and len(boxes) == len(out["scores"]) == len(out["classes"]) > 0
    assert boxes[:, [0, 2]].max() <= 500 and boxes[:, [1, 3]].max() <= 300


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing_weights", "model.keras is missing"),
        ("corrupt_weights", "model.keras is corrupt"),
        ("missing_config", "config.json is missing"),
        ("no_folder", "model folder not found"),
    ],
)
def test_cli_bad_model_folder_exits_2_without_traceback(
    tiny_detector, tmp_path, capsys, breakage, message
):
    model_dir = tmp_path / "model"
    if breakage != "no_folder":
        shutil.copytree(tiny_detector[0], model_dir, ignore=shutil.ignore_patterns("checkpoints"))
    if breakage == "missing_weights":
        (model_dir / "model.keras").unlink()
    elif breakage == "corrupt_weights":
        (model_dir / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    elif breakage == "missing_config":
        (model_dir / "config.json").unlink()
    code = cli_main(
        ["--model", str(model_dir), "--format", "savedmodel", "--out", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_cli_refuses_int8_for_tfjs(tiny_detector, tmp_path, capsys):
    code = cli_main(
        ["--model", str(tiny_detector[0]), "--format", "tfjs", "--out", str(tmp_path), "--int8"]
    )
    assert code == 2 and "tflite format only" in capsys.readouterr().err


def test_replace_keeps_the_earlier_export_when_the_new_one_fails(tiny_detector, tmp_path):
    """``replace=True`` writes beside the earlier export; a failure leaves it whole and no staging
    folder behind. Without ``replace`` a non-empty folder is still refused."""
    from skuaudit.detector import ModelLoadError
    from skuaudit.export import ExportError, export_model

    earlier = tmp_path / "exports" / "tiny-savedmodel"
    earlier.mkdir(parents=True)
    (earlier / "export.json").write_text("the earlier export")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_detector[0], broken, ignore=shutil.ignore_patterns("checkpoints"))
    (broken / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelLoadError):
        export_model(broken, "savedmodel", earlier, replace=True)
    assert (earlier / "export.json").read_text() == "the earlier export"
    assert [p.name for p in earlier.parent.iterdir()] == [earlier.name]
    with pytest.raises(ExportError, match="output folder is not empty"):
        export_model(tiny_detector[0], "savedmodel", earlier)


@pytest.mark.parametrize(
    "name, fmt, int8, expected",
    [
        ("lab-0001-20250101-120000", "tfjs", False, "lab-0001-20250101-120000-tfjs"),
        ("shipped default", "tflite", True, "shipped-default-tflite-int8"),
        ("../etc", "savedmodel", False, "etc-savedmodel"),
        ("", "savedmodel", False, "model-savedmodel"),
    ],
)
def test_lab_export_dir(name, fmt, int8, expected, tmp_path, monkeypatch):
    from skuaudit.export import lab_export_dir

    monkeypatch.setenv("SKUAUDIT_MODELS_DIR", str(tmp_path))
    assert lab_export_dir(name, fmt, int8=int8) == tmp_path / "exports" / expected


COUNTING_JS = REPO_ROOT / "skuaudit" / "web" / "offline_component" / "counting.js"


def _js_counted_indices(cases: list[dict]) -> list[list[int]]:
    """``countedIndices`` of counting.js (the browser's own file) under Node, one list per case."""
    import subprocess

    script = (
        f"const c = require({json.dumps(str(COUNTING_JS))});"
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(cases.map("
        "(k) => c.countedIndices(k.boxes, k.scores, k.classes, k.rules))));"
    )
    proc = subprocess.run(
        ["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    "rules",
    [
        {"containment": 0.8, "stack_min_contained": 2, "drop_contained": True},
        {"containment": 0.6, "stack_min_contained": 0, "drop_contained": True},
        {"containment": 0.8, "stack_min_contained": 3, "drop_contained": False},
        {"containment": 0.8, "stack_min_contained": 2, "drop_contained": True, "empty": [1]},
        {"containment": 0.6, "stack_min_contained": 0, "drop_contained": False, "empty": [1]},
    ],
)
def test_counting_js_applies_the_python_rules(rules):
    """The browser's counting (per-class thresholds, nested-box rules and, with ``empty``, boxes
    inside a better box of an empty-stretch class dropped) keeps exactly the boxes
    ``Detector.detect`` keeps, on crowded random boxes with stacks and fragments."""
    _needs_node()
    from skuaudit.detector.postprocess import suppress_contained, suppress_inside_empty

    rules = dict(rules)
    empty = rules.pop("empty", [])

    thresholds = [0.55, 0.3]
    cases, expected, dropped_in_empty = [], [], 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n = 120
        xy = rng.uniform(0, 300, (n, 2))
        wh = rng.uniform(8, 60, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        parts = rng.choice(n, 30, replace=False)  # halves of some boxes: nested fragments
        halves = boxes[parts].copy()
        halves[:, 3] = (halves[:, 1] + halves[:, 3]) / 2
        boxes = np.concatenate([boxes, halves]).round(3)
        classes = np.concatenate([rng.integers(0, 2, n), rng.integers(0, 2, n)[parts]])
        scores = rng.uniform(0, 1, len(boxes)).round(6)
        above = scores >= np.asarray(thresholds)[classes]
        # Python applies the rules to every box, then the thresholds (Detector.detect's order);
        # the empty-stretch boxes that drop others are those above their threshold.
        nested = np.flatnonzero(suppress_contained(boxes, scores, classes, **rules))
        keep = np.zeros(len(boxes), bool)
        keep[nested] = suppress_inside_empty(
            boxes[nested],
            scores[nested],
            np.isin(classes[nested], empty),
            containment=rules["containment"],
            counted=above[nested],
        )
        expected.append(sorted(np.flatnonzero(keep & above).tolist()))
        dropped_in_empty += int(np.sum(above[nested] & ~keep[nested]))
        cases.append(
            {
                "boxes": boxes.ravel().tolist(),
                "scores": scores.tolist(),
                "classes": classes.tolist(),
                "rules": {"class_score_thresholds": thresholds, "empty_class_ids": empty, **rules},
            }
        )
    got = _js_counted_indices(cases)
    assert [sorted(g) for g in got] == expected
    assert (dropped_in_empty > 0) == bool(empty)
    assert any(
        len(e) < int(np.sum(np.asarray(c["scores"]) >= 0.3))
        for e, c in zip(expected, cases, strict=True)
    )


def test_node_counts_match_the_python_detector(tiny_detector, tmp_path, shelf_input):
    """An exported model run in TF.js counts what ``Detector.detect`` counts on the same input:
    per-class default thresholds and nested-box rules included (export.json ``counting``)."""
    _needs_node()
    from skuaudit.detector import Detector
    from skuaudit.export import export_model

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_detector[0], model_dir, ignore=shutil.ignore_patterns("checkpoints"))
    detector = Detector.load(model_dir, runtime="tf")
    raw = detector.predict_raw(shelf_input)[0]
    scores = np.sort(1 / (1 + np.exp(-raw[:, 4:])), axis=0)[::-1]  # per class, best first
    config = json.loads((model_dir / "config.json").read_text())
    # thresholds that keep ~40 products and ~20 gaps (the tiny model's scores are low), halfway
    # between two scores: runtimes differ by ~1e-7, a threshold on a score would be a coin toss
    product_t = float(scores[40:42, 0].mean())
    gap_t = float(scores[20:22, 1].mean())
    # the offline page runs one pass per frame: it counts with the one-pass thresholds
    config["detector"]["class_score_thresholds"] = {"product": 0.99}
    config["detector"]["single_pass_class_score_thresholds"] = {"product": product_t}
    config["detector"]["score_threshold"] = gap_t
    (model_dir / "config.json").write_text(json.dumps(config))
    out = export_model(model_dir, "tfjs", tmp_path / "tfjs")
    info = json.loads((out / "export.json").read_text())
    assert info["counting"]["class_score_thresholds"] == pytest.approx([product_t, gap_t])
    result = run_tfjs_in_node(out, shelf_input, backend="wasm")
    image_bgr = cv2.cvtColor(shelf_input[0].astype(np.uint8), cv2.COLOR_RGB2BGR)
    det = Detector.load(model_dir, runtime="tf").detect(image_bgr, tiled=False)
    python_counts = {
        name: int(np.sum(det.class_id == i)) for i, name in enumerate(info["class_names"])
    }
    print(f"counts: python {python_counts}, tfjs {result['counting']['counts']}")
    assert sum(python_counts.values()) > 10
    assert result["counting"]["counts"] == python_counts


def test_zip_of_an_export_and_the_lab_exports_listed(tmp_path, monkeypatch):
    """The Model lab offers each export as a zip of one folder, with its size."""
    import io
    import zipfile

    from skuaudit.export import (
        EXPORT_INFO_FILE,
        folder_size_bytes,
        human_size,
        lab_export_dir,
        lab_exports,
        zip_folder,
    )

    monkeypatch.setenv("SKUAUDIT_MODELS_DIR", str(tmp_path / "models"))
    out = lab_export_dir("lab 7", "tflite", int8=True)
    (out / "sub").mkdir(parents=True)
    (out / EXPORT_INFO_FILE).write_text("{}")
    (out / "model.tflite").write_bytes(b"x" * 3000)
    (out / "sub" / "a.txt").write_text("a")
    lab_export_dir("lab 7", "tfjs").mkdir()  # an unfinished export: no export.json, not listed
    assert [(e["format"], e["size_bytes"]) for e in lab_exports("lab 7")] == [
        ("tflite int8", folder_size_bytes(out))
    ]
    assert human_size(folder_size_bytes(out)) == "2.9 KB"
    with zipfile.ZipFile(io.BytesIO(zip_folder(out))) as archive:
        names = sorted(archive.namelist())
        assert names == [f"{out.name}/{n}" for n in ("export.json", "model.tflite", "sub/a.txt")]
        assert archive.read(f"{out.name}/model.tflite") == b"x" * 3000

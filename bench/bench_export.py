"""Per-frame inference time of the exported detector: Python (TFLite, SavedModel) vs TF.js in Node and
in headless Chromium, measured on this machine in one run.

    .venv/bin/python bench/bench_export.py [--model models/default] [--repeat 20]

Without a model folder a fresh (untrained) 320 px alpha 0.35 network is timed: speed does not
depend on the weights. TF.js timings cover ``executeAsync`` (network + decode + NMS) and reading the
outputs back; Python timings cover the same graph (SavedModel) or the raw network (TFLite).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import streamlit_webrtc  # noqa: F401, I001  (before TensorFlow: STACK.md)
from _timing import median_ms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skuaudit.chromium import CHROMIUM, HEADLESS_FLAGS  # noqa: E402
from skuaudit.export import export_savedmodel, export_tfjs, export_tflite, run_tfjs_in_node  # noqa: E402
from skuaudit.web import COMPONENT_DIR  # noqa: E402

PAGE = """<!doctype html><script src="vendor/tf.min.js"></script><script src="vendor/tf-backend-wasm.min.js"></script>
<script>
async function bench(backend, repeat, info) {
  if (backend === "wasm") tf.wasm.setWasmPaths(new URL("vendor/", location.href).href);
  if (!(await tf.setBackend(backend))) return null;
  await tf.ready();
  const model = await tf.loadGraphModel("model/model.json");
  const s = info.image_size;
  const image = tf.randomUniform([1, s, s, 3], 0, 255);
  const thr = tf.scalar(info.score_threshold);
  const names = [info.outputs.boxes_yxyx_norm, info.outputs.scores, info.outputs.classes];
  const times = [];
  for (let i = 0; i < repeat + 2; i++) {
    const t0 = performance.now();
    const out = await model.executeAsync({[info.inputs.image]: image, [info.inputs.score_threshold]: thr}, names);
    await Promise.all(out.map((t) => t.data()));
    tf.dispose(out);
    if (i >= 2) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}
</script>"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _chromium(tfjs_dir: Path, repeat: int) -> dict[str, float | None]:
    import json

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as site:
        shutil.copytree(COMPONENT_DIR / "vendor", Path(site) / "vendor")
        shutil.copytree(tfjs_dir, Path(site) / "model")
        (Path(site) / "index.html").write_text(PAGE)
        handler = functools.partial(_QuietHandler, directory=site)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        info = json.loads((tfjs_dir / "export.json").read_text())
        out = {}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, args=HEADLESS_FLAGS, headless=True
                )
                for backend in ("wasm", "webgl"):
                    page = browser.new_page()
                    page.goto(f"http://127.0.0.1:{httpd.server_port}/index.html")
                    try:
                        out[backend] = page.evaluate(
                            "([b, r, i]) => bench(b, r, i)", [backend, repeat, info]
                        )
                    except Exception as exc:  # noqa: BLE001 - a backend this browser lacks is reported, not fatal
                        print(f"chromium {backend}: unavailable ({str(exc).splitlines()[0]})")
                        out[backend] = None
                    page.close()
                browser.close()
        finally:
            httpd.shutdown()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        tmp = Path(tmp)
        model_dir = args.model
        if model_dir is None:
            from skuaudit.detector import DetectorConfig, build_raw_model, save_model_folder

            config = DetectorConfig(image_size=320, alpha=0.35)
            model_dir = save_model_folder(
                build_raw_model(config), config, tmp / "model", with_tflite=False
            )
        saved, tfjs_dir, lite = (
            export_savedmodel(model_dir, tmp / "sm"),
            export_tfjs(model_dir, tmp / "tfjs"),
            export_tflite(model_dir, tmp / "tflite"),
        )
        import json

        info = json.loads((tfjs_dir / "export.json").read_text())
        size = info["image_size"]
        image = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
        thr = tf.constant(info["score_threshold"])
        fn = tf.saved_model.load(str(saved)).signatures["detect_normalized"]
        results = {
            "python savedmodel (tf.function, decode+NMS in graph)": median_ms(
                lambda: fn(image=tf.constant(image), score_threshold=thr), args.repeat, warmup=2
            )
        }
        interp = Interpreter(model_path=str(lite / "model.tflite"), num_threads=2)
        interp.allocate_tensors()
        inp, outp = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

        def lite_run():
            interp.set_tensor(inp, image)
            interp.invoke()
            interp.get_tensor(outp)

        results["python tflite fp32 (raw network, 2 threads)"] = median_ms(
            lite_run, args.repeat, warmup=2
        )
        for backend in ("wasm", "cpu"):
            res = run_tfjs_in_node(tfjs_dir, image, backend=backend, repeat=args.repeat + 2)
            results[f"tfjs node {backend}"] = statistics.median(res["timings_ms"][2:])
        if Path(CHROMIUM).is_file():
            for backend, ms in _chromium(tfjs_dir, args.repeat).items():
                results[f"tfjs headless chromium {backend}"] = ms
    print(f"\nmodel input {size}x{size}, median ms per frame ({args.repeat} runs)")
    for name, ms in results.items():
        print(f"  {name:58s} {'n/a' if ms is None else f'{ms:8.1f}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

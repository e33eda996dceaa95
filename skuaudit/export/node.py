"""An exported TF.js model run under Node (``tools/tfjs_infer.mjs``), for the parity test and
the export benchmark.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from skuaudit.export.base import ExportError

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_RUNNER = REPO_ROOT / "tools" / "tfjs_infer.mjs"


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

"""Offline in-browser audit: the detector runs in the phone's browser with TensorFlow.js.

The Streamlit component in ``offline_component/`` (plain HTML + JS, no build step) loads TF.js from
``offline_component/vendor/`` (copied from ``node_modules`` by ``npm ci``) and the model from
``offline_component/models/<version>/`` (exported here on first use), both served by the app itself
through the component's file route: nothing is fetched from a CDN and no video is sent to the
server. The component returns only counts per class, which the page saves as an audit.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

COMPONENT_DIR = Path(__file__).resolve().parent / "offline_component"
BROWSER_MODELS_DIR = COMPONENT_DIR / "models"
VENDOR_FILES: tuple[str, ...] = ("tf.min.js", "tf-backend-wasm.min.js", "tfjs-backend-wasm.wasm")
OFFLINE_NOTES = "offline-tfjs"
# 2: export.json has "counting" (thresholds, nested-box rules); 3: with empty_class_ids
EXPORT_LAYOUT = "3"


class OfflineModeError(RuntimeError):
    """The offline mode cannot be served; the message says what to install or export."""


def browser_model_key(model_dir: str | Path) -> str:
    """Folder name of a model's browser copy: its name plus a digest of its weights file."""
    model_dir = Path(model_dir)
    weights = model_dir / "model.keras"
    if not weights.is_file():
        raise OfflineModeError(
            f"{model_dir}: model.keras is missing; the model cannot run in the browser"
        )
    # The weights and config.json (thresholds, nested-box rules) both change what the browser
    # runs; EXPORT_LAYOUT changes when export.json gains fields the component reads.
    parts = [EXPORT_LAYOUT]
    for path in (weights, model_dir / "config.json"):
        stat = path.stat() if path.is_file() else None
        parts.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}" if stat else "-")
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]
    return f"{model_dir.name}-{digest}"


def prepare_browser_model(model_dir: str | Path) -> dict:
    """Export ``model_dir`` to TF.js for the browser (once per weights file); returns component args.

    Raises:
        OfflineModeError: the TF.js files are missing (``npm ci``) or the model has no weights.
        ModelLoadError, ExportError: the export failed.
    """
    from skuaudit.export import EXPORT_INFO_FILE, export_tfjs

    missing = [f for f in VENDOR_FILES if not (COMPONENT_DIR / "vendor" / f).is_file()]
    if missing:
        raise OfflineModeError(
            f"TensorFlow.js browser files are missing ({', '.join(missing)}): run 'npm ci'"
        )
    key = browser_model_key(model_dir)
    target = BROWSER_MODELS_DIR / key
    if not (target / EXPORT_INFO_FILE).is_file():
        BROWSER_MODELS_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=BROWSER_MODELS_DIR, prefix=".export-") as tmp:
            export_tfjs(model_dir, Path(tmp) / "tfjs")
            shutil.rmtree(target, ignore_errors=True)
            (Path(tmp) / "tfjs").rename(target)  # atomic: a half-written model is never served
    info = json.loads((target / EXPORT_INFO_FILE).read_text())
    counting = info["counting"]
    return {
        "model_url": f"models/{key}/model.json",
        "inputs": info["inputs"],
        "outputs": info["outputs"],
        "image_size": info["image_size"],
        "class_names": info["class_names"],
        # The graph keeps every box any class may count; counting.js applies the per-class
        # thresholds and nested-box rules of `counting` afterwards.
        "score_threshold": min(counting["class_score_thresholds"]),
        "counting": counting,
    }


def offline_audit_component(
    args: dict, *, test_image_url: str | None = None, key: str = "offline_audit"
):
    """Draw the in-browser detector; returns the last counts it sent (``None`` until then).

    Args:
        args: from ``prepare_browser_model``.
        test_image_url: test hook: audit this image (e.g. a data URL) instead of the camera, and
            send the counts by itself after three frames.
        key: Streamlit widget key.

    Returns:
        ``{"counts": {class: n}, "frames", "backend", "ms_per_frame", "sent_at"}`` (``sent_at``:
        the browser's clock in ms, new for every report) or ``{"error": ...}``.
    """
    import streamlit.components.v1 as components

    component = components.declare_component("skuaudit_offline_audit", path=str(COMPONENT_DIR))
    extra = {"test_image_url": test_image_url, "auto_send": True} if test_image_url else {}
    return component(**args, **extra, key=key, default=None)


def save_offline_audit(
    store_id: int,
    user_name: str,
    counts: dict[str, int],
    model_dir: str | Path,
    url: str | None = None,
    *,
    allow_empty: bool = False,
) -> int:
    """Save counts from the browser as an audit (source ``offline``, notes ``offline-tfjs``); returns its id.

    No image or boxes reach the server in this mode, so only the counts and the model version are kept.

    Raises:
        ValueError: a count that is not a whole number >= 0.
        EmptyAuditError: no products and no gaps, unless ``allow_empty`` (as for photo audits).
    """
    from skuaudit.audit import EmptyAuditError
    from skuaudit.model_registry import model_name_for, model_version_for

    for name, value in counts.items():
        if not isinstance(value, int) or value < 0:
            raise UserError(f"count of {name!r} must be a whole number >= 0, got {value!r}")
    if not allow_empty and counts.get("product", 0) == 0 and counts.get("gap", 0) == 0:
        raise EmptyAuditError(
            "nothing was detected (0 products, 0 gaps); tick 'Save anyway' to record an empty shelf"
        )
    version_id = model_version_for(model_dir, url)
    with session_scope(url) as s:
        audit = m.Audit(
            store_id=store_id,
            user_name=user_name,
            source="offline",
            model_version_id=version_id,
            model_name=model_name_for(model_dir, url),
            product_count=counts.get("product", 0),
            gap_count=counts.get("gap", 0),
            notes=OFFLINE_NOTES,
        )
        s.add(audit)
        s.flush()
        return audit.id

"""Offline audit: the detector runs in this browser (TensorFlow.js); only the counts are sent back."""

from __future__ import annotations

import json
import os

import streamlit as st

from skuaudit import ui
from skuaudit.detector import ModelLoadError
from skuaudit.export import ExportError
from skuaudit.model_registry import active_model_dir
from skuaudit.web import (
    OfflineModeError,
    offline_audit_component,
    prepare_browser_model,
    save_offline_audit,
)

ui.ensure_routed()


st.title("Offline audit")
st.caption("The model runs on this device: no video leaves it. Only the counts are saved.")
ctx = ui.audit_header()


@st.cache_resource(show_spinner="Preparing the model for the browser ...")
def _browser_model(model_dir: str, _version: str) -> dict:
    return prepare_browser_model(model_dir)


with ui.user_errors("Finding the active model"):
    model_dir = active_model_dir()
    try:
        args = _browser_model(str(model_dir), str((model_dir / "model.keras").stat().st_mtime_ns))
    except (OfflineModeError, ModelLoadError, ExportError, FileNotFoundError) as exc:
        st.error(f"The offline mode is not available: {exc}")
        st.stop()
    # test hook (browser test): a picture instead of the camera
    result = offline_audit_component(
        args, test_image_url=os.environ.get("SKUAUDIT_OFFLINE_TEST_IMAGE")
    )
    if result and result.get("error"):
        st.error(f"The browser could not run the model: {result['error']}")
    elif result:
        counts = result["counts"]
        st.success(
            f"Counts from the browser: {counts.get('product', 0)} products, {counts.get('gap', 0)} gaps "
            f"({result['backend']}, {result['ms_per_frame']:.0f} ms per frame, {result['frames']} frames)"
        )
        nothing_found = counts.get("product", 0) == 0 and counts.get("gap", 0) == 0
        if nothing_found:
            st.warning(
                "No products or gaps were found: is the camera on the shelf? Nothing is saved "
                "unless you tick 'Save anyway'."
            )
        allow_empty = (
            st.checkbox("Save anyway", key="offline_allow_empty") if nothing_found else False
        )
        # One report, one audit: the button stays disabled until the browser sends new counts.
        report_id = json.dumps(result, sort_keys=True)
        saved = st.session_state.get("offline_saved")  # (report_id, audit id, store name)
        saved = saved if saved is not None and saved[0] == report_id else None
        if ctx.store_id is None:
            st.info("Choose a store in the sidebar to save the audit.")
        elif st.button(
            f"Save audit for {ctx.store_name}",
            type="primary",
            key="offline_save",
            disabled=saved is not None,
        ):
            with ui.user_errors("Saving the audit"):
                audit_id = save_offline_audit(
                    ctx.store_id, ctx.user_name, counts, model_dir, allow_empty=allow_empty
                )
                st.session_state["offline_saved"] = (report_id, audit_id, ctx.store_name)
                st.rerun()
        if saved is not None:
            st.success(f"Audit {saved[1]} saved for {saved[2]}.")

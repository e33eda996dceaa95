"""Photo audit: upload or take shelf photos, review the products (and brands), save the audit."""

from __future__ import annotations

import hashlib

import cv2
import pandas as pd
import streamlit as st

from skuaudit import audit, ui
from skuaudit.config import get_settings
from skuaudit.images import UPLOAD_TYPES
from skuaudit.model_registry import active_model_dir
from skuaudit.recognition import Gallery
from skuaudit.storage.queries import list_brands, product_infos

ui.ensure_routed()


@st.cache_resource(show_spinner="Loading the detector and the product model…")
def _models(model_dir: str):
    return audit.load_models(model_dir)


st.title("Photo audit")
ctx = ui.audit_header()
if ctx.store_id is None:
    st.info("Pick a store in the sidebar (an analyst adds stores in the Catalogue).")
    st.stop()

uploads = st.file_uploader(
    # The limit is in the label: an oversize file is otherwise shown only as a red icon.
    f"Shelf photos (JPEG, PNG or WebP, up to {get_settings().max_upload_mb} MB each)",
    type=list(UPLOAD_TYPES),
    accept_multiple_files=True,
    key="photo_uploads",
    max_upload_size=get_settings().max_upload_mb,  # the server allows dataset-sized uploads
)
use_camera = st.toggle("Take a photo with the camera", key="photo_use_camera")
shot = st.camera_input("Shelf photo", key="photo_camera") if use_camera else None
files = [(f.name, f.getvalue()) for f in uploads or []]
files += [("camera.jpg", shot.getvalue())] if shot is not None else []
if not files:
    st.caption("Upload one or more photos of the shelf bay, or take one with the camera.")
    st.stop()

models = None
with ui.user_errors("Loading the models"):
    models = _models(str(active_model_dir()))
if models is None:
    st.stop()
detector, recognizer = models

batch_key = hashlib.sha1(b"".join(hashlib.sha1(data).digest() for _, data in files)).hexdigest()
if st.session_state.get("photo_batch_key") != batch_key:
    # Before analysing: a blurred, dark or steep photo is better taken again.
    warnings = audit.upload_quality(files)
    if warnings and st.session_state.get("photo_quality_accepted") != batch_key:
        for name, problems in warnings.items():
            st.warning(f"{name}: " + "; ".join(problems) + ".")
        st.caption("Take the photo again, or analyse it as it is.")
        st.button(
            "Analyse anyway",
            key="photo_analyse_anyway",
            on_click=st.session_state.update,
            kwargs={"photo_quality_accepted": batch_key},
        )
        st.stop()
    with st.spinner("Finding facings, gaps and products…"):
        gallery = Gallery.from_database(recognizer=recognizer)
        st.session_state["photo_batch"] = audit.analyse_uploads(
            files, detector, recognizer, gallery
        )
    st.session_state["photo_batch_key"] = batch_key
    st.session_state["photo_saved_id"] = None
batch: audit.UploadBatch = st.session_state["photo_batch"]
for message in batch.errors:
    st.error(message)
if not batch.analyses:
    st.stop()

nothing_found = all(a.is_empty for a in batch.analyses)
if nothing_found:
    st.warning(
        "No products or gaps were found: is this a shelf photo? Nothing is saved unless "
        "you tick 'Save anyway'."
    )

brands = list_brands()
names = {b.id: b.name for b in brands}
colours = {b.id: b.color_hex for b in brands}
products = product_infos()
options = audit.review_options(names, products)

st.subheader("Products found")
st.caption(
    'Correct a facing by choosing another product ("Brand · Product") in the table. '
    "Boxes are numbered in shelf order (top row first, left to right), as in the table."
)
found = audit.detections_table(batch.analyses, names, products)
edited = st.data_editor(
    found,
    # "corrected" is left out: the editor shows its input, so it could not tick an edit made here;
    # "brand" too: the product's label names it, and a stale brand cell beside an edit misleads.
    column_order=[
        *(["image"] if len(batch.analyses) > 1 else []),
        "box",
        "row",
        "product",
        "score",
    ],
    column_config={
        "image": st.column_config.NumberColumn("photo"),
        "row": st.column_config.NumberColumn("shelf row", help="1 = the top shelf"),
        "product": st.column_config.SelectboxColumn(
            "product", options=list(options), required=True
        ),
        "score": st.column_config.NumberColumn("match score", format="%.2f"),
    },
    disabled=["image", "box", "row", "score"],
    hide_index=True,
    key=f"photo_table_{batch_key[:12]}",
)
corrected = int((edited["product"] != found["product"]).sum()) if len(found) else 0
if corrected:
    st.caption(f"{corrected} facing(s) corrected; the figures below and the saved audit use them.")
analyses = batch.analyses
with ui.user_errors("Applying the corrections"):
    analyses = audit.apply_review_table(batch.analyses, edited, options)

columns = st.columns(min(len(analyses), 2))
for i, analysis in enumerate(analyses):
    drawn = cv2.cvtColor(audit.draw_analysis(analysis, colours), cv2.COLOR_BGR2RGB)
    columns[i % len(columns)].image(drawn, caption=f"photo {i}: {batch.names[i]}")

metrics = audit.metrics_for_store(analyses, ctx.store_id)
left, middle, right = st.columns(3)
left.metric("Product facings", metrics.product_count)
middle.metric(
    "Gaps",
    metrics.gap_count,
    f"{metrics.gap_share_width:.1%} of shelf width",
    delta_color="off",
    delta_arrow="off",
)  # a share, not a change: no arrow
right.metric(
    "Planogram compliance",
    "–" if metrics.planogram_compliance is None else f"{metrics.planogram_compliance:.1%}",
)
# One percentage format on the page (one decimal), and a blank target where there is none.
percent = {"format": "%.1f%%"}


def _figures_frame(records: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    if len(frame):
        frame[["share_facings", "share_linear"]] *= 100
        frame["expected_facings"] = pd.to_numeric(frame["expected_facings"], errors="coerce")
    return frame


figures = {
    "facings": st.column_config.NumberColumn("facings"),
    "share_facings": st.column_config.NumberColumn("share by facings", **percent),
    "share_linear": st.column_config.NumberColumn("share by width", **percent),
    "linear_rows": st.column_config.NumberColumn(
        "width (shelf rows)", format="%.2f", help="Summed widths; 1.00 = one full shelf row"
    ),
    "expected_facings": st.column_config.NumberColumn("target", format="%d"),
    "is_stockout": st.column_config.CheckboxColumn("stockout"),
    "below_target": st.column_config.CheckboxColumn("below target"),
}
order = [
    "facings",
    "share_facings",
    "share_linear",
    "linear_rows",
    "expected_facings",
    "is_stockout",
    "below_target",
]
st.markdown("**Per product**")
st.dataframe(
    _figures_frame(metrics.product_records()),
    hide_index=True,
    column_order=["brand", "name", *order],
    column_config={"name": st.column_config.TextColumn("product"), **figures},
    key="photo_product_metrics",
)
st.markdown("**Per brand** (the sums of its products)")
by_brand = _figures_frame(metrics.to_records())
st.dataframe(
    by_brand,
    hide_index=True,
    column_order=["name", *order],
    column_config={"name": st.column_config.TextColumn("brand"), **figures},
    key="photo_metrics",
)
if metrics.stockouts:
    st.warning(f"Stockouts: {', '.join(metrics.stockouts)}")
if metrics.product_stockouts:
    st.warning(f"Products out of stock: {', '.join(metrics.product_stockouts)}")

allow_empty = st.checkbox("Save anyway", key="photo_allow_empty") if nothing_found else False
if st.button(
    f"Save audit for {ctx.store_name}",
    type="primary",
    key="photo_save",
    disabled=st.session_state.get("photo_saved_id") is not None,
):
    with ui.user_errors("Saving the audit"):
        st.session_state["photo_saved_id"] = audit.save_audit(
            ctx.store_id,
            analyses,
            source="photo",
            user_name=ctx.user_name,
            model_name=audit.detector_name(detector),
            model_version_id=audit.detector_version(detector),
            allow_empty=allow_empty,
        )
        st.rerun()  # draws the button disabled at once: one photo batch, one audit
if st.session_state.get("photo_saved_id") is not None:
    st.success(f"Audit {st.session_state['photo_saved_id']} saved for {ctx.store_name}.")

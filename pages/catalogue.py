"""Catalogue: stores, brands, reference images for brand recognition, planogram targets."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from skuaudit import catalogue, ui
from skuaudit.images import UPLOAD_TYPES
from skuaudit.recognition import detection_crop, enrol_from_detection, enrol_reference
from skuaudit.storage.queries import (
    list_brands,
    list_stores,
    planogram_for_store,
    product_detections,
    recent_audits,
)

st.title("Catalogue")
ui.require_analyst()
ctx = ui.context()
brands_tab, references_tab, planogram_tab, stores_tab = st.tabs(
    ["Brands", "Reference images", "Planogram", "Stores"]
)
brands = list_brands()
brand_names = {b.id: b.name for b in brands}

with brands_tab:
    st.dataframe(
        pd.DataFrame([b.__dict__ for b in brands],
                     columns=["name", "manufacturer", "is_own", "color_hex", "reference_count"]),
        hide_index=True, key="catalogue_brands",
    )
    with st.form("add_brand", clear_on_submit=True):
        st.subheader("Add a brand")
        name = st.text_input("Name", key="new_brand_name")
        manufacturer = st.text_input("Manufacturer", key="new_brand_manufacturer")
        is_own = st.checkbox("Our own brand", key="new_brand_own")
        colour = st.color_picker("Colour", "#1f77b4", key="new_brand_colour")
        if st.form_submit_button("Add brand"):
            with ui.user_errors("Adding the brand"):
                catalogue.add_brand(name, manufacturer, is_own, colour)
                st.success(f"Brand {name.strip()} added.")
    if brands:
        st.subheader("Edit a brand")
        edited = st.selectbox("Brand", brands, format_func=lambda b: b.name, key="edit_brand")
        with st.form("edit_brand_form"):
            new_name = st.text_input("Name", edited.name, key=f"edit_name_{edited.id}")
            new_manufacturer = st.text_input("Manufacturer", edited.manufacturer,
                                             key=f"edit_manufacturer_{edited.id}")
            new_own = st.checkbox("Our own brand", edited.is_own, key=f"edit_own_{edited.id}")
            new_colour = st.color_picker("Colour", edited.color_hex, key=f"edit_colour_{edited.id}")
            if st.form_submit_button("Save brand"):
                with ui.user_errors("Saving the brand"):
                    catalogue.update_brand(edited.id, name=new_name, manufacturer=new_manufacturer,
                                           is_own=new_own, color_hex=new_colour)
                    st.success(f"Brand {new_name.strip()} saved.")

with references_tab:
    if not brands:
        st.info("Add a brand first.")
    else:
        st.caption("A handful of crops of a brand's packs (one facing each) is enough: products are "
                   "recognised by similarity to these references, no retraining needed.")
        target = st.selectbox("Brand", brands, key="ref_brand",
                              format_func=lambda b: f"{b.name} ({b.reference_count} references)")
        crops = st.file_uploader("Upload product crops", type=list(UPLOAD_TYPES),
                                 accept_multiple_files=True, key="ref_uploads")
        if crops and st.button("Enrol uploaded crops", key="ref_enrol_uploads"):
            for crop in crops:
                with ui.user_errors(f"Enrolling {crop.name}"):
                    enrol_reference(target.id, crop.getvalue(), "upload")
                    st.success(f"{crop.name} enrolled for {target.name}.")
        st.subheader("Pick from a past audit")
        audits = recent_audits()
        if not audits:
            st.caption("No saved audit with photos yet.")
        else:
            picked_audit = st.selectbox(
                "Audit", audits, key="ref_audit",
                format_func=lambda a: f"#{a.id} · {a.store_name} · {a.created_at:%Y-%m-%d %H:%M} · "
                                      f"{a.product_count} products",
            )
            detections = product_detections(picked_audit.id)
            if detections:
                picked = st.selectbox(
                    "Detection", detections, key="ref_detection",
                    format_func=lambda d: f"image {d.image_index} · row {d.shelf_row} · x {d.xyxy[0]:.0f}"
                                          f" · {brand_names.get(d.brand_id, 'unknown')}",
                )
                with ui.user_errors("Cutting the crop"):
                    st.image(detection_crop(picked.id)[:, :, ::-1], width=120)
                if st.button(f"Enrol as a reference of {target.name}", key="ref_enrol_detection"):
                    with ui.user_errors("Enrolling the crop"):
                        enrol_from_detection(picked.id, target.id)
                        st.success(f"Crop enrolled for {target.name}.")

with planogram_tab:
    stores = list_stores()
    if not stores or not brands:
        st.info("Add stores and brands first.")
    else:
        store = st.selectbox("Store", stores, format_func=lambda s: s.name, key="plan_store",
                             index=next((i for i, s in enumerate(stores) if s.id == ctx.store_id), 0))
        current = planogram_for_store(store.id)
        with st.form(f"planogram_{store.id}"):
            st.caption("Expected facings per brand in this store (0 = no target).")
            targets = {
                b.id: st.number_input(b.name, min_value=0, step=1, value=current.get(b.id, 0),
                                      key=f"target_{store.id}_{b.id}")
                for b in brands
            }
            if st.form_submit_button("Save targets"):
                with ui.user_errors("Saving the planogram"):
                    catalogue.set_planogram(store.id, targets)
                    st.success(f"Planogram of {store.name} saved.")

with stores_tab:
    st.dataframe(pd.DataFrame([s.__dict__ for s in list_stores()], columns=["name", "region"]),
                 hide_index=True, key="catalogue_stores")
    with st.form("add_store", clear_on_submit=True):
        store_name = st.text_input("Store name", key="new_store_name")
        region = st.text_input("Region", key="new_store_region")
        if st.form_submit_button("Add store"):
            with ui.user_errors("Adding the store"):
                catalogue.add_store(store_name, region)
                st.success(f"Store {store_name.strip()} added.")

"""Catalogue: stores, brands, reference images for brand recognition, planogram targets.

Every successful change re-runs the page (and with it app.py's sidebar store list), so tables and
pickers show it at once; its messages survive the re-run (``ui.rerun_with_messages``).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from skuaudit import catalogue, catalogue_csv, ui
from skuaudit.config import get_settings
from skuaudit.images import UPLOAD_TYPES
from skuaudit.recognition import detection_crop, enrol_from_detection, enrol_reference
from skuaudit.storage.queries import (
    BrandRow,
    list_brands,
    list_stores,
    planogram_for_store,
    product_detections,
    recent_audits,
)

ui.ensure_routed()


def _brand_picker(
    label: str, brands: list[BrandRow], key: str, format_func: Callable[[BrandRow], str]
) -> BrandRow:
    """A brand selectbox that stays on the chosen brand when its label changes.

    A selectbox remembers its choice by label, so renaming the brand (or a new reference count in
    the label) would silently drop it back to the first brand. The chosen id is kept apart and put
    back into the widget on every run.
    """
    by_id = {b.id: b for b in brands}
    chosen_key = f"{key}:id"

    def remember() -> None:
        st.session_state[chosen_key] = st.session_state[key]

    chosen = st.session_state.get(chosen_key)
    if chosen in by_id:
        st.session_state[key] = chosen
    elif chosen is not None:
        st.warning("The brand you had picked no longer exists; pick another one.")
    brand_id = st.selectbox(
        label, list(by_id), format_func=lambda i: format_func(by_id[i]), key=key, on_change=remember
    )
    st.session_state[chosen_key] = brand_id
    return by_id[brand_id]


def _delete_section(kind: str, item_id: int, name: str) -> None:
    """What deleting a store or brand does, a confirmation, and the button."""
    impact = (catalogue.store_deletion if kind == "store" else catalogue.brand_deletion)(item_id)
    st.caption(impact.message())
    sure = st.checkbox(f"Yes, delete {name}", key=f"delete_{kind}_sure_{item_id}")
    if st.button(f"Delete {kind}", key=f"delete_{kind}_{item_id}", disabled=not sure):
        with ui.user_errors(f"Deleting the {kind}"):
            delete = catalogue.delete_store if kind == "store" else catalogue.delete_brand
            ui.rerun_with_messages(f"delete_{kind}", delete(item_id).message(done=True))


st.title("Catalogue")
ui.require_analyst()
ctx = ui.context()
brands_tab, references_tab, planogram_tab, stores_tab, files_tab = st.tabs(
    ["Brands", "Reference images", "Planogram", "Stores", "Import / export (CSV)"]
)
brands = list_brands()
brand_names = {b.id: b.name for b in brands}

with brands_tab:
    st.dataframe(
        pd.DataFrame(
            [b.__dict__ for b in brands],
            columns=["name", "manufacturer", "is_own", "color_hex", "reference_count"],
        ),
        hide_index=True,
        column_config={
            "is_own": st.column_config.CheckboxColumn("own brand"),
            "color_hex": st.column_config.TextColumn("colour"),
            "reference_count": st.column_config.NumberColumn("reference images"),
        },
        key="catalogue_brands",
    )
    with st.form("add_brand", clear_on_submit=True):
        st.subheader("Add a brand")
        name = st.text_input("Name", key="new_brand_name")
        manufacturer = st.text_input("Manufacturer", key="new_brand_manufacturer")
        is_own = st.checkbox("Our own brand", key="new_brand_own")
        default_colour = catalogue.next_brand_colour()
        colour = st.color_picker(
            "Colour",
            default_colour,
            # keyed by the default: after a brand is added, the form offers the next colour
            key=f"new_brand_colour_{default_colour}",
            help="A colour no other brand has, from the palette; pick another if you like",
        )
        if st.form_submit_button("Add brand"):
            with ui.user_errors("Adding the brand"):
                catalogue.add_brand(name, manufacturer, is_own, colour)
                ui.rerun_with_messages("add_brand", f"Brand {name.strip()} added.")
    ui.show_messages("add_brand")
    ui.show_messages("delete_brand")
    if brands:
        st.subheader("Edit a brand")
        edited = _brand_picker("Brand", brands, "edit_brand", lambda b: b.name)
        # NOTE: the form and its button are keyed by the brand id: a click on the form of a brand
        # that is no longer picked (deleted meanwhile) matches no button, so it saves nothing.
        with st.form(f"edit_brand_form_{edited.id}"):
            new_name = st.text_input("Name", edited.name, key=f"edit_name_{edited.id}")
            new_manufacturer = st.text_input(
                "Manufacturer", edited.manufacturer, key=f"edit_manufacturer_{edited.id}"
            )
            new_own = st.checkbox("Our own brand", edited.is_own, key=f"edit_own_{edited.id}")
            new_colour = st.color_picker("Colour", edited.color_hex, key=f"edit_colour_{edited.id}")
            if st.form_submit_button("Save brand", key=f"save_brand_{edited.id}"):
                with ui.user_errors("Saving the brand"):
                    catalogue.update_brand(
                        edited.id,
                        name=new_name,
                        manufacturer=new_manufacturer,
                        is_own=new_own,
                        color_hex=new_colour,
                    )
                    ui.rerun_with_messages("edit_brand", f"Brand {new_name.strip()} saved.")
        ui.show_messages("edit_brand")
        with st.expander(f"Delete {edited.name}"):
            _delete_section("brand", edited.id, edited.name)

with references_tab:
    if not brands:
        st.info("Add a brand first.")
    else:
        st.caption(
            "A handful of crops of a brand's packs (one facing each) is enough: products are "
            "recognised by similarity to these references, no retraining needed."
        )
        target = _brand_picker(
            "Brand", brands, "ref_brand", lambda b: f"{b.name} ({b.reference_count} references)"
        )
        crops = st.file_uploader(
            "Upload product crops",
            type=list(UPLOAD_TYPES),
            accept_multiple_files=True,
            key="ref_uploads",
            max_upload_size=get_settings().max_upload_mb,
        )
        if crops and st.button("Enrol uploaded crops", key="ref_enrol_uploads"):
            enrolled, failed = [], []
            for crop in crops:
                try:
                    enrol_reference(target.id, crop.getvalue(), "upload")
                    enrolled.append(f"{crop.name} enrolled for {target.name}.")
                except ui.USER_ERRORS as exc:
                    failed.append(f"Enrolling {crop.name} failed: {exc}")
            ui.rerun_with_messages("references", *enrolled, errors=tuple(failed))
        ui.show_messages("references")
        st.subheader("Pick from a past audit")
        audits = recent_audits()
        if not audits:
            st.caption("No saved audit with photos yet.")
        else:
            picked_audit = st.selectbox(
                "Audit",
                audits,
                key="ref_audit",
                format_func=lambda a: (
                    f"#{a.id} · {a.store_name} · {a.created_at:%Y-%m-%d %H:%M} · "
                    f"{a.product_count} products"
                ),
            )
            detections = product_detections(picked_audit.id)
            if detections:
                picked = st.selectbox(
                    "Detection",
                    detections,
                    key="ref_detection",
                    format_func=lambda d: (
                        f"image {d.image_index} · row {d.shelf_row} · x {d.xyxy[0]:.0f}"
                        f" · {brand_names.get(d.brand_id, 'unknown')}"
                    ),
                )
                with ui.user_errors("Cutting the crop"):
                    st.image(detection_crop(picked.id)[:, :, ::-1], width=120)
                if st.button(f"Enrol as a reference of {target.name}", key="ref_enrol_detection"):
                    with ui.user_errors("Enrolling the crop"):
                        enrol_from_detection(picked.id, target.id)
                        ui.rerun_with_messages("detection", f"Crop enrolled for {target.name}.")
                ui.show_messages("detection")

with planogram_tab:
    stores = list_stores()
    if not stores or not brands:
        st.info("Add stores and brands first.")
    else:
        store = st.selectbox(
            "Store",
            stores,
            format_func=lambda s: s.name,
            key="plan_store",
            index=next((i for i, s in enumerate(stores) if s.id == ctx.store_id), 0),
        )
        current = planogram_for_store(store.id)
        with st.form(f"planogram_{store.id}"):
            st.caption("Expected facings per brand in this store (0 = no target).")
            targets = {
                b.id: st.number_input(
                    b.name,
                    min_value=0,
                    step=1,
                    value=current.get(b.id, 0),
                    key=f"target_{store.id}_{b.id}",
                )
                for b in brands
            }
            if st.form_submit_button("Save targets"):
                with ui.user_errors("Saving the planogram"):
                    catalogue.set_planogram(store.id, targets)
                    st.success(f"Planogram of {store.name} saved.")

with stores_tab:
    st.dataframe(
        pd.DataFrame([s.__dict__ for s in list_stores()], columns=["name", "region"]),
        hide_index=True,
        key="catalogue_stores",
    )
    with st.form("add_store", clear_on_submit=True):
        store_name = st.text_input("Store name", key="new_store_name")
        region = st.text_input("Region", key="new_store_region")
        if st.form_submit_button("Add store"):
            with ui.user_errors("Adding the store"):
                catalogue.add_store(store_name, region)
                ui.rerun_with_messages("add_store", f"Store {store_name.strip()} added.")
    ui.show_messages("add_store")
    ui.show_messages("delete_store")
    if stores := list_stores():
        st.subheader("Delete a store")
        doomed = st.selectbox(
            "Store", stores, format_func=lambda s: s.name, key="delete_store_pick"
        )
        _delete_section("store", doomed.id, doomed.name)

with files_tab:
    st.caption(
        "Fill the catalogue from spreadsheets saved as CSV (comma or semicolon separated, "
        "UTF-8): rows are matched by name, new ones added, known ones updated; a file is "
        "checked line by line first and imported whole or not at all. Import stores and "
        "brands before planogram targets. Samples: data/catalogue/ in the skuaudit folder."
    )
    ui.show_messages("csv_import")
    import_round = st.session_state.setdefault("csv_import_round", 0)
    for kind in catalogue_csv.KINDS:
        st.subheader(kind.capitalize())
        required, columns = catalogue_csv.REQUIRED[kind], catalogue_csv.COLUMNS[kind]
        st.caption(
            "Columns: "
            + ", ".join(f"**{c}**" if c in required else c for c in columns)
            + (
                " (type: own or competitor; colour: #1f77b4, blank for a palette colour)"
                if kind == "brands"
                else ""
            )
            + (" (target: expected facings, 0 removes the target)" if kind == "planogram" else "")
        )
        left, right = st.columns([3, 1])
        upload = left.file_uploader(
            f"{kind}.csv",
            type=["csv", "txt"],
            key=f"csv_{kind}_{import_round}",
            label_visibility="collapsed",
        )
        if upload is not None and left.button(f"Import {upload.name}", key=f"csv_import_{kind}"):
            with ui.user_errors(f"Importing {upload.name}"):
                result = catalogue_csv.import_csv(kind, upload.getvalue(), file_name=upload.name)
                st.session_state["csv_import_round"] = import_round + 1  # empties the uploaders
                ui.rerun_with_messages("csv_import", f"{upload.name}: {result.message()}")
        right.download_button(
            f"Download {kind}.csv",
            catalogue_csv.export_csv(kind),
            file_name=f"{kind}.csv",
            mime="text/csv",
            key=f"csv_export_{kind}",
        )

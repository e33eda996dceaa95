"""Catalogue: stores, brands and their products (SKUs), reference images for product recognition,
planogram targets per brand and per product.

Every successful change re-runs the page (and with it app.py's sidebar store list), so tables and
pickers show it at once; its messages survive the re-run (``ui.rerun_with_messages``).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from skuaudit import catalogue, catalogue_csv, enrolment, ui
from skuaudit.config import get_settings
from skuaudit.images import UPLOAD_TYPES
from skuaudit.storage.queries import (
    BrandRow,
    ProductRow,
    list_brands,
    list_products,
    list_stores,
    planogram_for_store,
    product_planogram_for_store,
    recent_audits,
)

ui.ensure_routed()

THUMBNAILS_PER_ROW = 4


def _picker(label: str, items: list, key: str, format_func: Callable) -> object:
    """A selectbox of brands or products that stays on the chosen one when its label changes.

    A selectbox remembers its choice by label, so renaming the item (or a new reference count in
    the label) would silently drop it back to the first one. The chosen id is kept apart and put
    back into the widget on every run.
    """
    by_id = {item.id: item for item in items}
    chosen_key = f"{key}:id"

    def remember() -> None:
        st.session_state[chosen_key] = st.session_state[key]

    chosen = st.session_state.get(chosen_key)
    if chosen in by_id:
        st.session_state[key] = chosen
    elif chosen is not None:
        st.warning(f"The {label.lower()} you had picked no longer exists; pick another one.")
    item_id = st.selectbox(
        label, list(by_id), format_func=lambda i: format_func(by_id[i]), key=key, on_change=remember
    )
    st.session_state[chosen_key] = item_id
    return by_id[item_id]


def _brand_picker(
    label: str, brands: list[BrandRow], key: str, format_func: Callable[[BrandRow], str]
) -> BrandRow:
    return _picker(label, brands, key, format_func)


@st.cache_resource(show_spinner="Loading the recognition model…")
def _recognizer():
    from skuaudit.recognition import Recognizer

    return Recognizer.load()


def _show_separation() -> None:
    """The look-alike products of the gallery, from the current embedding."""
    from skuaudit.recognition import Gallery, RecognitionModelError

    try:
        recognizer = _recognizer()
    except RecognitionModelError as exc:
        st.error(f"Checking the gallery failed: {exc}")
        return
    with ui.user_errors("Checking the gallery"):
        gallery = Gallery.from_database(recognizer=recognizer)
        labels = {p.id: p.label for p in list_products()}
        result = enrolment.gallery_separation(gallery, labels, top=10)
        if result.leave_one_out_accuracy is not None:
            st.metric(
                "References that find their own product first",
                f"{result.leave_one_out_accuracy:.0%}",
                help="Each reference is matched against all the others: the share whose "
                "nearest reference is of the same product. Products with one reference are left "
                "out.",
            )
        if result.pairs.empty:
            st.caption("Enrol references of at least two products to compare them.")
            return
        st.caption(
            f"The closest pairs of products among {result.references} references: recognition "
            "mixes these up first. A pair with confusions needs more, or more distinct, "
            "references (another side of the pack, other light)."
        )
        st.dataframe(
            result.pairs,
            hide_index=True,
            column_config={
                "product_a": st.column_config.TextColumn("product"),
                "product_b": st.column_config.TextColumn("closest other product"),
                "same_brand": st.column_config.CheckboxColumn("same brand"),
                "similarity": st.column_config.ProgressColumn(
                    "similarity", format="%.3f", min_value=0.0, max_value=1.0
                ),
                "confusions": st.column_config.NumberColumn(
                    "confusions", help="References whose nearest reference is of the other product"
                ),
            },
            key="ref_separation_table",
        )


def _show_references(product: ProductRow) -> None:
    """The references of a product, weak ones marked, each with a delete button."""
    checks = enrolment.reference_report(product_id=product.id)
    if not checks:
        st.info(
            f"{product.label} has no reference image yet: upload a pack shot or pick a "
            "facing from a past audit below."
        )
        return
    weak = sum(c.is_weak for c in checks)
    st.caption(
        f"{len(checks)} reference(s) of {product.label}"
        + (
            f", {weak} weak (marked ⚠): replace them with sharper, larger or other views."
            if weak
            else ", none weak."
        )
    )
    for start in range(0, len(checks), THUMBNAILS_PER_ROW):
        row = checks[start : start + THUMBNAILS_PER_ROW]
        for column, check in zip(st.columns(THUMBNAILS_PER_ROW)[: len(row)], row, strict=True):
            with column:
                st.image(check.image_bgr[:, :, ::-1], width=110)
                st.caption(
                    f"#{check.reference_id} · {check.width}x{check.height} px · {check.source}"
                    + "".join(f"  \n⚠ {issue}" for issue in check.issues)
                )
                if st.button("Delete", key=f"ref_delete_{check.reference_id}"):
                    with ui.user_errors("Deleting the reference"):
                        enrolment.delete_reference(check.reference_id)
                        ui.rerun_with_messages(
                            "references", f"Reference #{check.reference_id} deleted."
                        )


def _pick_from_audit(product: ProductRow) -> None:
    """The visual picker: a past audit's photo with numbered boxes, and a box number to enrol."""
    audits = recent_audits()
    if not audits:
        st.caption("No saved audit with photos yet.")
        return
    picked_audit = st.selectbox(
        "Audit",
        audits,
        key="ref_audit",
        format_func=lambda a: (
            f"#{a.id} · {a.store_name} · {a.created_at:%Y-%m-%d %H:%M} · {a.product_count} products"
        ),
    )
    with ui.user_errors("Opening the audit"):
        images = enrolment.picker_images(picked_audit.id)
        image = images[0]
        if len(images) > 1:
            index = st.selectbox(
                "Photo",
                range(len(images)),
                format_func=lambda i: f"photo {i + 1}",
                key="ref_audit_image",
            )
            image = images[index]
        if not image.detection_ids:
            st.caption("No product was found on this photo.")
            return
        st.image(image.image_bgr[:, :, ::-1], caption="Product boxes, numbered row by row")
        number = st.number_input(
            f"Box number (1 to {len(image.detection_ids)})",
            min_value=1,
            max_value=len(image.detection_ids),
            step=1,
            key=f"ref_box_{picked_audit.id}_{image.image_index}",
        )
        detection_id = image.detection_ids[int(number) - 1]
        st.image(
            enrolment.detection_crop(detection_id)[:, :, ::-1],
            width=120,
            caption=f"box {number}: recognised as {image.labels[int(number) - 1]}",
        )
        if st.button(
            f"Enrol box {number} as a reference of {product.label}", key="ref_enrol_detection"
        ):
            with ui.user_errors("Enrolling the crop"):
                enrolment.enrol_from_detection(detection_id, product.id)
                st.session_state["ref_check_gallery"] = True
                ui.rerun_with_messages("detection", f"Box {number} enrolled for {product.label}.")
    ui.show_messages("detection")


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
brands_tab, products_tab, references_tab, planogram_tab, stores_tab, files_tab = st.tabs(
    ["Brands", "Products", "Reference images", "Planogram", "Stores", "Import / export (CSV)"]
)
brands = list_brands()
brand_names = {b.id: b.name for b in brands}

with brands_tab:
    st.dataframe(
        pd.DataFrame(
            [b.__dict__ for b in brands],
            columns=[
                "name",
                "manufacturer",
                "is_own",
                "color_hex",
                "product_count",
                "reference_count",
            ],
        ),
        hide_index=True,
        column_config={
            "is_own": st.column_config.CheckboxColumn("own brand"),
            "color_hex": st.column_config.TextColumn("colour"),
            "product_count": st.column_config.NumberColumn("products"),
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

with products_tab:
    if not brands:
        st.info("Add a brand first.")
    else:
        owner = _brand_picker(
            "Brand", brands, "prod_brand", lambda b: f"{b.name} ({b.product_count} products)"
        )
        products = list_products(brand_id=owner.id)
        st.dataframe(
            pd.DataFrame(
                [p.__dict__ for p in products], columns=["name", "gtin", "reference_count"]
            ),
            hide_index=True,
            column_config={
                "name": st.column_config.TextColumn("product"),
                **ui.GTIN_COLUMN,
                "reference_count": st.column_config.NumberColumn("reference images"),
            },
            key="catalogue_products",
        )
        with st.form(f"add_product_{owner.id}", clear_on_submit=True):
            st.subheader(f"Add a product of {owner.name}")
            product_name = st.text_input(
                "Name",
                key=f"new_product_name_{owner.id}",
                help="e.g. the flavour and pack: Orange juice 1 l",
            )
            gtin = st.text_input(
                "EAN / GTIN (optional)",
                key=f"new_product_gtin_{owner.id}",
                help="8, 12, 13 or 14 digits; the check digit is verified",
            )
            if st.form_submit_button("Add product"):
                with ui.user_errors("Adding the product"):
                    catalogue.add_product(owner.id, product_name, gtin)
                    ui.rerun_with_messages(
                        "add_product", f"Product {product_name.strip()} added to {owner.name}."
                    )
        ui.show_messages("add_product")
        if products:
            st.subheader("Edit a product")
            product = _picker("Product", products, f"edit_product_{owner.id}", lambda p: p.name)
            with st.form(f"edit_product_form_{product.id}"):
                new_name = st.text_input("Name", product.name, key=f"edit_pname_{product.id}")
                new_gtin = st.text_input(
                    "EAN / GTIN", product.gtin or "", key=f"edit_gtin_{product.id}"
                )
                if st.form_submit_button("Save product", key=f"save_product_{product.id}"):
                    with ui.user_errors("Saving the product"):
                        catalogue.update_product(product.id, name=new_name, gtin=new_gtin)
                        ui.rerun_with_messages("edit_product", f"Product {new_name.strip()} saved.")
            sure = st.checkbox(
                f"Delete {product.name} with its {product.reference_count} reference image(s)",
                key=f"delete_product_sure_{product.id}",
                help="Past audits keep their figures: their facings of it count as the brand's "
                "unknown product.",
            )
            if st.button("Delete product", key=f"delete_product_{product.id}", disabled=not sure):
                with ui.user_errors("Deleting the product"):
                    name = catalogue.delete_product(product.id)
                    ui.rerun_with_messages("edit_product", f"Product {name} deleted.")
            ui.show_messages("edit_product")

with references_tab:
    products_all = list_products()
    if not products_all:
        st.info("Add a product first (Products tab): references belong to a product.")
    else:
        st.caption(
            "A handful of pictures of a product's pack is enough: one facing each, the front and "
            "other sides, in other light. Facings are recognised by similarity to these "
            "references, no retraining needed."
        )
        target = _picker(
            "Product",
            products_all,
            "ref_product",
            lambda p: f"{p.label} ({p.reference_count} references)",
        )
        ui.show_messages("references")
        _show_references(target)

        st.subheader("Upload pack shots")
        # NOTE: a new key after each enrolment gives an empty uploader: files still in it would
        # be enrolled again by the next click.
        upload_round = st.session_state.setdefault("ref_upload_round", 0)
        crops = st.file_uploader(
            f"Pictures of {target.label}",
            type=list(UPLOAD_TYPES),
            accept_multiple_files=True,
            key=f"ref_uploads_{upload_round}",
            max_upload_size=get_settings().max_upload_mb,
        )
        if crops and st.button("Enrol uploaded pictures", key="ref_enrol_uploads"):
            enrolled, failed = [], []
            for crop in crops:
                try:
                    enrolment.enrol_reference(target.id, crop.getvalue(), "upload")
                    enrolled.append(f"{crop.name} enrolled for {target.label}.")
                except ui.USER_ERRORS as exc:
                    failed.append(f"Enrolling {crop.name} failed: {exc}")
            st.session_state["ref_upload_round"] = upload_round + 1
            st.session_state["ref_check_gallery"] = bool(enrolled)
            ui.rerun_with_messages("references", *enrolled, errors=tuple(failed))

        st.subheader("Pick facings from a past audit")
        _pick_from_audit(target)

        st.subheader("Look-alike products")
        check = st.button("Check the gallery", key="ref_check")
        if check or st.session_state.pop("ref_check_gallery", False):
            _show_separation()
        else:
            st.caption(
                "Compares every reference with every other one in the recognition "
                "model's embedding; runs after each enrolment."
            )

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
        ui.facing_targets_form(
            f"target_{store.id}",
            "Expected facings per brand in this store (0 = no target).",
            {b.id: b.name for b in brands},
            planogram_for_store(store.id),
            button="Save targets",
            action="Saving the planogram",
            save=lambda targets: catalogue.set_planogram(store.id, targets),
            saved=f"Planogram of {store.name} saved.",
        )
        products_all = list_products()
        if products_all:
            ui.facing_targets_form(
                f"ptarget_{store.id}",
                "Expected facings per product in this store (0 = no target). A product with a "
                "target and no facing is a product stockout; a brand without its own target "
                "above is expected to show the sum of its products' targets.",
                {p.id: p.label for p in products_all},
                product_planogram_for_store(store.id),
                button="Save product targets",
                action="Saving the product targets",
                save=lambda targets: catalogue.set_product_planogram(store.id, targets),
                saved=f"Product targets of {store.name} saved.",
            )

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
            + (
                " (target: expected facings, 0 removes the target; product: one of the brand's "
                "products, blank for the brand's own target)"
                if kind == "planogram"
                else ""
            )
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

"""Catalogue page: brands, references, planogram targets and stores, with their validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from skuaudit import catalogue
from skuaudit.datasets.synth import render_product
from skuaudit.demo import demo_catalogue
from skuaudit.images import encode_png
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def page(demo_db_url):
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["role"] = "analyst"
    at.session_state["analyst_user"] = "ana"
    return at.switch_page("pages/catalogue.py").run()


def _submit(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def _scalar(url, query):
    with session_scope(url) as s:
        return s.scalar(query)


@pytest.mark.expected_errors("already exists")
def test_add_brand_and_refuse_duplicate(page, demo_db_url):
    assert not page.exception, page.exception
    page.text_input(key="new_brand_name").input("Oakly")
    page.checkbox(key="new_brand_own").check()
    _submit(page, "Add brand")
    assert "Brand Oakly added" in page.success[0].value
    assert _scalar(demo_db_url, sa.select(m.Brand.is_own).where(m.Brand.name == "Oakly")) is True
    page.text_input(key="new_brand_name").input("kapku")  # demo brand "Kapku", other case
    _submit(page, "Add brand")
    assert "already exists" in page.error[0].value
    assert _scalar(demo_db_url, sa.select(sa.func.count()).select_from(m.Brand)) == 7


def test_edit_brand(page, demo_db_url):
    brand_id = page.selectbox(key="edit_brand").value
    page.text_input(key=f"edit_manufacturer_{brand_id}").input("New Owner")
    _submit(page, "Save brand")
    assert not page.exception and "saved" in page.success[0].value
    assert _brand(demo_db_url, brand_id)[1] == "New Owner"


def _references(url, **where) -> int:
    query = sa.select(sa.func.count()).select_from(m.ReferenceImage)
    for k, v in where.items():
        query = query.where(getattr(m.ReferenceImage, k) == v)
    return _scalar(url, query)


def _first_product(url) -> m.Product:
    """The product the Reference images tab opens on: the first by brand and name."""
    with session_scope(url) as s:
        return s.execute(
            sa.select(m.Product)
            .join(m.Brand, m.Brand.id == m.Product.brand_id)
            .order_by(m.Brand.name, m.Product.name)
            .limit(1)
        ).scalar_one()


@pytest.mark.expected_errors("not a product", "already reference #")
def test_upload_references_good_blank_and_duplicate(page, demo_db_url):
    product = _first_product(demo_db_url)
    assert page.selectbox(key="ref_product").value == product.id
    before = _references(demo_db_url)
    brand = demo_catalogue().brands[0]
    good = encode_png(render_product(brand, brand.families[0], 50, 90, np.random.default_rng(3)))
    blank = encode_png(np.full((90, 50, 3), 240, np.uint8))
    page.file_uploader(key="ref_uploads_0").set_value(
        [("pack.png", good, "image/png"), ("blank.png", blank, "image/png")]
    ).run()
    page.button(key="ref_enrol_uploads").click().run()
    assert not page.exception, page.exception
    assert any("pack.png enrolled" in s.value for s in page.success)
    assert any("blank" in e.value and "not a product" in e.value for e in page.error)
    assert _references(demo_db_url, product_id=product.id) == 4  # 3 demo references + pack.png
    assert _references(demo_db_url) == before + 1
    # the uploader is empty again: a second click cannot enrol the same files twice
    assert not page.file_uploader(key="ref_uploads_1").value
    assert not [b for b in page.button if b.key == "ref_enrol_uploads"]
    # the same picture uploaded again is refused as a duplicate, naming the reference
    page.file_uploader(key="ref_uploads_1").set_value([("again.png", good, "image/png")]).run()
    page.button(key="ref_enrol_uploads").click().run()
    assert any("already reference #" in e.value and "this product" in e.value for e in page.error)
    assert _references(demo_db_url) == before + 1


def test_weak_references_are_marked_and_can_be_deleted(page, demo_db_url):
    from skuaudit.enrolment import enrol_reference

    product = _first_product(demo_db_url)
    brand = demo_catalogue().brands[0]
    pack = render_product(brand, brand.families[0], 90, 150, np.random.default_rng(4))
    small_id = enrol_reference(product.id, pack[::4, ::4].copy(), url=demo_db_url)  # 23x38
    page.run()
    captions = [c.value for c in page.caption]
    assert any(f"#{small_id}" in c and "⚠ small" in c for c in captions)
    assert any("1 weak" in c for c in captions)
    page.button(key=f"ref_delete_{small_id}").click().run()
    assert not page.exception, page.exception
    assert f"Reference #{small_id} deleted." in [s.value for s in page.success]
    assert (
        _scalar(demo_db_url, sa.select(m.ReferenceImage).where(m.ReferenceImage.id == small_id))
        is None
    )
    assert not [b for b in page.button if b.key == f"ref_delete_{small_id}"]


def test_pick_reference_on_the_audit_photo(demo_db_url):
    """The visual picker: a past audit's photo with numbered boxes; box 3 is enrolled, and the
    look-alike list comes after the enrolment."""
    from skuaudit import audit
    from skuaudit.demo import render_demo_shelf
    from skuaudit.enrolment import detection_crop
    from skuaudit.recognition import Gallery
    from skuaudit.storage.queries import list_products, product_detections
    from tests.shelf_fakes import GroundTruthDetector, OracleRecognizer

    shelf = render_demo_shelf(9, 480, 360)
    analysis = audit.analyse_image(
        shelf.image_bgr,
        GroundTruthDetector([shelf]),
        OracleRecognizer({}),
        Gallery(np.zeros(0), np.zeros((0, 64))),
    )
    store_id = _scalar(demo_db_url, sa.select(m.Store.id).limit(1))
    audit_id = audit.save_audit(store_id, [analysis], source="photo", url=demo_db_url)
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["role"] = "analyst"
    at.session_state["analyst_user"] = "ana"
    at.run()
    at.switch_page("pages/catalogue.py").run()
    assert at.selectbox(key="ref_audit").value.id == audit_id
    at.number_input(key=f"ref_box_{audit_id}_0").set_value(3).run()
    assert not at.exception, at.exception
    captions = [img.caption for image in at.get("image") for img in image.proto.imgs]
    assert "box 3: recognised as unknown" in captions  # the crop of box 3, beside the photo
    at.button(key="ref_enrol_detection").click().run()
    assert not at.exception, at.exception
    assert any("Box 3 enrolled" in s.value for s in at.success)
    third = product_detections(audit_id, demo_db_url)[2].id
    with session_scope(demo_db_url) as s:
        ref = s.scalars(sa.select(m.ReferenceImage).where(m.ReferenceImage.source == "audit")).one()
        assert ref.product_id == _first_product(demo_db_url).id
        stored = ref.image_png
    from skuaudit.images import load_image_bytes

    assert load_image_bytes(stored).shape == detection_crop(third, demo_db_url).shape
    # after an enrolment the page lists the closest products of the gallery
    pairs = next(d for d in at.dataframe if "confusions" in d.value.columns).value
    assert len(pairs) == 10  # the closest 10 of the 16 demo products' 120 pairs
    order = list(zip(pairs["confusions"], pairs["similarity"], strict=True))
    assert order == sorted(order, reverse=True)
    assert set(pairs["product_a"]) | set(pairs["product_b"]) <= {
        p.label for p in list_products(demo_db_url)
    }
    assert "References that find their own product first" in [mt.label for mt in at.metric]


def test_planogram_targets(page, demo_db_url):
    store = page.selectbox(key="plan_store").value
    brand_id = _scalar(demo_db_url, sa.select(m.Brand.id).order_by(m.Brand.id).limit(1))
    page.number_input(key=f"target_{store.id}_{brand_id}").set_value(17)
    _submit(page, "Save targets")
    assert not page.exception and "saved" in page.success[0].value
    saved = _scalar(
        demo_db_url,
        sa.select(m.PlanogramTarget.expected_facings).where(
            m.PlanogramTarget.store_id == store.id, m.PlanogramTarget.brand_id == brand_id
        ),
    )
    assert saved == 17


@pytest.mark.parametrize(
    "value, message", [(-1, ">= 0"), (2.5, "whole number"), ("many", "whole number")]
)
def test_planogram_validation_writes_nothing(demo_db_url, value, message):
    store_id = _scalar(demo_db_url, sa.select(m.Store.id).limit(1))
    brand_ids = (
        _scalar(demo_db_url, sa.select(sa.func.min(m.Brand.id))),
        _scalar(demo_db_url, sa.select(sa.func.max(m.Brand.id))),
    )
    before = _scalar(demo_db_url, sa.select(sa.func.sum(m.PlanogramTarget.expected_facings)))
    with pytest.raises(ValueError, match=message):
        catalogue.set_planogram(store_id, {brand_ids[0]: 50, brand_ids[1]: value}, demo_db_url)
    assert (
        _scalar(demo_db_url, sa.select(sa.func.sum(m.PlanogramTarget.expected_facings))) == before
    )


@pytest.mark.expected_errors("already exists")
def test_add_store_and_refuse_duplicate(page, demo_db_url):
    page.text_input(key="new_store_name").input("Corner Shop")
    _submit(page, "Add store")
    assert "Corner Shop added" in page.success[0].value
    page.text_input(key="new_store_name").input("Harbour Foods")
    _submit(page, "Add store")
    assert "already exists" in page.error[0].value
    assert _scalar(demo_db_url, sa.select(sa.func.count()).select_from(m.Store)) == 7


def _names(at: AppTest, table: str) -> list[str]:
    """The ``name`` column of the ``"brands"`` or the ``"stores"`` table."""
    marker = {"brands": "manufacturer", "stores": "region"}[table]
    return list(next(d for d in at.dataframe if marker in d.value.columns).value["name"])


def _brand(url, brand_id: int) -> tuple[str, str]:
    with session_scope(url) as s:
        brand = s.get(m.Brand, brand_id)
        return brand.name, brand.manufacturer


def _all_brands(url) -> dict[int, tuple[str, str]]:
    with session_scope(url) as s:
        return {b.id: (b.name, b.manufacturer) for b in s.scalars(sa.select(m.Brand))}


def test_new_brand_and_store_show_at_once(page):
    page.text_input(key="new_brand_name").input("Walkbrand")
    _submit(page, "Add brand")
    assert not page.exception, page.exception
    assert [s.value for s in page.success] == ["Brand Walkbrand added."]
    assert "Walkbrand" in _names(page, "brands")
    assert "Walkbrand" in page.selectbox(key="edit_brand").options
    page.text_input(key="new_store_name").input("Walk Store")
    _submit(page, "Add store")
    assert [s.value for s in page.success] == ["Store Walk Store added."]
    assert "Walk Store" in _names(page, "stores")
    assert "Walk Store" in page.selectbox(key="plan_store").options


@pytest.mark.expected_errors("needs a name")
def test_rename_then_save_again_edits_the_chosen_brand(page, demo_db_url):
    page.text_input(key="new_brand_name").input("Walkbrand")
    _submit(page, "Add brand")
    brand_id = _scalar(demo_db_url, sa.select(m.Brand.id).where(m.Brand.name == "Walkbrand"))
    page.selectbox(key="edit_brand").set_value(brand_id).run()
    page.text_input(key=f"edit_name_{brand_id}").input("Walkbrand2")
    _submit(page, "Save brand")
    assert [s.value for s in page.success] == ["Brand Walkbrand2 saved."]
    picker = page.selectbox(key="edit_brand")
    assert (picker.value, picker.options[picker.index]) == (brand_id, "Walkbrand2")
    assert "Walkbrand2" in _names(page, "brands")
    assert "Walkbrand" not in _names(page, "brands")
    others = {k: v for k, v in _all_brands(demo_db_url).items() if k != brand_id}

    page.text_input(key=f"edit_name_{brand_id}").input("")
    _submit(page, "Save brand")
    assert not page.success and "needs a name" in page.error[0].value
    assert page.selectbox(key="edit_brand").value == brand_id
    page.text_input(key=f"edit_name_{brand_id}").input("Walkbrand3")
    page.text_input(key=f"edit_manufacturer_{brand_id}").input("Walk Co")
    _submit(page, "Save brand")
    assert [s.value for s in page.success] == ["Brand Walkbrand3 saved."]
    assert _brand(demo_db_url, brand_id) == ("Walkbrand3", "Walk Co")
    assert {k: v for k, v in _all_brands(demo_db_url).items() if k != brand_id} == others


def test_edit_form_of_a_brand_changed_elsewhere(page, demo_db_url):
    brands = _all_brands(demo_db_url)
    brand_id = max(brands)
    page.selectbox(key="edit_brand").set_value(brand_id).run()
    catalogue.update_brand(
        brand_id,
        name="Renamed",
        manufacturer="",
        is_own=False,
        color_hex="#123456",
        url=demo_db_url,
    )  # another analyst renames it: the picker follows
    page.run()
    picker = page.selectbox(key="edit_brand")
    assert (picker.value, picker.options[picker.index]) == (brand_id, "Renamed")

    page.text_input(key=f"edit_manufacturer_{brand_id}").input("Lost Co")
    with session_scope(demo_db_url) as s:
        s.delete(s.get(m.Brand, brand_id))  # ... then deletes it before we save
    _submit(page, "Save brand")
    assert not page.exception and not page.success
    assert "no longer exists" in page.warning[0].value
    del brands[brand_id]
    assert _all_brands(demo_db_url) == brands


@pytest.mark.expected_errors("check digit")
def test_products_tab_add_edit_and_delete(page, demo_db_url):
    kapku = _scalar(demo_db_url, sa.select(m.Brand.id).where(m.Brand.name == "Kapku"))
    page.selectbox(key="prod_brand").set_value(kapku).run()
    shown = next(d for d in page.dataframe if "gtin" in d.value.columns).value
    assert list(shown["name"]) == ["Black can", "Blue can", "White can"]
    page.text_input(key=f"new_product_name_{kapku}").input("Cherry can")
    page.text_input(key=f"new_product_gtin_{kapku}").input("4006381333932")  # last digit wrong
    _submit(page, "Add product")
    assert "check digit" in page.error[0].value and "typing error" in page.error[0].value
    page.text_input(key=f"new_product_name_{kapku}").input("Cherry can")
    page.text_input(key=f"new_product_gtin_{kapku}").input("4006381333931")
    _submit(page, "Add product")
    assert not page.exception, page.exception
    assert "Product Cherry can added to Kapku." in [s.value for s in page.success]
    cherry = _scalar(demo_db_url, sa.select(m.Product.id).where(m.Product.name == "Cherry can"))
    assert (
        "Cherry can"
        in next(d for d in page.dataframe if "gtin" in d.value.columns).value["name"].tolist()
    )

    page.selectbox(key=f"edit_product_{kapku}").set_value(cherry).run()
    page.text_input(key=f"edit_pname_{cherry}").input("Cherry can 330 ml")
    _submit(page, "Save product")
    assert "Product Cherry can 330 ml saved." in [s.value for s in page.success]
    assert _scalar(demo_db_url, sa.select(m.Product.name).where(m.Product.id == cherry)) == (
        "Cherry can 330 ml"
    )
    assert page.button(key=f"delete_product_{cherry}").disabled  # until ticked
    page.checkbox(key=f"delete_product_sure_{cherry}").check().run()
    page.button(key=f"delete_product_{cherry}").click().run()
    assert "Product Cherry can 330 ml deleted." in [s.value for s in page.success]
    assert _scalar(demo_db_url, sa.select(m.Product).where(m.Product.id == cherry)) is None


def test_product_planogram_targets(page, demo_db_url):
    store = page.selectbox(key="plan_store").value
    product = _first_product(demo_db_url)
    page.number_input(key=f"ptarget_{store.id}_{product.id}").set_value(9)
    _submit(page, "Save product targets")
    assert not page.exception and f"Product targets of {store.name} saved." in [
        s.value for s in page.success
    ]
    saved = _scalar(
        demo_db_url,
        sa.select(m.ProductTarget.expected_facings).where(
            m.ProductTarget.store_id == store.id, m.ProductTarget.product_id == product.id
        ),
    )
    assert saved == 9


def test_new_brands_default_to_distinct_colours(page, demo_db_url):
    colours = set()
    for name in ("Oakly", "Pinewood"):
        default = next(c for c in page.color_picker if c.key.startswith("new_brand_colour")).value
        assert default == catalogue.next_brand_colour(demo_db_url)
        page.text_input(key="new_brand_name").input(name)
        _submit(page, "Add brand")
        colours.add(_scalar(demo_db_url, sa.select(m.Brand.color_hex).where(m.Brand.name == name)))
    assert len(colours) == 2 and colours <= set(catalogue.BRAND_PALETTE)


def test_delete_a_store_says_what_it_affects_and_asks_first(page, demo_db_url):
    from skuaudit.storage.queries import list_stores

    page.selectbox(key="delete_store_pick").set_value(
        next(s for s in list_stores(demo_db_url) if s.name == "Harbour Foods")
    ).run()
    text = " ".join(c.value for c in page.caption)
    assert "Deleting store Harbour Foods" in text and "audit(s) keep their history" in text
    store_id = _scalar(demo_db_url, sa.select(m.Store.id).where(m.Store.name == "Harbour Foods"))
    assert page.button(key=f"delete_store_{store_id}").disabled  # not before the confirmation
    page.checkbox(key=f"delete_store_sure_{store_id}").check().run()
    page.button(key=f"delete_store_{store_id}").click().run()
    assert not page.exception, page.exception
    assert any("Deleted store Harbour Foods" in s.value for s in page.success)
    assert "Harbour Foods" not in _names(page, "stores")
    assert "Harbour Foods" not in page.sidebar.selectbox(key="store").options
    audits = sa.select(sa.func.count()).select_from(m.Audit).where(m.Audit.store_id == store_id)
    assert _scalar(demo_db_url, audits) == 6  # the demo's weekly audits stay


def test_delete_a_brand(page, demo_db_url):
    brand_id = page.selectbox(key="edit_brand").value
    name = _brand(demo_db_url, brand_id)[0]
    page.checkbox(key=f"delete_brand_sure_{brand_id}").check().run()
    page.button(key=f"delete_brand_{brand_id}").click().run()
    assert any(f"Deleted brand {name}" in s.value for s in page.success)
    assert name not in _names(page, "brands")


def test_import_a_catalogue_from_csv(page, demo_db_url):
    samples = Path(__file__).resolve().parents[2] / "data" / "catalogue"
    for kind in ("stores", "brands", "planogram"):
        upload = page.file_uploader(key=f"csv_{kind}_{page.session_state['csv_import_round']}")
        upload.set_value([(f"{kind}.csv", (samples / f"{kind}.csv").read_bytes(), "text/csv")])
        page.run()
        page.button(key=f"csv_import_{kind}").click().run()
        assert not page.exception, page.exception
        assert any(s.value.startswith(f"{kind}.csv: {kind}:") for s in page.success)
    stores = _scalar(demo_db_url, sa.select(sa.func.count()).select_from(m.Store))
    assert stores == 6  # the sample's stores are the demo's: matched by name, none added
    assert _scalar(demo_db_url, sa.select(m.Brand.is_own).where(m.Brand.name == "Sunvale"))
    # the uploaders are empty again: no second import of the same file by a second click
    assert not [b for b in page.button if b.key and b.key.startswith("csv_import_")]


@pytest.mark.expected_errors(r"Importing bad.csv failed: bad.csv line 2: type must be own")
def test_a_bad_csv_says_which_line(page, demo_db_url):
    before = _scalar(demo_db_url, sa.select(sa.func.count()).select_from(m.Brand))
    page.file_uploader(key="csv_brands_0").set_value(
        [("bad.csv", b"name,type\nZed,ours\n", "text/csv")]
    ).run()
    page.button(key="csv_import_brands").click().run()
    assert "bad.csv line 2" in page.error[0].value and "/tmp" not in page.error[0].value
    assert _scalar(demo_db_url, sa.select(sa.func.count()).select_from(m.Brand)) == before

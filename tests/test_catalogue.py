"""Catalogue edits: default brand colours, deleting stores and brands (audits keep their history),
CSV import and export of stores, brands and planogram targets, and the ``skuaudit catalogue`` CLI.

Deletion and import run on SQLite and on a real PostgreSQL server (``storage_url``)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from skuaudit import catalogue, catalogue_csv, reports
from skuaudit.audit import ImageAnalysis, save_audit
from skuaudit.detections import Detections
from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from skuaudit.storage.queries import (
    list_brands,
    list_products,
    list_stores,
    planogram_for_store,
    product_planogram_for_store,
    store_id_by_name,
)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "catalogue"


def _count(url, model, *where) -> int:
    with session_scope(url) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _audit(url, store_id: int, brand_id: int, product_id: int = -1) -> int:
    """One saved photo audit with two facings of ``brand_id`` (of ``product_id``, when given)."""
    det = Detections(
        [[0, 0, 10, 20], [12, 0, 22, 20]],
        class_id=[0, 0],
        data={
            "brand_id": np.array([brand_id, brand_id]),
            "brand_score": np.full(2, 0.9),
            "product_id": np.array([product_id, product_id]),
            "shelf_row": np.zeros(2, int),
        },
    )
    image = np.zeros((30, 40, 3), np.uint8)
    return save_audit(store_id, [ImageAnalysis(image, det)], source="photo", url=url)


# --------------------------------------------------------------------------- colours


def test_new_brands_get_distinct_palette_colours(db_url):
    colours = []
    for i in range(5):
        catalogue.add_brand(f"Brand {i}", url=db_url)
        colours.append(next(b.color_hex for b in list_brands(db_url) if b.name == f"Brand {i}"))
    assert colours == list(catalogue.BRAND_PALETTE[:5])
    assert len(set(catalogue.BRAND_PALETTE)) == len(catalogue.BRAND_PALETTE) >= 20
    # red and grey stay for gaps and unrecognised products
    assert not {"#d62728", "#7f7f7f"} & set(catalogue.BRAND_PALETTE)
    # a colour chosen by hand is respected; the default skips it
    catalogue.add_brand("Chosen", color_hex=catalogue.BRAND_PALETTE[5], url=db_url)
    assert catalogue.next_brand_colour(db_url) == catalogue.BRAND_PALETTE[6]


# --------------------------------------------------------------------------- deleting


def test_deleting_a_store_keeps_its_audits(storage_url):
    url = storage_url
    north = catalogue.add_store("North", "N", url=url)
    south = catalogue.add_store("South", "S", url=url)
    brand = catalogue.add_brand("Acme", url=url)
    catalogue.set_planogram(north, {brand: 3}, url=url)
    catalogue.set_planogram(south, {brand: 3}, url=url)
    audit_id = _audit(url, north, brand)
    _audit(url, south, brand)

    impact = catalogue.store_deletion(north, url)
    assert (impact.audits, impact.planogram_targets) == (1, 1)
    assert "Its 1 audit(s) keep their history" in impact.message()
    assert _count(url, m.Store) == 2  # asking changes nothing

    catalogue.delete_store(north, url)
    assert [s.name for s in list_stores(url)] == ["South"]
    assert _count(url, m.PlanogramTarget, m.PlanogramTarget.store_id == north) == 0
    assert _count(url, m.Audit, m.Audit.id == audit_id) == 1
    with pytest.raises(UserError, match="no store named 'North'"):
        store_id_by_name("North", url)
    with pytest.raises(UserError, match="was it deleted"):
        _audit(url, north, brand)

    # history: the share of shelf still counts its audit; current figures leave it out
    today = date.today()
    shares = reports.share_of_shelf(url, today - timedelta(days=1), today)
    assert int(shares["facings"].sum()) == 4
    assert reports.availability_by_store(url)["store"].tolist() == ["South"]
    assert reports.current_stockouts(url).empty or "North" not in set(
        reports.current_stockouts(url)["store"]
    )
    assert "Store: North (deleted)" in [s.label for s in reports.scopes(url)]

    # the same name brings the store back, with its history
    assert catalogue.add_store("north", "N2", url=url) == north
    assert {s.name: s.region for s in list_stores(url)} == {"North": "N2", "South": "S"}


def test_a_store_nothing_refers_to_is_removed_outright(db_url):
    store = catalogue.add_store("Empty", url=db_url)
    done = catalogue.delete_store(store, db_url)
    assert done.message(done=True).startswith("Deleted store Empty")
    assert "No audit refers to it" in done.message()
    assert _count(db_url, m.Store) == 0
    with pytest.raises(UserError, match="does not exist"):
        catalogue.delete_store(store, db_url)


def test_deleting_a_brand_keeps_past_figures_and_stops_recognising_it(storage_url):
    url = storage_url
    store = catalogue.add_store("North", url=url)
    acme = catalogue.add_brand("Acme", url=url)
    cola = catalogue.add_product(acme, "Cola", gtin="4006381333931", url=url)
    lime = catalogue.add_product(acme, "Lime", url=url)
    catalogue.set_planogram(store, {acme: 2}, url=url)
    catalogue.set_product_planogram(store, {cola: 1, lime: 1}, url=url)
    with session_scope(url) as s:
        s.add(m.ReferenceImage(product_id=cola, image_png=b"png", embedding=None))
    _audit(url, store, acme, product_id=cola)

    impact = catalogue.brand_deletion(acme, url)
    assert (impact.audits, impact.planogram_targets, impact.reference_images) == (1, 3, 1)
    assert impact.products == 2
    assert "Acme and its 2 product(s)" in impact.message()
    assert "New audits count its packs as an unknown brand" in impact.message()
    catalogue.delete_brand(acme, url)
    assert list_brands(url) == [] and list_products(url) == []
    assert _count(url, m.ReferenceImage) == 0  # recognition no longer assigns it
    assert _count(url, m.PlanogramTarget) == 0 and _count(url, m.ProductTarget) == 0
    # the products stay for the audits that counted them, out of every list and picker
    assert _count(url, m.Product) == 2
    assert _count(url, m.Detection, m.Detection.product_id == cola) == 2
    for refused in (
        lambda: catalogue.add_product(acme, "Orange", url=url),
        lambda: catalogue.update_product(cola, name="Cola", url=url),
        lambda: catalogue.set_product_planogram(store, {cola: 1}, url=url),
    ):
        with pytest.raises(UserError, match="was it deleted"):
            refused()
    # its EAN/GTIN is free for another product
    other = catalogue.add_product(
        catalogue.add_brand("Zest", url=url), "Cola", "4006381333931", url
    )
    assert [p.id for p in list_products(url)] == [other]
    catalogue.delete_brand(catalogue.add_brand("Zero", url=url), url)  # no audit: gone at once
    assert _count(url, m.BrandMetric, m.BrandMetric.brand_id == acme) == 1  # history kept
    today = date.today()
    shares = reports.share_of_shelf(url, today - timedelta(days=1), today)
    assert shares["brand"].tolist() == ["Acme"]  # the dashboards still name it
    with pytest.raises(UserError, match="was it deleted"):
        catalogue.set_planogram(store, {acme: 1}, url=url)
    with pytest.raises(UserError, match="deleted one"):
        catalogue.update_brand(
            catalogue.add_brand("Brio", url=url),
            name="Acme",
            manufacturer="",
            is_own=False,
            color_hex="#000000",
            url=url,
        )
    assert catalogue.add_brand("ACME", url=url) == acme  # brought back, with its products
    assert [p.name for p in list_products(url, brand_id=acme)] == ["Cola", "Lime"]


def test_deleting_a_brand_no_audit_counted_removes_it_with_its_products(storage_url):
    url = storage_url
    store = catalogue.add_store("North", url=url)
    acme = catalogue.add_brand("Acme", url=url)
    cola = catalogue.add_product(acme, "Cola", url=url)
    catalogue.set_product_planogram(store, {cola: 2}, url=url)
    with session_scope(url) as s:
        s.add(m.ReferenceImage(product_id=cola, image_png=b"png", embedding=None))
    done = catalogue.delete_brand(acme, url)
    assert (done.audits, done.products, done.planogram_targets, done.reference_images) == (
        0,
        1,
        1,
        1,
    )
    assert "No audit refers to it" in done.message(done=True)
    for model in (m.Brand, m.Product, m.ProductTarget, m.ReferenceImage):
        assert _count(url, model) == 0, model


def test_deleting_a_store_removes_its_product_targets(db_url):
    store = catalogue.add_store("North", url=db_url)
    brand = catalogue.add_brand("Acme", url=db_url)
    product = catalogue.add_product(brand, "Cola", url=db_url)
    catalogue.set_planogram(store, {brand: 2}, url=db_url)
    catalogue.set_product_planogram(store, {product: 2}, url=db_url)
    assert catalogue.store_deletion(store, db_url).planogram_targets == 2
    catalogue.delete_store(store, db_url)
    assert _count(db_url, m.ProductTarget) == 0 and _count(db_url, m.PlanogramTarget) == 0


# --------------------------------------------------------------------------- CSV


def test_sample_files_import_export_and_import_again_unchanged(storage_url):
    url = storage_url
    results = [
        catalogue_csv.import_csv(kind, (SAMPLES / f"{kind}.csv").read_bytes(), url=url)
        for kind in catalogue_csv.KINDS
    ]
    assert [r.added for r in results] == [6, 4, 7]
    brands = {b.name: b for b in list_brands(url)}
    assert brands["Sunvale"].is_own and not brands["Brightfield"].is_own
    assert brands["Sunvale"].color_hex == "#2ca02c"
    assert brands["Sunvale Kids"].color_hex in catalogue.BRAND_PALETTE  # blank: a palette colour
    assert len({b.color_hex for b in brands.values()}) == 4
    for kind, first in zip(catalogue_csv.KINDS, results, strict=True):
        again = catalogue_csv.import_csv(kind, catalogue_csv.export_csv(kind, url), url=url)
        assert (again.added, again.updated, again.unchanged) == (0, 0, first.added), kind
    assert catalogue_csv.export_csv("planogram", url).splitlines()[:2] == [
        "store,brand,product,target",
        "Central Superstore,Brightfield,,8",
    ]


def test_planogram_rows_with_a_product_set_product_targets(storage_url):
    url = storage_url
    north = catalogue.add_store("North", url=url)
    acme = catalogue.add_brand("Acme", url=url)
    cola = catalogue.add_product(acme, "Cola", url=url)
    lime = catalogue.add_product(acme, "Lime", url=url)
    text = "store,brand,product,target\nNorth,Acme,,5\nnorth,acme,COLA,3\nNorth,Acme,Lime,2\n"
    result = catalogue_csv.import_csv("planogram", text, url=url)
    assert (result.added, result.updated) == (3, 0)
    assert planogram_for_store(north, url) == {acme: 5}
    assert product_planogram_for_store(north, url) == {cola: 3, lime: 2}
    exported = catalogue_csv.export_csv("planogram", url)
    assert exported.splitlines() == [
        "store,brand,product,target",
        "North,Acme,,5",
        "North,Acme,Cola,3",
        "North,Acme,Lime,2",
    ]
    again = catalogue_csv.import_csv("planogram", exported, url=url)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
    result = catalogue_csv.import_csv(
        "planogram", "store,brand,product,target\nNorth,Acme,Lime,0\nNorth,Acme,Cola,4\n", url=url
    )
    assert (result.removed, result.updated) == (1, 1)
    assert product_planogram_for_store(north, url) == {cola: 4}
    # a deleted brand's products are gone from the export and refused by the import
    catalogue.delete_brand(acme, url)
    assert catalogue_csv.export_csv("planogram", url) == "store,brand,product,target\n"


def test_import_updates_by_name_and_reads_spreadsheet_csv(db_url):
    catalogue.add_store("Harbour Foods", "North", url=db_url)
    # a spreadsheet in a language whose list separator is ';', with a byte-order mark
    data = '\ufeffName;Region\nharbour foods;Coast\n"Bay; Corner";Coast\n\n'.encode()
    result = catalogue_csv.import_csv("stores", data, file_name="shops.csv", url=db_url)
    assert result.message() == "stores: 1 added, 1 updated, 0 unchanged."
    assert {s.name: s.region for s in list_stores(db_url)} == {
        "Bay; Corner": "Coast",
        "Harbour Foods": "Coast",
    }


@pytest.mark.parametrize(
    "kind, text, message",
    [
        ("stores", "", "no header line"),
        ("stores", "name,city\nA,B\n", "line 1: unknown column(s) 'city'"),
        ("stores", "region\nNorth\n", "line 1: the column(s) name are missing"),
        ("stores", "name\nA\n\n a \n", "line 4: store 'a' is already on line 2"),
        ("stores", "name,region\nA,North,extra\n", "line 2: 3 values for 2 columns"),
        ("stores", "name,region\nA,North\n,South\n", "line 3: a store needs a name"),
        ("brands", "name,type\nA,ours\n", "line 2: type must be own or competitor"),
        ("brands", "name,colour\nA,blue\n", "line 2: colour must look like #1f77b4"),
        ("planogram", "store,brand,target\nNowhere,Acme,3\n", "line 2: no store named 'Nowhere'"),
        ("planogram", "store,brand,target\nNorth,Zed,3\n", "line 2: no brand named 'Zed'"),
        ("planogram", "store,brand,target\nNorth,Acme,2.5\n", "line 2: the target for Acme"),
        ("planogram", "store,brand,target\nNorth,Acme,1\nnorth,ACME,2\n", "line 3: the pair"),
        (
            "planogram",
            "store,brand,product,target\nNorth,Acme,Fizz,1\n",
            "line 2: brand Acme has no product named 'Fizz'",
        ),
        (
            "planogram",
            "store,brand,product,target\nNorth,Acme,Cola,1\nNorth,Acme,cola,2\n",
            "line 3: the pair 'North / Acme / Cola' is already on line 2",
        ),
    ],
)
def test_a_bad_file_names_the_line_and_writes_nothing(db_url, kind, text, message):
    catalogue.add_store("North", url=db_url)
    catalogue.add_product(catalogue.add_brand("Acme", url=db_url), "Cola", url=db_url)
    before = [catalogue_csv.export_csv(k, db_url) for k in catalogue_csv.KINDS]
    with pytest.raises(UserError) as info:
        catalogue_csv.import_csv(kind, text, file_name="my.csv", url=db_url)
    assert str(info.value).startswith("my.csv")
    assert message in str(info.value)
    assert [catalogue_csv.export_csv(k, db_url) for k in catalogue_csv.KINDS] == before


def test_a_fault_late_in_the_file_leaves_the_earlier_rows_unwritten(db_url):
    rows = "".join(f"Store {i},R\n" for i in range(500))
    with pytest.raises(UserError, match="line 502: store 'Store 1' is already on line 3"):
        catalogue_csv.import_csv("stores", "name,region\n" + rows + "Store 1,R\n", url=db_url)
    assert list_stores(db_url) == []


def test_not_utf8_is_refused_with_what_to_do(db_url):
    with pytest.raises(UserError, match="not UTF-8 text .*'CSV UTF-8'"):
        catalogue_csv.import_csv("stores", "name\nCaf\xe9\n".encode("latin-1"), url=db_url)


def test_planogram_zero_removes_a_target_and_a_deleted_name_comes_back(db_url):
    store = catalogue.add_store("North", url=db_url)
    brand = catalogue.add_brand("Acme", url=db_url)
    catalogue.set_planogram(store, {brand: 4}, url=db_url)
    result = catalogue_csv.import_csv("planogram", "store,brand,target\nNorth,Acme,0\n", url=db_url)
    assert result.removed == 1 and _count(db_url, m.PlanogramTarget) == 0
    _audit(db_url, store, brand)
    catalogue.delete_store(store, db_url)
    result = catalogue_csv.import_csv("stores", "name,region\nNORTH,West\n", url=db_url)
    assert result.restored == 1 and "1 deleted one(s) brought back" in result.message()
    assert [(s.id, s.region) for s in list_stores(db_url)] == [(store, "West")]


# --------------------------------------------------------------------------- command line


def test_cli_fills_a_fresh_database_and_audit_says_what_to_run(tmp_path, capsys):
    from skuaudit.cli import main

    url = f"sqlite:///{tmp_path / 'new.db'}"
    photo = tmp_path / "shelf.jpg"
    photo.write_bytes(b"not read before the store is found")
    assert main(["audit", str(photo), "--store", "Harbour Foods", "--db-url", url]) == 2
    assert "no skuaudit schema yet; run 'skuaudit db upgrade'" in capsys.readouterr().err

    assert main(["catalogue", "add-store", "Corner Shop", "--region", "East", "--db-url", url]) == 0
    for kind in catalogue_csv.KINDS:
        assert (
            main(["catalogue", "import", kind, str(SAMPLES / f"{kind}.csv"), "--db-url", url]) == 0
        )
    out = capsys.readouterr().out
    assert "stores: 6 added" in out and "planogram: 7 added" in out
    assert len(list_stores(url)) == 7

    assert main(["audit", str(photo), "--store", "Nowhere", "--db-url", url]) == 2
    err = capsys.readouterr().err
    assert "no store named 'Nowhere'" in err and "skuaudit catalogue add-store" in err

    assert main(["catalogue", "delete-store", "Harbour Foods", "--db-url", url]) == 0
    assert "Run again with --yes" in capsys.readouterr().out and len(list_stores(url)) == 7
    assert main(["catalogue", "delete-store", "harbour foods", "--yes", "--db-url", url]) == 0
    assert "Deleted store Harbour Foods" in capsys.readouterr().out
    assert len(list_stores(url)) == 6

    out_file = tmp_path / "brands.csv"
    assert main(["catalogue", "export", "brands", "-o", str(out_file), "--db-url", url]) == 0
    assert out_file.read_text().splitlines()[0] == "name,manufacturer,type,colour"
    assert main(["catalogue", "import", "stores", str(tmp_path / "none.csv"), "--db-url", url]) == 2
    assert "none.csv: cannot be read" in capsys.readouterr().err

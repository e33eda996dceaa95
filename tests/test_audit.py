from __future__ import annotations

import json

import numpy as np
import pytest
import sqlalchemy as sa

from skuaudit import audit
from skuaudit.datasets.synth import render_shelf
from skuaudit.demo import demo_catalogue
from skuaudit.detections import Detections
from skuaudit.images import encode_png
from skuaudit.recognition import Gallery
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from tests.shelf_fakes import GroundTruthDetector, OracleRecognizer, generated_counts


def _brand_ids(url) -> dict[str, int]:
    with session_scope(url) as s:
        return {n: i for i, n in s.execute(sa.select(m.Brand.id, m.Brand.name)).all()}


def _store_id(url, name="Harbour Foods") -> int:
    with session_scope(url) as s:
        return s.scalar(sa.select(m.Store.id).where(m.Store.name == name))


def _count(url, table, **where) -> int:
    with session_scope(url) as s:
        q = sa.select(sa.func.count()).select_from(table)
        for k, v in where.items():
            q = q.where(getattr(table, k) == v)
        return s.scalar(q)


@pytest.fixture(scope="module")
def shelves():
    return [render_shelf(seed, catalogue=demo_catalogue()) for seed in (11, 12)]


def _gallery() -> Gallery:
    return Gallery(np.zeros(0), np.zeros((0, 64)))


def test_saved_audit_holds_exactly_the_generated_counts(demo_db_url, shelves):
    ids = _brand_ids(demo_db_url)
    detector, recognizer = GroundTruthDetector(shelves), OracleRecognizer(ids)
    analyses = [audit.analyse_image(s.image_bgr, detector, recognizer, _gallery()) for s in shelves]
    audit_id = audit.save_audit(
        _store_id(demo_db_url),
        analyses,
        source="photo",
        user_name="ana",
        model_name="ground truth",
        url=demo_db_url,
    )
    expected: dict[str, int] = {}
    for shelf in shelves:
        for name, n in generated_counts(shelf).items():
            expected[name] = expected.get(name, 0) + n
    with session_scope(demo_db_url) as s:
        rows = s.execute(
            sa.select(m.Brand.name, m.BrandMetric.facings, m.BrandMetric.share_facings)
            .join(m.Brand, m.Brand.id == m.BrandMetric.brand_id)
            .where(m.BrandMetric.audit_id == audit_id)
        ).all()
        saved_audit = s.get(m.Audit, audit_id)
        assert saved_audit.product_count == sum(expected.values())
        assert saved_audit.gap_count == sum(int((sh.class_ids == 1).sum()) for sh in shelves)
        assert saved_audit.user_name == "ana" and saved_audit.source == "photo"
    assert {n: f for n, f, _ in rows if f} == expected
    assert sum(share for *_, share in rows) == pytest.approx(1.0)
    assert _count(demo_db_url, m.AuditImage, audit_id=audit_id) == 2
    assert _count(demo_db_url, m.Detection, audit_id=audit_id) == sum(
        len(sh.brands) for sh in shelves
    )
    with session_scope(demo_db_url) as s:
        rows_saved = s.scalars(
            sa.select(m.Detection.shelf_row).where(
                m.Detection.audit_id == audit_id, m.Detection.image_index == 0
            )
        ).all()
    assert sorted(set(rows_saved)) == sorted(set(shelves[0].shelf_rows.tolist()))


def test_empty_photo_is_not_saved_unless_asked(demo_db_url):
    blank = np.full((200, 300, 3), 90, np.uint8)
    analysis = audit.analyse_image(blank, GroundTruthDetector([]), OracleRecognizer({}), _gallery())
    before = _count(demo_db_url, m.Audit)
    with pytest.raises(audit.EmptyAuditError, match="Nothing was saved"):
        audit.save_audit(_store_id(demo_db_url), [analysis], source="photo", url=demo_db_url)
    assert _count(demo_db_url, m.Audit) == before
    audit_id = audit.save_audit(
        _store_id(demo_db_url), [analysis], source="photo", allow_empty=True, url=demo_db_url
    )
    assert _count(demo_db_url, m.BrandMetric, audit_id=audit_id) == _count(
        demo_db_url, m.PlanogramTarget, store_id=_store_id(demo_db_url)
    )  # all stockouts


def test_failure_half_way_leaves_nothing(demo_db_url, shelves):
    analysis = audit.ImageAnalysis(
        shelves[0].image_bgr,
        Detections([[0, 0, 10, 10]], class_id=[0], data={"brand_id": np.array([99_999])}),
    )
    before = {
        t: _count(demo_db_url, t) for t in (m.Audit, m.AuditImage, m.Detection, m.BrandMetric)
    }
    with pytest.raises(ValueError, match="not in the catalogue"):
        audit.save_audit(_store_id(demo_db_url), [analysis], source="photo", url=demo_db_url)
    assert {t: _count(demo_db_url, t) for t in before} == before


def test_hand_corrections_are_saved(demo_db_url, shelves):
    ids = _brand_ids(demo_db_url)
    analysis = audit.analyse_image(
        shelves[0].image_bgr, GroundTruthDetector(shelves), OracleRecognizer({}), _gallery()
    )
    first_product = int(np.flatnonzero(analysis.detections.class_id == 0)[0])
    corrected = audit.correct_labels(analysis, {first_product: audit.Label(ids["Kapku"])})
    audit_id = audit.save_audit(
        _store_id(demo_db_url), [corrected], source="photo", url=demo_db_url
    )
    with session_scope(demo_db_url) as s:
        fixed = (
            s.execute(
                sa.select(m.Detection.brand_id).where(
                    m.Detection.audit_id == audit_id, m.Detection.corrected.is_(True)
                )
            )
            .scalars()
            .all()
        )
    assert fixed == [ids["Kapku"]]
    with pytest.raises(ValueError, match="not a product"):
        audit.correct_labels(analysis, {10_000: audit.Label(1)})


def test_cli_audits_a_photo(demo_db_url, shelves, tmp_path, monkeypatch, capsys):
    photo = tmp_path / "shelf.png"
    photo.write_bytes(encode_png(shelves[0].image_bgr))
    monkeypatch.setattr(audit, "load_detector", lambda *_a, **_k: GroundTruthDetector(shelves))
    monkeypatch.setattr(
        "skuaudit.recognition.Recognizer.load",
        classmethod(lambda cls, *_a: OracleRecognizer(_brand_ids(demo_db_url))),
    )
    monkeypatch.setattr(
        "skuaudit.recognition.Gallery.from_database", classmethod(lambda cls, *_a: _gallery())
    )
    assert audit.cli_main([str(photo), "--store", "Harbour Foods", "--user", "ana", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["audit_id"] == _count(demo_db_url, m.Audit)
    assert {n: b["facings"] for n, b in out["brands"].items() if b["facings"]} == generated_counts(
        shelves[0]
    )
    assert set(out["gaps"]) == {"count", "width_px", "share_width"} and isinstance(
        out["stockouts"], list
    )


CLI_ERRORS = [
    (["missing.jpg", "--store", "Harbour Foods"], "cannot read the file"),
    (["{photo}", "--store", "Nowhere"], "no store named 'Nowhere'"),
    (["{text}", "--store", "Harbour Foods"], "not a readable image"),
    (
        ["{photo}", "--store", "Harbour Foods", "--model", "{tmp}/no_model"],
        "model folder not found",
    ),
]


def test_cli_errors_are_one_line(demo_db_url, shelves, tmp_path, capsys):
    photo, text = tmp_path / "shelf.png", tmp_path / "notes.jpg"
    photo.write_bytes(encode_png(shelves[0].image_bgr))
    text.write_text("not a photo")
    for args, message in CLI_ERRORS:
        argv = [a.format(photo=photo, text=text, tmp=tmp_path) for a in args]
        assert audit.cli_main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert _count(demo_db_url, m.Audit, is_demo=False) == 0


def test_review_table_round_trip_and_drawing(demo_db_url, shelves):
    from skuaudit.storage.queries import product_infos

    ids = _brand_ids(demo_db_url)
    names = {i: n for n, i in ids.items()}
    products = product_infos(demo_db_url)
    options = audit.review_options(names, products)
    analysis = audit.analyse_image(
        shelves[0].image_bgr, GroundTruthDetector(shelves), OracleRecognizer(ids), _gallery()
    )
    table = audit.detections_table([analysis], names, products)
    assert len(table) == int((shelves[0].class_ids == 0).sum())
    assert set(table["product"]) <= set(options)
    assert (table["brand"] == [label.split(" · ")[0] for label in table["product"]]).all()
    assert (
        audit.apply_review_table([analysis], table, options)[0].detections.data["corrected"].sum()
        == 0
    )
    table.loc[0, "product"] = "unknown"
    table.loc[1, "product"] = "Kapku · Blue can"
    fixed = audit.apply_review_table([analysis], table, options)[0].detections
    first, second = table.loc[0, "detection"], table.loc[1, "detection"]
    assert (fixed.data["brand_id"][first], fixed.data["product_id"][first]) == (-1, -1)
    assert fixed.data["brand_id"][second] == ids["Kapku"]
    assert products[int(fixed.data["product_id"][second])].name == "Blue can"
    assert fixed.data["corrected"].sum() == 2
    table.loc[1, "product"] = "No Such Brand · Thing"
    with pytest.raises(ValueError, match="not in the catalogue"):
        audit.apply_review_table([analysis], table, options)
    drawn = audit.draw_analysis(analysis, {ids["Kapku"]: "#ff0000"})
    assert drawn.shape == shelves[0].image_bgr.shape and not np.array_equal(
        drawn, shelves[0].image_bgr
    )


def test_review_table_is_in_shelf_order(demo_db_url, shelves):
    """Top row first, then left to right; the box numbers are those drawn on the photo."""
    ids = _brand_ids(demo_db_url)
    analysis = audit.analyse_image(
        shelves[0].image_bgr, GroundTruthDetector(shelves), OracleRecognizer(ids), _gallery()
    )
    table = audit.detections_table([analysis], {i: n for n, i in ids.items()})
    assert list(table["box"]) == list(range(1, len(table) + 1))
    assert table["row"].min() == 1 and table["row"].is_monotonic_increasing
    x1 = analysis.detections.xyxy[table["detection"].to_numpy(), 0]
    for row in table["row"].unique():
        assert np.all(np.diff(x1[(table["row"] == row).to_numpy()]) >= 0)


def test_a_saved_audit_is_drawn_with_its_saved_boxes(demo_db_url, shelves):
    ids = _brand_ids(demo_db_url)
    analysis = audit.analyse_image(
        shelves[0].image_bgr, GroundTruthDetector(shelves), OracleRecognizer(ids), _gallery()
    )
    store_id = _store_id(demo_db_url)
    audit_id = audit.save_audit(store_id, [analysis], source="photo", url=demo_db_url)
    (stored,) = audit.stored_analyses(audit_id, demo_db_url)
    assert stored.image_bgr.shape == analysis.image_bgr.shape
    assert len(stored.detections) == len(analysis.detections)
    order = audit.shelf_order(analysis.detections)
    assert np.allclose(
        stored.detections.xyxy[audit.shelf_order(stored.detections)],
        analysis.detections.xyxy[order],
        atol=1e-3,
    )
    colours = {i: "#00ff00" for i in ids.values()}
    drawn = audit.draw_analysis(stored, colours)
    assert (drawn != stored.image_bgr).any(axis=2).mean() > 0.01  # boxes and numbers drawn
    assert audit.stored_analyses(10**9, demo_db_url) == []

from __future__ import annotations

import numpy as np
import pytest

from skuaudit.detections import GAP, PRODUCT, Detections
from skuaudit.metrics import (
    ProductInfo,
    audit_metrics,
    normalised_widths,
    planogram_compliance,
)

NAMES = {1: "Alpha", 2: "Beta", 3: "Gamma"}


def _shelf(boxes: list[tuple[float, float, int, int, int]]) -> Detections:
    """``(x1, width_px, class_id, brand_id, shelf_row)`` per box; rows are 100 px apart."""
    xyxy = [[x, 100 * r, x + w, 100 * r + 80] for x, w, _, _, r in boxes]
    return Detections(
        np.array(xyxy, np.float32).reshape(-1, 4),
        class_id=[c for _, _, c, _, _ in boxes],
        data={
            "brand_id": np.array([b for *_, b, _ in boxes], np.int64),
            "shelf_row": np.array([r for *_, r in boxes], np.int32),
        },
    )


@pytest.mark.parametrize(
    "boxes, planogram, expected_brands, expected_totals",
    [
        # empty shelf: no brands, no gaps; targeted brands are stockouts
        (
            [],
            None,
            {},
            {
                "product_count": 0,
                "gap_count": 0,
                "gap_share_width": 0.0,
                "planogram_compliance": None,
            },
        ),
        ([], {1: 2}, {"Alpha": (0, 0.0, 0.0)}, {"product_count": 0, "planogram_compliance": 0.0}),
        # one brand only: every share is 1
        (
            [(0, 10, PRODUCT, 1, 0), (10, 30, PRODUCT, 1, 0)],
            None,
            {"Alpha": (2, 1.0, 1.0)},
            {"product_count": 2, "gap_count": 0, "gap_share_width": 0.0},
        ),
        # one row: 2 facings of Alpha (20 px), 1 of Beta (20 px), a 40 px gap
        (
            [
                (0, 10, PRODUCT, 1, 0),
                (10, 10, PRODUCT, 1, 0),
                (20, 20, PRODUCT, 2, 0),
                (40, 40, GAP, -1, 0),
            ],
            {1: 2, 2: 2, 3: 1},
            {"Alpha": (2, 2 / 3, 0.5), "Beta": (1, 1 / 3, 0.5), "Gamma": (0, 0.0, 0.0)},
            {
                "product_count": 3,
                "gap_count": 1,
                "gap_share_width": 0.5,
                "planogram_compliance": (1 + 0.5 + 0) / 3,
            },
        ),
        # two rows of different scale weigh the same: row 0 is 100 px of Alpha, row 1 is 1000 px of Beta
        (
            [(0, 100, PRODUCT, 1, 0), (0, 500, PRODUCT, 2, 1), (500, 500, PRODUCT, 2, 1)],
            None,
            {"Alpha": (1, 1 / 3, 0.5), "Beta": (2, 2 / 3, 0.5)},
            {"gap_share_width": 0.0},
        ),
        # unknown products count in totals, under "unknown"
        (
            [(0, 30, PRODUCT, 1, 0), (30, 10, PRODUCT, -1, 0)],
            None,
            {"Alpha": (1, 0.5, 0.75), "unknown": (1, 0.5, 0.25)},
            {"product_count": 2},
        ),
    ],
)
def test_audit_metrics_table(boxes, planogram, expected_brands, expected_totals):
    metrics = audit_metrics(_shelf(boxes), NAMES, planogram)
    got = {r.name: (r.facings, r.share_facings, r.share_linear) for r in metrics.brands}
    assert got.keys() == expected_brands.keys()
    for name, (facings, share_facings, share_linear) in expected_brands.items():
        assert got[name][0] == facings
        assert got[name][1] == pytest.approx(share_facings)
        assert got[name][2] == pytest.approx(share_linear)
    for key, value in expected_totals.items():
        assert getattr(metrics, key) == pytest.approx(value)
    if metrics.product_count:
        assert sum(r.share_facings for r in metrics.brands) == pytest.approx(1.0)
        assert sum(r.share_linear for r in metrics.brands) == pytest.approx(1.0)


def test_stockouts_and_below_target():
    d = _shelf([(0, 10, PRODUCT, 1, 0), (10, 10, PRODUCT, 2, 0), (20, 10, PRODUCT, 2, 0)])
    metrics = audit_metrics(d, NAMES, {1: 3, 2: 2, 3: 4})
    assert metrics.stockouts == ["Gamma"]
    # a stockout is not also "below target": the dashboards count the two apart
    assert metrics.below_target == ["Alpha"]
    assert not metrics.brand("Gamma").below_target
    assert metrics.brand("Beta").expected_facings == 2 and not metrics.brand("Beta").below_target
    assert metrics.planogram_compliance == pytest.approx((1 / 3 + 1 + 0) / 3)


def test_rows_of_different_images_are_separate():
    d = _shelf([(0, 10, PRODUCT, 1, 0), (0, 30, GAP, -1, 0)]).with_data(
        image_index=np.array([0, 1])
    )
    metrics = audit_metrics(d, NAMES)
    assert metrics.row_count == 2
    assert metrics.gap_share_width == pytest.approx(0.5)  # image 1's only row is all gap


def test_to_json_shape():
    d = _shelf([(0, 10, PRODUCT, 1, 0), (10, 10, GAP, -1, 0)])
    out = audit_metrics(d, NAMES, {3: 1}).to_json()
    assert set(out["brands"]["Alpha"]) >= {"facings", "share_facings", "linear_px", "share_linear"}
    assert out["gaps"] == {"count": 1, "width_px": 10.0, "share_width": 0.5}
    assert out["stockouts"] == ["Gamma"]


@pytest.mark.parametrize(
    "facings, planogram, expected",
    [
        ({}, {}, None),
        ({1: 5}, {1: 0}, None),
        ({1: 5}, {1: 4}, 1.0),
        ({1: 1, 2: 3}, {1: 4, 2: 3}, 0.625),
    ],
)
def test_planogram_compliance(facings, planogram, expected):
    assert planogram_compliance(facings, planogram) == (
        None if expected is None else pytest.approx(expected)
    )


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="not in the catalogue"):
        audit_metrics(_shelf([(0, 10, PRODUCT, 9, 0)]), NAMES)
    with pytest.raises(ValueError, match=">= 0"):
        audit_metrics(Detections.empty(), NAMES, {1: -1})


def test_normalised_widths_empty():
    assert normalised_widths(Detections.empty()).shape == (0,)


# --------------------------------------------------------------------------- products

PRODUCTS = {
    10: ProductInfo(1, "Cola"),
    11: ProductInfo(1, "Lime"),
    20: ProductInfo(2, "Cola"),
}


def _products_shelf(boxes: list[tuple[float, int, int]]) -> Detections:
    """``(width_px, product_id, brand_id)`` per facing, left to right in one row."""
    x = np.cumsum([0] + [w for w, _, _ in boxes])[:-1]
    return Detections(
        [[x0, 0, x0 + w, 50] for x0, (w, _, _) in zip(x, boxes, strict=True)],
        class_id=[PRODUCT] * len(boxes),
        data={
            "product_id": np.array([p for _, p, _ in boxes], np.int64),
            "brand_id": np.array([b for *_, b in boxes], np.int64),
            "shelf_row": np.zeros(len(boxes), np.int64),
        },
    )


@pytest.mark.parametrize(
    "boxes, product_planogram, planogram, products, brands",
    [
        # nothing seen, nothing targeted
        ([], {}, {}, {}, {}),
        # products roll up to their brand; a recognised product's brand wins over brand_id
        (
            [(10, 10, 1), (10, 10, -1), (20, 11, 1), (40, 20, 2)],
            {},
            {},
            {
                "Alpha · Cola": (2, 0.5, 0.25),
                "Alpha · Lime": (1, 0.25, 0.25),
                "Beta · Cola": (1, 0.25, 0.5),
            },
            {"Alpha": (3, 0.75, 0.5), "Beta": (1, 0.25, 0.5)},
        ),
        # a facing of a known brand but no product: the brand's "unknown product"; none: unknown
        (
            [(10, -1, 1), (10, 10, 1), (20, -1, -1)],
            {},
            {},
            {
                "Alpha · Cola": (1, 1 / 3, 0.25),
                "Alpha · unknown product": (1, 1 / 3, 0.25),
                "unknown": (1, 1 / 3, 0.5),
            },
            {"Alpha": (2, 2 / 3, 0.5), "unknown": (1, 1 / 3, 0.5)},
        ),
        # a targeted product with no facing is a product stockout and is listed
        (
            [(10, 10, 1)],
            {11: 2, 20: 1},
            {},
            {
                "Alpha · Cola": (1, 1.0, 1.0),
                "Alpha · Lime": (0, 0.0, 0.0),
                "Beta · Cola": (0, 0.0, 0.0),
            },
            {"Alpha": (1, 1.0, 1.0), "Beta": (0, 0.0, 0.0)},
        ),
    ],
)
def test_products_roll_up_to_brands(boxes, product_planogram, planogram, products, brands):
    metrics = audit_metrics(
        _products_shelf(boxes),
        {1: "Alpha", 2: "Beta"},
        planogram,
        products=PRODUCTS,
        product_planogram=product_planogram,
    )
    got = {r.label: (r.facings, r.share_facings, r.share_linear) for r in metrics.products}
    assert got.keys() == products.keys()
    for label, expected in products.items():
        assert got[label] == pytest.approx(expected)
    got = {r.name: (r.facings, r.share_facings, r.share_linear) for r in metrics.brands}
    assert got.keys() == brands.keys()
    for name, expected in brands.items():
        assert got[name] == pytest.approx(expected)
    for brand in metrics.brands:  # every brand figure is the sum of its products'
        mine = [p for p in metrics.products if p.brand_id == brand.brand_id]
        assert brand.facings == sum(p.facings for p in mine)
        assert brand.linear_px == pytest.approx(sum(p.linear_px for p in mine))
        assert brand.share_linear == pytest.approx(sum(p.share_linear for p in mine))


def test_product_targets_make_product_stockouts_and_the_brand_target():
    d = _products_shelf([(10, 10, 1), (10, 10, 1), (10, 20, 2)])
    metrics = audit_metrics(
        d,
        {1: "Alpha", 2: "Beta"},
        {2: 3},
        products=PRODUCTS,
        product_planogram={10: 1, 11: 2, 20: 1},
    )
    assert metrics.product_stockouts == ["Alpha · Lime"]
    lime = metrics.product("Alpha · Lime")
    assert (lime.expected_facings, lime.is_stockout, lime.below_target) == (2, True, False)
    assert metrics.product("Alpha · Cola").expected_facings == 1
    # Alpha has no target of its own: it is expected to show its products' 1 + 2
    alpha, beta = metrics.brand("Alpha"), metrics.brand("Beta")
    assert (alpha.expected_facings, alpha.below_target, alpha.is_stockout) == (3, True, False)
    assert beta.expected_facings == 3  # its own target wins over its product's 1
    assert metrics.planogram_compliance == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert metrics.product_compliance == pytest.approx((1 + 0 + 1) / 3)
    out = metrics.to_json()
    assert out["product_stockouts"] == ["Alpha · Lime"]
    assert {(p["brand"], p["product"]): p["facings"] for p in out["products"]} == {
        ("Alpha", "Cola"): 2,
        ("Alpha", "Lime"): 0,
        ("Beta", "Cola"): 1,
    }


def test_products_are_listed_by_brand_then_facings():
    d = _products_shelf([(10, 20, 2)] * 3 + [(10, 11, 1), (10, -1, 1), (10, 10, 1), (10, 10, 1)])
    metrics = audit_metrics(d, {1: "Alpha", 2: "Beta"}, products=PRODUCTS)
    assert [b.name for b in metrics.brands] == ["Alpha", "Beta"]
    assert [p.label for p in metrics.products] == [
        "Alpha · Cola",
        "Alpha · Lime",
        "Alpha · unknown product",
        "Beta · Cola",
    ]


def test_unknown_products_are_refused():
    with pytest.raises(ValueError, match="product ids \\[99\\] that are not in the catalogue"):
        audit_metrics(_products_shelf([(10, 99, 1)]), NAMES, products=PRODUCTS)
    with pytest.raises(ValueError, match="targets name product ids \\[98\\]"):
        audit_metrics(Detections.empty(), NAMES, products=PRODUCTS, product_planogram={98: 1})
    with pytest.raises(ValueError, match=">= 0"):
        audit_metrics(Detections.empty(), NAMES, products=PRODUCTS, product_planogram={10: -2})

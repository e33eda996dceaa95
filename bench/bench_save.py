"""Audit save throughput: ``save_audit`` (ORM, metrics, one transaction) vs plain sqlite3 inserts.

Both write the same audits (one image, ~150 product boxes and a few gaps, per-brand metrics) into
a fresh SQLite file in WAL mode, one transaction per audit, measured in one run.

    .venv/bin/python bench/bench_save.py [--audits 200]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from skuaudit.audit import ImageAnalysis, save_audit
from skuaudit.detections import Detections
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope, upgrade_database

JPEG = b"\xff\xd8" + b"\0" * 60_000 + b"\xff\xd9"  # a typical stored snapshot's size


def _analysis(rng: np.random.Generator, brand_ids: list[int], n: int = 150, gaps: int = 5):
    x1 = rng.uniform(0, 1500, n + gaps).astype(np.float32)
    y1 = rng.uniform(0, 1000, n + gaps).astype(np.float32)
    xyxy = np.stack([x1, y1, x1 + 40, y1 + 90], axis=1)
    class_id = np.array([0] * n + [1] * gaps)
    det = Detections(
        xyxy,
        np.full(n + gaps, 0.8),
        class_id,
        {
            "brand_id": np.concatenate([rng.choice(brand_ids, n), [-1] * gaps]),
            "brand_score": np.full(n + gaps, 0.7),
            "shelf_row": (y1 // 200).astype(int),
            "corrected": np.zeros(n + gaps, bool),
        },
    )
    return ImageAnalysis(np.zeros((1000, 1600, 3), np.uint8), det)


def ours(url: str, store_id: int, brand_ids: list[int], analyses) -> float:
    start = time.perf_counter()
    for a in analyses:
        save_audit(store_id, [a], source="photo", images_jpeg=[JPEG], url=url)
    return len(analyses) / (time.perf_counter() - start)


def plain(path: Path, store_id: int, analyses) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    start = time.perf_counter()
    for a in analyses:
        d = a.detections
        with conn:
            cur = conn.execute(
                "INSERT INTO audits (store_id, user_name, created_at, source, model_name, product_count,"
                " gap_count, gap_share_width, shelf_width_px, notes, is_demo)"
                " VALUES (?, '', datetime('now'), 'photo', '', ?, ?, 0, 0, '', 0)",
                (store_id, int((d.class_id == 0).sum()), int((d.class_id == 1).sum())),
            )
            audit_id = cur.lastrowid
            conn.execute(
                "INSERT INTO audit_images (audit_id, image_index, width, height, image_jpeg)"
                " VALUES (?, 0, 1600, 1000, ?)",
                (audit_id, JPEG),
            )
            conn.executemany(
                "INSERT INTO detections (audit_id, image_index, x1, y1, x2, y2, score, class_name,"
                " brand_id, brand_score, shelf_row, corrected) VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [
                    (
                        audit_id,
                        *map(float, d.xyxy[i]),
                        float(d.confidence[i]),
                        "product" if d.class_id[i] == 0 else "gap",
                        int(d.data["brand_id"][i]) if d.data["brand_id"][i] >= 0 else None,
                        0.7,
                        int(d.data["shelf_row"][i]),
                    )
                    for i in range(len(d))
                ],
            )
            brands, counts = np.unique(d.data["brand_id"][d.class_id == 0], return_counts=True)
            conn.executemany(
                "INSERT INTO brand_metrics (audit_id, brand_id, facings, share_facings, linear_px,"
                " share_linear, is_stockout, below_target) VALUES (?, ?, ?, ?, 0, 0, 0, 0)",
                [
                    (audit_id, int(b), int(c), float(c / counts.sum()))
                    for b, c in zip(brands, counts, strict=True)
                ],
            )
    conn.close()
    return len(analyses) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audits", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name in ("ours", "plain"):
            path = Path(tmp) / f"{name}.db"
            url = f"sqlite:///{path}"
            upgrade_database(url)
            with session_scope(url) as s:
                store = m.Store(name="Bench store")
                brands = [m.Brand(name=f"Brand {i}") for i in range(12)]
                s.add_all([store, *brands])
                s.flush()
                store_id, brand_ids = store.id, [b.id for b in brands]
            analyses = [_analysis(rng, brand_ids) for _ in range(args.audits)]
            results[name] = (
                ours(url, store_id, brand_ids, analyses)
                if name == "ours"
                else plain(path, store_id, analyses)
            )
    print(f"audit save, {args.audits} audits of 155 boxes, SQLite WAL, one transaction each")
    print(f"  save_audit (ORM + metrics) : {results['ours']:7.1f} audits/s")
    print(f"  plain sqlite3 executemany  : {results['plain']:7.1f} audits/s")
    print(f"  ratio ours/plain           : {results['ours'] / results['plain']:7.2f}")


if __name__ == "__main__":
    main()

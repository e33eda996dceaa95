"""A process that saves audits through the real save path (used by test_concurrency.py).

usage: python _save_worker.py DB_URL STORE_ID BRAND_IDS(comma) N_AUDITS [--forever]
"""

from __future__ import annotations

import sys

import numpy as np

from skuaudit.audit import ImageAnalysis, save_audit
from skuaudit.detections import Detections

PRODUCTS_PER_AUDIT = 30
GAPS_PER_AUDIT = 2
JPEG = b"\xff\xd8\xff\xd9"  # stored as-is; the save path does not decode it


def shelf_analysis(brand_ids: list[int], rng: np.random.Generator) -> ImageAnalysis:
    n = PRODUCTS_PER_AUDIT + GAPS_PER_AUDIT
    x1 = np.arange(n, dtype=np.float32) * 20
    xyxy = np.stack([x1, np.zeros(n), x1 + 18, np.full(n, 40)], axis=1)
    class_id = np.array([0] * PRODUCTS_PER_AUDIT + [1] * GAPS_PER_AUDIT)
    brands = np.concatenate([rng.choice(brand_ids, PRODUCTS_PER_AUDIT), [-1] * GAPS_PER_AUDIT])
    det = Detections(
        xyxy,
        np.full(n, 0.9),
        class_id,
        {
            "brand_id": brands,
            "brand_score": np.full(n, 0.8),
            "shelf_row": np.zeros(n, int),
            "corrected": np.zeros(n, bool),
        },
    )
    return ImageAnalysis(np.zeros((40, 700, 3), np.uint8), det)


def main() -> None:
    url, store_id, brand_csv, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    forever = "--forever" in sys.argv
    brand_ids = [int(b) for b in brand_csv.split(",")]
    rng = np.random.default_rng(store_id * 1000 + n)
    done = 0
    while forever or done < n:
        save_audit(
            store_id,
            [shelf_analysis(brand_ids, rng)],
            source="photo",
            user_name="worker",
            images_jpeg=[JPEG],
            url=url,
        )
        done += 1
        if forever and done == 1:
            print("saving", flush=True)


if __name__ == "__main__":
    main()

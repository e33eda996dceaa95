"""Data set folders of generated shelves, in YOLO, COCO and SKU-110K form (``generate_dataset``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from skuaudit.datasets.synth.shelf import render_shelf
from skuaudit.datasets.synth.sprites import load_product_crops
from skuaudit.detections import CLASS_NAMES


def image_seed(seed: int, index: int) -> int:
    """The ``render_shelf`` seed of image ``index`` of a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _render_to_file(args: tuple[int, int, int, int, str, str | None, str, str | None]) -> dict:
    index, seed, width, height, out_dir, texture_dir, name, crop_dir = args
    shelf = render_shelf(
        image_seed(seed, index), width, height, texture_dir=texture_dir, crop_dir=crop_dir
    )
    cv2.imwrite(
        str(Path(out_dir) / "images" / name), shelf.image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    return {
        "name": name,
        "boxes": shelf.boxes_xyxy.astype(np.float64).round(2).tolist(),
        "class_ids": shelf.class_ids.tolist(),
        "brands": shelf.brands,
        "rows": shelf.shelf_rows.tolist(),
    }


def _write_yolo(out: Path, records: list[dict], width: int, height: int) -> None:
    labels = out / "labels"
    labels.mkdir(exist_ok=True)
    for rec in records:
        lines = []
        for (x1, y1, x2, y2), cid in zip(rec["boxes"], rec["class_ids"], strict=True):
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            lines.append(
                f"{cid} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
            )
        (labels / Path(rec["name"]).with_suffix(".txt").name).write_text("\n".join(lines) + "\n")
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    (out / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames:\n{names}\n")


def _write_coco(out: Path, records: list[dict], width: int, height: int) -> None:
    images, annotations = [], []
    for image_id, rec in enumerate(records, start=1):
        images.append(
            {"id": image_id, "file_name": f"images/{rec['name']}", "width": width, "height": height}
        )
        for box, cid, brand, row in zip(
            rec["boxes"], rec["class_ids"], rec["brands"], rec["rows"], strict=True
        ):
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cid + 1,
                    "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": round((x2 - x1) * (y2 - y1), 2),
                    "iscrowd": 0,
                    "attributes": {"brand": brand, "shelf_row": row},
                }
            )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (out / "annotations.coco.json").write_text(json.dumps(coco))


def _write_sku110k(out: Path, records: list[dict], width: int, height: int) -> None:
    with (out / "annotations.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        for rec in records:
            for (x1, y1, x2, y2), cid in zip(rec["boxes"], rec["class_ids"], strict=True):
                writer.writerow([rec["name"], x1, y1, x2, y2, CLASS_NAMES[cid], width, height])


_WRITERS = {"yolo": _write_yolo, "coco": _write_coco, "sku110k": _write_sku110k}


def generate_dataset(
    out_dir: str | Path,
    n: int,
    seed: int,
    width: int = 1024,
    height: int = 768,
    formats: Sequence[str] = ("yolo", "coco", "sku110k"),
    texture_dir: str | Path | None = None,
    workers: int = 1,
    crop_dir: str | Path | None = None,
) -> Path:
    """Render ``n`` shelves into ``out_dir`` with YOLO, COCO and SKU-110K annotations.

    The layout is described in ``skuaudit.datasets.synth``. Image ``i`` is ``render_shelf(image_seed(seed,
    i), ...)``, so a dataset is reproducible image by image and can be extended.

    Args:
        out_dir: folder to write (created if missing).
        n: number of images.
        seed: dataset seed.
        width, height: image size.
        formats: any of ``yolo``, ``coco``, ``sku110k``.
        texture_dir: optional folder of real photos for product artwork.
        workers: processes rendering in parallel.
        crop_dir: optional folder of photos of single real products for whole facings.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    unknown = set(formats) - set(_WRITERS)
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}; known: {sorted(_WRITERS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tex = str(texture_dir) if texture_dir is not None else None
    crops = str(crop_dir) if crop_dir is not None else None
    if crops is not None:
        load_product_crops(crops)  # a bad folder fails here, not in a worker
    jobs = [(i, seed, width, height, str(out), tex, f"synth_{i:06d}.jpg", crops) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            records = list(pool.map(_render_to_file, jobs, chunksize=4))
    else:
        records = [_render_to_file(job) for job in jobs]
    for name in formats:
        _WRITERS[name](out, records, width, height)
    brands = sorted({b for rec in records for b in rec["brands"] if b})
    (out / "brands.json").write_text(json.dumps({"brands": brands, "seed": seed}, indent=1))
    return out

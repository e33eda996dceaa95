"""``skuaudit evaluate-recognition`` on tiny generated folders of product photos, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from skuaudit.cli import main as cli
from skuaudit.datasets.synth import make_catalogue, render_product
from skuaudit.detections import Detections
from skuaudit.images import crop_xyxy
from skuaudit.recognition import Gallery, Recognizer
from skuaudit.recognition_eval import (
    DEFAULT_CENTRE,
    centre_box,
    evaluate_recognition,
    read_product_folders,
)

N_PRODUCTS = 4


def _photo(brand, rng: np.random.Generator, variant: int) -> np.ndarray:
    """A 'phone photo' of one product: a generated pack in the centre of a busy background."""
    side = 240
    photo = cv2.GaussianBlur(rng.integers(0, 255, (side, side, 3), dtype=np.uint8), (0, 0), 4)
    h = int(rng.uniform(170, 195))
    w = int(h * rng.uniform(0.45, 0.55))
    pack = render_product(brand, brand.families[0], w, h, rng, variant=variant)
    y = (side - h) // 2 + int(rng.integers(-6, 7))
    x = (side - w) // 2 + int(rng.integers(-6, 7))
    photo[y : y + h, x : x + w] = pack
    return np.clip(photo.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("products")
    catalogue = make_catalogue(N_PRODUCTS, seed=8080)
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("test", 2)):
        for brand in catalogue.brands:
            folder = root / split / brand.name
            folder.mkdir(parents=True)
            for i in range(count):
                cv2.imwrite(str(folder / f"{i}.jpg"), _photo(brand, rng, variant=0))
    (root / "iconic").mkdir()
    for brand in catalogue.brands:
        shot = np.full((200, 200, 3), 255, np.uint8)
        shot[10:190, 55:145] = render_product(brand, brand.families[0], 90, 180, rng)
        cv2.imwrite(str(root / "iconic" / f"{brand.name}.jpg"), shot)
    return {"root": root, "train": root / "train", "test": root / "test", "iconic": root / "iconic"}


def _evaluate(references: Path, queries: Path, *args: str) -> int:
    """``skuaudit evaluate-recognition --references R --queries Q ARGS``: its exit code."""
    return cli(
        ["evaluate-recognition", "--references", str(references), "--queries", str(queries), *args]
    )


def test_cli_prints_top1_per_k_and_a_json_last_line(folders, capsys):
    code = _evaluate(
        folders["train"],
        folders["test"],
        "--k",
        "1",
        "3",
        "--draws",
        "2",
        "--iconic",
        str(folders["iconic"]),
        "--open-set",
        "--json",
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert "top-1 with 1 reference(s) per product" in out[1]
    result = json.loads(out[-1])
    assert set(result["top1"]) == {"1", "3"}
    assert result["queries"] == N_PRODUCTS * 2 and result["products"] == N_PRODUCTS
    assert result["top1_spread"]["3"]["draws"] == 2
    assert result["top1"]["3"] >= 0.75  # 0.25 by chance
    assert 0.0 <= result["iconic_top1"] <= 1.0
    assert set(result["open_set"]) >= {"unknown_precision", "unknown_recall", "known_correct"}


def test_evaluation_uses_the_audit_code_path(folders):
    """The evaluation's answer for a query equals ``assign_products`` on the photo's centre box."""
    recognizer = Recognizer.load()
    references = read_product_folders(folders["train"])
    queries = read_product_folders(folders["test"])
    result = evaluate_recognition(references, queries, recognizer, ks=[3], draws=1)
    # k = 3 of 3 photos: the draw enrols every reference, so a gallery of all of them agrees
    gallery = Gallery.from_references(
        [
            (p, crop_xyxy(im, centre_box(im, DEFAULT_CENTRE)))
            for p, ims in enumerate(references.images)
            for im in ims
        ],
        recognizer,
    )
    right = 0
    for p, ims in enumerate(queries.images):
        for im in ims:
            det = Detections(centre_box(im, DEFAULT_CENTRE)[None], class_id=[0])
            found = recognizer.assign_products(im, det, gallery, threshold=0.0)
            right += int(found.data["product_id"][0] == p)
    assert result["top1"]["3"] == pytest.approx(right / len(queries.names) / 2)


def _missing(root: Path) -> Path:
    return root / "missing"


def _flat(root: Path) -> Path:
    (root / "flat").mkdir()
    (root / "flat" / "a.jpg").write_bytes(b"")
    return root / "flat"


def _empty_product(root: Path) -> Path:
    (root / "e" / "p").mkdir(parents=True)
    return root / "e"


def _not_an_image(root: Path) -> Path:
    (root / "n" / "p").mkdir(parents=True)
    (root / "n" / "p" / "x.jpg").write_bytes(b"not a jpeg")
    return root / "n"


@pytest.mark.parametrize(
    "make_bad, args, message",
    [
        (_missing, [], "does not exist"),
        (_flat, [], "no product sub-folders"),
        (_empty_product, [], "has no photos"),
        (_not_an_image, [], "x.jpg"),
        (None, ["--k", "4"], "has only 3 reference photo"),
        (None, ["--k", "0"], "each >= 1"),
        (None, ["--draws", "0"], "at least 1"),
        (None, ["--centre", "0", "1"], "two fractions"),
    ],
)
def test_bad_input_gets_a_clear_message(folders, tmp_path, capsys, make_bad, args, message):
    references = make_bad(tmp_path) if make_bad else folders["train"]
    code = _evaluate(references, folders["test"], *args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_queries_without_references_and_iconic_gaps_are_named(folders, tmp_path, capsys):
    extra = tmp_path / "queries"
    (extra / "Nobody-Enrolled").mkdir(parents=True)
    photo = next(iter(folders["test"].glob("*/*.jpg")))
    (extra / "Nobody-Enrolled" / "a.jpg").write_bytes(photo.read_bytes())
    code = _evaluate(folders["train"], extra)
    assert code == 2 and "Nobody-Enrolled" in capsys.readouterr().err
    (tmp_path / "iconic").mkdir()
    code = _evaluate(folders["train"], folders["test"], "--iconic", str(tmp_path / "iconic"))
    assert code == 2 and "no image for 4 product(s)" in capsys.readouterr().err


def test_files_that_are_not_images_are_ignored_with_a_note(folders, tmp_path, capsys):
    import shutil

    copy = tmp_path / "refs"
    shutil.copytree(folders["train"], copy)
    note = next(copy.iterdir()) / "notes.txt"
    note.write_text("shot on a Tuesday")
    photos = read_product_folders(copy)
    assert photos.ignored == [note] and len(photos) == N_PRODUCTS
    code = _evaluate(copy, folders["test"], "--k", "1", "--draws", "1")
    assert code == 0 and "ignored (not an image file)" in capsys.readouterr().err

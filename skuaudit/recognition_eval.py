"""``skuaudit evaluate-recognition``: few-shot product recognition measured on your own photos.

Both folders hold one sub-folder of photos per product (``references/<product>/*.jpg``,
``queries/<product>/*.jpg``). For each ``k``, ``draws`` times, ``k`` random photos per product
are enrolled from the references and every query photo is recognised; the figure is top-1
accuracy (the best-scoring product is the right one: every query shows an enrolled product, so
no unknown threshold applies), as mean and spread over the draws.

A photo shows one product in its centre (the layout of the Grocery Store Dataset): the box given
to recognition is the centre of the photo (``--centre``, a fraction of its width and height), for
references and queries alike, and recognition runs on that box through the audit's own code:
``Recognizer.describe`` + ``Gallery.matcher(...).match_features``, which is what
``Recognizer.assign_products`` runs for each product box (queries are described once and matched
against every draw's gallery). ``--iconic DIR`` (``<product>.jpg`` each, a catalogue pack shot,
its plain background trimmed by ``sku_matching.trim_background``) adds the case where that image is the only reference. ``--open-set`` enrols half of
the products (a random half per draw) and asks every query: photos of products not enrolled
should come out ``unknown``.

Example:
    skuaudit evaluate-recognition --references products/train --queries products/test \\
        --k 1 5 20 --draws 10 --iconic products/iconic --open-set --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skuaudit.images import ImageError, crop_xyxy, load_image_file
from skuaudit.sku_matching import trim_background

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
DEFAULT_CENTRE = (0.55, 0.85)  # width, height: chosen on products/train (cross-validation) + val
OPEN_SET_K = 5


class EvaluationInputError(ValueError):
    """Folders that cannot be evaluated; the message says which and why."""


@dataclass
class ProductPhotos:
    """Photos of products: ``names`` sorted, ``images[i]`` the BGR photos of ``names[i]``."""

    names: list[str]
    images: list[list[np.ndarray]]
    ignored: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def read_product_folders(folder: str | Path, *, role: str = "references") -> ProductPhotos:
    """Read ``folder/<product>/<photo>``.

    Files whose names do not end in an image suffix are ignored (listed in ``ignored``).

    Raises:
        EvaluationInputError: not a folder, no product sub-folders, a product folder without
            photos, or a photo that does not decode.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationInputError(f"{role} folder {folder} does not exist or is not a folder")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise EvaluationInputError(
            f"{role} folder {folder} has no product sub-folders (expected {folder}/<product>/*.jpg)"
        )
    names, images, ignored = [], [], []
    for sub in subdirs:
        files = sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith("."))
        photos = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        ignored += [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if not photos:
            raise EvaluationInputError(
                f"{role} folder {sub} has no photos (JPEG, PNG, WebP or BMP files)"
            )
        try:
            images.append([load_image_file(p) for p in photos])
        except ImageError as exc:
            raise EvaluationInputError(f"{role}: {exc}") from exc
        names.append(sub.name)
    return ProductPhotos(names, images, ignored)


def read_iconic(folder: str | Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """``<product>.<image suffix>`` for each product name.

    Raises:
        EvaluationInputError: not a folder, a product without its image, an image that does
            not decode.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationInputError(f"iconic folder {folder} does not exist or is not a folder")
    found = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    missing = [n for n in names if n not in found]
    if missing:
        raise EvaluationInputError(
            f"iconic folder {folder} has no image for {len(missing)} product(s): "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
            "(expected <product>.jpg, named like the reference folders)"
        )
    try:
        return {n: load_image_file(found[n]) for n in names}
    except ImageError as exc:
        raise EvaluationInputError(f"iconic: {exc}") from exc


def centre_box(image_bgr: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """Pixel ``xyxy`` box of the central ``centre = (width fraction, height fraction)``."""
    h, w = image_bgr.shape[:2]
    fw, fh = centre
    return np.array(
        [w * (1 - fw) / 2, h * (1 - fh) / 2, w * (1 + fw) / 2, h * (1 + fh) / 2], np.float32
    )


def _spread(values: Sequence[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {
        "mean": round(float(v.mean()), 4),
        "std": round(float(v.std()), 4),
        "min": round(float(v.min()), 4),
        "max": round(float(v.max()), 4),
        "draws": len(v),
    }


def check_request(
    references: ProductPhotos,
    queries: ProductPhotos,
    *,
    ks: Sequence[int],
    draws: int,
    open_set: bool,
) -> None:
    """Refuse an evaluation that cannot run, before any model is loaded.

    Raises:
        EvaluationInputError: a query product without references, ``k`` larger than the
            reference photos of some product, fewer than 1 draw, open set with one product.
    """
    missing = [n for n in queries.names if n not in references.names]
    if missing:
        raise EvaluationInputError(
            f"{len(missing)} query product(s) have no reference folder: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    if draws < 1:
        raise EvaluationInputError("--draws must be at least 1")
    if not ks or min(ks) < 1:
        raise EvaluationInputError("--k: give one or more numbers of references, each >= 1")
    fewest = min(range(len(references)), key=lambda i: len(references.images[i]))
    n_fewest = len(references.images[fewest])
    too_big = [k for k in ks if k > n_fewest]
    if too_big:
        raise EvaluationInputError(
            f"--k {too_big[0]}: product {references.names[fewest]} has only {n_fewest} "
            f"reference photo(s); use k <= {n_fewest}"
        )
    if open_set and len(references) < 2:
        raise EvaluationInputError("--open-set needs at least 2 products (half are enrolled)")


def evaluate_recognition(
    references: ProductPhotos,
    queries: ProductPhotos,
    recognizer,
    *,
    ks: Sequence[int] = (1, 5, 20),
    draws: int = 10,
    seed: int = 0,
    centre: tuple[float, float] = DEFAULT_CENTRE,
    iconic: dict[str, np.ndarray] | None = None,
    open_set: bool = False,
    fast: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict:
    """Top-1 per ``k`` (mean and spread over ``draws``), optionally iconic-only and open set.

    ``fast`` scores the live-frame path (embedding and colour, no keypoints) instead of the
    photo path.

    Raises:
        EvaluationInputError: a query product without references, or ``k`` larger than the
            reference photos of some product.
    """
    from skuaudit.recognition import Gallery

    check_request(references, queries, ks=ks, draws=draws, open_set=open_set)

    def crops(images: list[np.ndarray]) -> list[np.ndarray]:
        return [crop_xyxy(im, centre_box(im, centre)) for im in images]

    log("describing reference photos ...")
    ref_features = [recognizer.describe(crops(ims), fast=fast) for ims in references.images]
    label_of = {n: i for i, n in enumerate(references.names)}
    q_images = [im for ims in queries.images for im in ims]
    q_labels = np.array(
        [label_of[n] for n, ims in zip(queries.names, queries.images, strict=True) for _ in ims]
    )
    log(f"describing {len(q_images)} query photos ...")
    q_features = recognizer.describe(crops(q_images), fast=fast)
    rng = np.random.default_rng(seed)

    def gallery_of(picks: dict[int, np.ndarray]) -> Gallery:
        labels = [p for p, idx in picks.items() for _ in idx]
        feats = [ref_features[p][j] for p, idx in picks.items() for j in idx]
        return Gallery.from_features(labels, feats)

    def predict(gallery: Gallery, *, closed: bool = True) -> tuple[np.ndarray, np.ndarray]:
        # closed set: every query shows an enrolled product, so the best product is the answer
        threshold = 0.0 if closed else None
        matcher = gallery.matcher(recognizer)
        return matcher.match_features(q_features, threshold=threshold, fast=fast)

    result: dict = {
        "products": len(references),
        "queries": len(q_images),
        "crop": {"centre_width": centre[0], "centre_height": centre[1]},
        "path": "fast" if fast else "photo",
        "top1": {},
        "top1_spread": {},
    }
    confusions: Counter = Counter()
    for k in ks:
        accs = []
        for d in range(draws):
            picks = {
                p: rng.choice(len(references.images[p]), k, replace=False)
                for p in range(len(references))
            }
            found, _ = predict(gallery_of(picks))
            accs.append(float((found == q_labels).mean()))
            if k == max(ks):
                confusions.update(
                    (references.names[t], references.names[f] if f >= 0 else "unknown")
                    for t, f in zip(q_labels, found, strict=True)
                    if t != f
                )
            log(f"k={k} draw {d + 1}/{draws}: top-1 {accs[-1]:.3f}")
        result["top1"][str(k)] = round(float(np.mean(accs)), 4)
        result["top1_spread"][str(k)] = _spread(accs)
    result["confusions"] = [
        {"product": t, "named": f, "count": c} for (t, f), c in confusions.most_common(10)
    ]
    if iconic is not None:
        feats = recognizer.describe(
            [trim_background(iconic[n]) for n in references.names], fast=fast
        )
        found, _ = predict(Gallery.from_features(list(range(len(references))), feats))
        result["iconic_top1"] = round(float((found == q_labels).mean()), 4)
        log(f"iconic image only: top-1 {result['iconic_top1']:.3f}")
    if open_set:
        result["open_set"] = _open_set(references, ref_features, q_labels, predict, draws, rng)
    return result


def _open_set(references, ref_features, q_labels, predict, draws, rng) -> dict:
    from skuaudit.recognition import Gallery

    n_products = len(references)
    k = min(OPEN_SET_K, min(len(ims) for ims in references.images))
    figures: dict[str, list[float]] = {
        "unknown_precision": [],
        "unknown_recall": [],
        "known_correct": [],
    }
    for _ in range(draws):
        enrolled = np.zeros(n_products, bool)
        enrolled[rng.choice(n_products, n_products // 2, replace=False)] = True
        labels, feats = [], []
        for p in np.flatnonzero(enrolled):
            for j in rng.choice(len(references.images[p]), k, replace=False):
                labels.append(int(p))
                feats.append(ref_features[p][j])
        found, _ = predict(Gallery.from_features(labels, feats), closed=False)
        unknown, called_unknown = ~enrolled[q_labels], found == -1
        hit = float((unknown & called_unknown).sum())
        figures["unknown_precision"].append(hit / max(called_unknown.sum(), 1))
        figures["unknown_recall"].append(hit / max(unknown.sum(), 1))
        figures["known_correct"].append(float((found[~unknown] == q_labels[~unknown]).mean()))
    out = {name: round(float(np.mean(v)), 4) for name, v in figures.items()}
    out["spread"] = {name: _spread(v) for name, v in figures.items()}
    out["k"] = k
    return out


def format_report(result: dict) -> str:
    """The human-readable lines of ``cli_main``."""
    lines = [
        f"{result['products']} products, {result['queries']} query photos; box: the centre "
        f"{result['crop']['centre_width']:.0%} x {result['crop']['centre_height']:.0%} of each "
        f"photo; {result['path']} path"
    ]
    for k, s in result["top1_spread"].items():
        lines.append(
            f"top-1 with {k} reference(s) per product: {s['mean']:.3f} +- {s['std']:.3f} "
            f"(min {s['min']:.3f}, max {s['max']:.3f}, {s['draws']} draws)"
        )
    if "iconic_top1" in result:
        lines.append(f"top-1 with the iconic image only: {result['iconic_top1']:.3f}")
    if "open_set" in result:
        o = result["open_set"]
        lines.append(
            f"open set (half the products enrolled, {o['k']} references each): unknown "
            f"precision {o['unknown_precision']:.3f}, recall {o['unknown_recall']:.3f}; "
            f"enrolled products named right {o['known_correct']:.3f}"
        )
    if result.get("confusions"):
        lines.append(
            "most frequent mistakes (largest k): "
            + "; ".join(
                f"{c['product']} -> {c['named']} x{c['count']}" for c in result["confusions"][:5]
            )
        )
    return "\n".join(lines)


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="skuaudit evaluate-recognition",
        description="Few-shot product recognition on your photos: top-1 per number of references.",
    )
    parser.add_argument("--references", required=True, type=Path, help="DIR/<product>/photos")
    parser.add_argument("--queries", required=True, type=Path, help="DIR/<product>/photos")
    parser.add_argument(
        "--k", type=int, nargs="+", default=[1, 5, 20], help="references per product"
    )
    parser.add_argument("--draws", type=int, default=10, help="random draws of references per k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iconic", type=Path, help="DIR/<product>.jpg: the only reference each")
    parser.add_argument("--open-set", action="store_true", help="enrol half the products")
    parser.add_argument(
        "--centre",
        type=float,
        nargs=2,
        default=list(DEFAULT_CENTRE),
        metavar=("WIDTH", "HEIGHT"),
        help="the box recognised: this central fraction of each photo (1 1: the whole photo)",
    )
    parser.add_argument(
        "--fast", action="store_true", help="the live-frame path (no keypoint verification)"
    )
    parser.add_argument("--recognition-model", type=Path, help="default: models/recognition")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)

    from skuaudit.recognition import RecognitionModelError, Recognizer

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if not all(0 < f <= 1 for f in args.centre):
            raise EvaluationInputError("--centre: two fractions in (0, 1], e.g. 0.55 0.85")
        references = read_product_folders(args.references, role="references")
        queries = read_product_folders(args.queries, role="queries")
        for path in references.ignored + queries.ignored:
            log(f"ignored (not an image file): {path}")
        iconic = read_iconic(args.iconic, references.names) if args.iconic else None
        check_request(references, queries, ks=args.k, draws=args.draws, open_set=args.open_set)
        recognizer = Recognizer.load(args.recognition_model)
        result = evaluate_recognition(
            references,
            queries,
            recognizer,
            ks=args.k,
            draws=args.draws,
            seed=args.seed,
            centre=tuple(args.centre),
            iconic=iconic,
            open_set=args.open_set,
            fast=args.fast,
            log=log,
        )
    except (EvaluationInputError, RecognitionModelError) as exc:
        print(f"skuaudit evaluate-recognition: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    if args.json:
        print(json.dumps(result))
    return 0

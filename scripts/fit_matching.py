"""Fit the product matcher's weights and thresholds on real product photos; write them to the
recognition model's ``config.json`` (section ``matching``).

Data: a folder in the layout of the Grocery Store Dataset products (``train/<product>/*.jpg``,
``val/<product>/*.jpg``), e.g. ``../shared/data/products``. Test photos are never read here.

- **Weights** (logistic regression of "this product is the right one" on the cues of
  ``skuaudit.sku_matching``): cross-validation on ``train/``: in each draw ``k`` (1 or 5) photos
  per product are enrolled and up to 8 other photos per product are the queries. The fast path
  (embedding + colour) is fitted first: its weights also rank the products whose keypoints the
  photo path verifies.
- **Thresholds**: on ``val/`` queries against references from ``train/``, half of the products
  enrolled (5 references each), the score that maximises min(unknown precision, unknown recall).

Usage (a few minutes on 2 CPU cores)::

    nice -n 5 .venv/bin/python scripts/fit_matching.py --products ../shared/data/products \\
        --model models/recognition
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from skuaudit.images import crop_xyxy
from skuaudit.recognition import Recognizer
from skuaudit.recognition_eval import DEFAULT_CENTRE, centre_box, read_product_folders
from skuaudit.sku_matching import MatchSettings, ProductMatcher, describe

CV_DRAWS = 6
QUERIES_PER_PRODUCT = 8
OPEN_SET_DRAWS = 20


def _describe_folder(photos, recognizer: Recognizer, settings: MatchSettings):
    return [
        describe(
            [crop_xyxy(im, centre_box(im, DEFAULT_CENTRE)) for im in ims],
            recognizer.embed,
            settings,
        )
        for ims in photos.images
    ]


def _cue_matrix(matcher: ProductMatcher, queries, fast: bool) -> np.ndarray:
    """``(N, P, C)``: fast path C = 2 (embedding, colour), photo path C = 4."""
    cues = matcher.cues(queries, fast=fast)
    names = ["embedding", "colour"] + ([] if fast else ["inliers", "inlier_share"])
    columns = [np.log1p(cues[n]) if n == "inliers" else cues[n] for n in names]
    return np.stack(columns, axis=-1)


def _fit_logistic(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Weights ``(bias, w...)`` of P(product is the true one | its cues)."""
    x = np.concatenate([cues.reshape(-1, cues.shape[-1]) for cues, _, _ in rows])
    y = np.concatenate(
        [(products[None, :] == truth[:, None]).reshape(-1) for _, truth, products in rows]
    ).astype(np.float64)

    def loss(w: np.ndarray) -> float:
        z = w[0] + x @ w[1:]
        return float(np.mean(np.logaddexp(0, z) - y * z) + 1e-4 * np.sum(w[1:] ** 2))

    return minimize(loss, np.zeros(x.shape[1] + 1), method="L-BFGS-B").x


def _top1(rows, weights: np.ndarray) -> float:
    return float(
        np.mean(
            [
                np.mean(products[(weights[0] + cues @ weights[1:]).argmax(1)] == truth)
                for cues, truth, products in rows
            ]
        )
    )


def cross_validation_rows(features, settings: MatchSettings, k: int, fast: bool, seed: int):
    """Cue matrices of ``CV_DRAWS`` draws on the training photos."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(CV_DRAWS):
        labels, refs, queries, truth = [], [], [], []
        for p, feats in enumerate(features):
            order = rng.permutation(len(feats))
            labels += [p] * k
            refs += [feats[j] for j in order[:k]]
            query_idx = order[k : k + QUERIES_PER_PRODUCT]
            queries += [feats[j] for j in query_idx]
            truth += [p] * len(query_idx)
        matcher = ProductMatcher(labels, refs, settings=settings)
        rows.append((_cue_matrix(matcher, queries, fast), np.array(truth), matcher.products))
    return rows


def choose_threshold(train_feats, val_feats, val_names, train_names, settings, fast, seed):
    """The open-set threshold on val (half the products enrolled), and its figures."""
    rng = np.random.default_rng(seed)
    label_of = {n: i for i, n in enumerate(train_names)}
    q_labels = np.array([label_of[n] for n, f in zip(val_names, val_feats, strict=True) for _ in f])
    queries = [q for f in val_feats for q in f]
    best_scores, best_labels, unknown = [], [], []
    for _ in range(OPEN_SET_DRAWS):
        enrolled = np.zeros(len(train_feats), bool)
        enrolled[rng.choice(len(train_feats), len(train_feats) // 2, replace=False)] = True
        labels, refs = [], []
        for p in np.flatnonzero(enrolled):
            for j in rng.choice(len(train_feats[p]), 5, replace=False):
                labels.append(int(p))
                refs.append(train_feats[p][j])
        matcher = ProductMatcher(labels, refs, settings=settings)
        found, scores = matcher.match_features(queries, fast=fast, threshold=0.0)
        best_scores.append(scores)
        best_labels.append(found)
        unknown.append(~enrolled[q_labels])
    scores, found, unknown = map(np.concatenate, (best_scores, best_labels, unknown))
    truth = np.tile(q_labels, OPEN_SET_DRAWS)

    def figures(t: float) -> dict:
        rejected = scores < t
        hit = float((rejected & unknown).sum())
        return {
            "threshold": round(float(t), 3),
            "unknown_precision": round(hit / max(rejected.sum(), 1), 4),
            "unknown_recall": round(hit / max(unknown.sum(), 1), 4),
            "known_correct": round(float((~rejected & (found == truth))[~unknown].mean()), 4),
        }

    candidates = np.linspace(0.02, 0.98, 97)
    best = max(
        candidates,
        key=lambda t: (
            min(figures(t)["unknown_precision"], figures(t)["unknown_recall"]),
            figures(t)["known_correct"],
        ),
    )
    return float(best), figures(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=Path, required=True, help="folder with train/ and val/")
    parser.add_argument("--model", type=Path, default=Path("models/recognition"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{(time.perf_counter() - t0) / 60:5.1f} min] {msg}", flush=True)

    recognizer = Recognizer.load(args.model)
    settings = recognizer.matching
    train = read_product_folders(args.products / "train", role="train")
    val = read_product_folders(args.products / "val", role="val")
    train_feats = _describe_folder(train, recognizer, settings)
    val_feats = _describe_folder(val, recognizer, settings)
    log(f"described {sum(map(len, train_feats))} train and {sum(map(len, val_feats))} val photos")

    fast_rows = [
        row
        for k in (1, 5)
        for row in cross_validation_rows(train_feats, settings, k, True, args.seed + k)
    ]
    fast_w = _fit_logistic(fast_rows)
    settings = replace(settings, fast_weights=tuple(round(float(w), 4) for w in fast_w))
    log(
        f"fast weights {settings.fast_weights}: cross-validated top-1 {_top1(fast_rows, fast_w):.3f}"
    )
    photo_rows = [
        row
        for k in (1, 5)
        for row in cross_validation_rows(train_feats, settings, k, False, args.seed + k)
    ]
    photo_w = _fit_logistic(photo_rows)
    settings = replace(settings, weights=tuple(round(float(w), 4) for w in photo_w))
    log(f"photo weights {settings.weights}: cross-validated top-1 {_top1(photo_rows, photo_w):.3f}")

    report = {}
    for fast in (True, False):
        threshold, figures = choose_threshold(
            train_feats, val_feats, val.names, train.names, settings, fast, args.seed
        )
        settings = replace(settings, **{"fast_threshold" if fast else "threshold": threshold})
        report["fast" if fast else "photo"] = figures
        log(f"{'fast' if fast else 'photo'} path, val open set: {figures}")

    config_path = args.model / "config.json"
    config = json.loads(config_path.read_text())
    config["matching"] = settings.to_dict()
    config["matching_fit"] = {
        "data": str(args.products),
        "cross_validation_draws": CV_DRAWS,
        "val_open_set": report,
        "minutes": round((time.perf_counter() - t0) / 60, 1),
    }
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    log(f"wrote {config_path}")


if __name__ == "__main__":
    main()

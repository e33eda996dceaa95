"""``scripts/fit_matching.py``'s threshold choice: per-draw figures, and the real photos (the first
domain) deciding, on small synthetic feature sets (no photos, no model)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from skuaudit.sku_matching import CropFeatures, MatchSettings

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def fit():
    spec = importlib.util.spec_from_file_location("fit_matching", SCRIPTS / "fit_matching.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fit_matching"] = module  # its dataclass looks its module up
    try:
        spec.loader.exec_module(module)  # the script puts scripts/ on sys.path itself
        yield module
    finally:
        sys.modules.pop("fit_matching", None)


def _domain(fit, name: str, noise: float, seed: int, draws: int):
    """8 products around random unit embeddings; 6 references and 4 queries each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 16))

    def feature(p: int) -> CropFeatures:
        e = centres[p] / np.linalg.norm(centres[p]) + noise * rng.normal(size=16)
        colour = np.abs(rng.normal(size=12))
        return CropFeatures(e / np.linalg.norm(e), colour / np.linalg.norm(colour))

    refs = [[feature(p) for _ in range(6)] for p in range(8)]
    queries = [[feature(p) for _ in range(4)] for p in range(8)]
    return fit.Domain(name, refs, None, queries, draws)


def test_open_set_figures_pool_and_average_the_draws(fit):
    truth = np.array([0, 1, 2, 3])
    unknown = np.array([False, False, True, True])
    draws = [
        # rejects queries 1 and 2: precision 1/2, recall 1/2
        (np.array([0.9, 0.1, 0.2, 0.8]), truth, truth, unknown),
        # rejects queries 2 and 3: precision 1, recall 1
        (np.array([0.9, 0.9, 0.2, 0.1]), truth, truth, unknown),
    ]
    figures = fit.open_set_figures(draws, 0.5)
    assert figures["unknown_precision"] == 0.75 and figures["unknown_recall"] == 0.75
    assert figures["mean_unknown_precision"] == 0.75 and figures["mean_unknown_recall"] == 0.75
    assert figures["mean_min_precision_recall"] == 0.75
    assert figures["known_correct"] == 0.75  # query 1 of the first draw was wrongly rejected
    lopsided = [draws[0], (np.array([0.9, 0.9, 0.9, 0.1]), truth, truth, unknown)]
    # second draw: precision 1, recall 1/2; per-draw mins 1/2 and 1/2
    assert fit.open_set_figures(lopsided, 0.5)["mean_min_precision_recall"] == 0.5


def test_the_first_domain_decides_the_threshold(fit):
    real = _domain(fit, "real photos", noise=0.35, seed=1, draws=12)
    generated = _domain(fit, "generated packs", noise=0.1, seed=2, draws=6)
    settings = MatchSettings()
    for fast in (True, False):
        threshold, figures = fit.choose_threshold([real, generated], settings, fast, seed=0)
        assert set(figures) == {"real photos", "generated packs"}
        draws = fit.open_set_scores(real, settings, fast, 0)
        assert len(draws) == 12
        best = max(
            fit.open_set_figures(draws, t)["mean_min_precision_recall"]
            for t in np.linspace(0.02, 0.98, 97)
        )
        assert figures["real photos"]["mean_min_precision_recall"] == best
        assert figures["real photos"]["threshold"] == round(threshold, 3)

"""Shared fixtures.

streamlit_webrtc is imported first on purpose: with TensorFlow >= 2.20, importing TensorFlow before
it segfaults the process (STACK.md), and pytest runs everything in one process.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import streamlit_webrtc  # noqa: F401, I001

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Fixtures that train a model: a test using one (directly or through another fixture) is slow.
TRAINING_FIXTURES = {"tiny_detector"}
BROWSER_TESTS = Path(__file__).resolve().parent / "e2e"
PAGE_TESTS = Path(__file__).resolve().parent / "pages"


def pytest_collection_modifyitems(config, items):
    """Mark ``slow`` (``make test-fast`` skips them; ``make test`` runs them) every test that needs
    the trained tiny detector and every browser test (``tests/e2e``), besides the tests marked by
    hand because they train a model themselves."""
    for item in items:
        needs_training = TRAINING_FIXTURES & set(getattr(item, "fixturenames", ()))
        if needs_training or BROWSER_TESTS in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
    # The order of `make test`'s two workers (pytest-xdist, whole modules per worker): the live
    # browser test first, beside the page tests that train nothing (Streamlit's AppTest: one
    # core, no browser, no export), because a live stream starved of CPU is scaled down and
    # blurred by the browser (fewer facings found, far fewer brands named); then the other
    # browser modules, the modules with slow tests, and the rest last, so the two workers end
    # together. The order inside a module is kept.
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}

    def weight(item) -> int:
        path = Path(item.path)
        if BROWSER_TESTS in path.parents:
            return 0 if path.name == "test_live_browser.py" else 2
        if PAGE_TESTS in path.parents and item.path not in slow_modules:
            return 1
        return 3 if item.path in slow_modules else 4

    items.sort(key=weight)


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session, or a skip naming what is missing."""
    from tests._pgserver import PostgresServer, find_pg_bin

    if find_pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail(
                "PostgreSQL is not installed; make test installs it (scripts/install_system_deps.sh)"
            )
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request, tmp_path, monkeypatch) -> str:
    """A fresh migrated database on SQLite and on a real PostgreSQL server, in turn."""
    from skuaudit.storage.db import upgrade_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'skuaudit.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("SKUAUDIT_DB_URL", url)
    upgrade_database(url)
    return url


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    """A fresh migrated SQLite file, also exported as SKUAUDIT_DB_URL for code that reads it."""
    from skuaudit.storage.db import upgrade_database

    url = f"sqlite:///{tmp_path / 'skuaudit.db'}"
    monkeypatch.setenv("SKUAUDIT_DB_URL", url)
    monkeypatch.setenv("SKUAUDIT_MEDIA_DIR", str(tmp_path / "media"))
    upgrade_database(url)
    return url


@pytest.fixture
def demo_db_url(db_url) -> str:
    """A migrated SQLite file filled with the demo data."""
    from skuaudit.demo import seed_demo

    seed_demo(db_url)
    return db_url


@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    """File name -> bytes of every st.download_button payload the app's runs register."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    saved: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if filename and isinstance(path_or_data, bytes):
            saved[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return saved


@pytest.fixture
def eager_steps():
    """Training steps run eagerly (``tf.config.run_functions_eagerly``) for the test.

    Tracing the train step into a graph costs ~25 s of one core whatever the model's width (it
    is a pass over every layer, the loss and the optimiser in Python); a step run eagerly costs
    about a second at 64-128 px. Tests that check the plumbing of a run of a handful of steps
    (stop and resume, CLI options, fine-tuning a grown model) use this; the tests that check
    what training learns, the tiny detector fixture and the JAX/TensorFlow agreement keep
    compiled steps.
    """
    import warnings

    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    try:
        with warnings.catch_warnings():
            # the input pipeline's tf.data functions stay compiled, as they should
            warnings.filterwarnings("ignore", "Even though the `tf.config.experimental_run_")
            yield
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="session")
def synth_shelf_dataset(tmp_path_factory):
    """16 small rendered shelves (512x384 JPEGs) as a ``Dataset`` with product and gap boxes."""
    import cv2

    from skuaudit.datasets.base import Dataset
    from skuaudit.datasets.synth import render_shelf

    folder = tmp_path_factory.mktemp("synth_shelves")
    images = []
    for seed in range(16):
        shelf = render_shelf(seed=seed, width=512, height=384)
        path = folder / f"shelf_{seed:02d}.jpg"
        cv2.imwrite(str(path), shelf.image_bgr)
        images.append(shelf.to_labeled_image(path))
    return Dataset(["product", "gap"], images)


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory, synth_shelf_dataset):
    """A tiny detector (alpha 0.35, 128 px) trained a few steps: ``(model_dir, progress_events)``."""
    from skuaudit.training.train import TrainConfig, train_detector

    events: list[dict] = []
    config = TrainConfig(
        out_dir=tmp_path_factory.mktemp("models") / "tiny",
        steps=40,
        batch_size=4,
        image_size=128,
        alpha=0.35,
        learning_rate=3e-3,
        val_fraction=0.25,
        tile=False,
        augment=False,
        eval_every=20,
        log_every=5,
        eval_max_images=2,
    )
    model_dir = train_detector(config, [synth_shelf_dataset], progress_callback=events.append)
    return model_dir, events

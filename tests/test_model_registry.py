"""Which model new audits use: the active detector version, or the shipped default model."""

from __future__ import annotations

import json

import pytest

from skuaudit.model_registry import (
    DEFAULT_MODEL_NAME,
    activate_model_version,
    active_model_dir,
    dataset_label,
    dataset_labels,
    list_model_versions,
    model_choices,
    register_model_version,
    use_default_model,
)


@pytest.fixture
def default_dir(tmp_path, monkeypatch):
    """A shipped default model folder whose ``config.json`` records validation figures."""
    folder = tmp_path / "default"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"training": {"metrics": {"gap": {"AP": 0.5}}}}))
    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(folder))
    return folder


@pytest.mark.parametrize(
    "versions, activate, delete, in_use",
    [
        ([], None, None, DEFAULT_MODEL_NAME),
        (["a", "b"], None, None, DEFAULT_MODEL_NAME),
        (["a", "b"], "a", None, "a"),
        (["a", "b"], "b", "b", DEFAULT_MODEL_NAME),  # an active folder deleted from disk
    ],
)
def test_model_choices(db_url, default_dir, tmp_path, versions, activate, delete, in_use):
    ids = {}
    for name in versions:
        (tmp_path / name).mkdir()
        ids[name] = register_model_version(tmp_path / name, {"product": {"AP": 0.1}})
    if activate:
        activate_model_version(ids[activate])
    if delete:
        (tmp_path / delete).rmdir()
    choices = model_choices()
    assert [c["name"] for c in choices] == [*reversed(versions), DEFAULT_MODEL_NAME]
    assert [c["name"] for c in choices if c["in_use"]] == [in_use]
    default = choices[-1]
    assert (default["id"], default["path"]) == (None, str(default_dir))
    assert default["metrics"] == {"gap": {"AP": 0.5}}
    in_use_path = next(c["path"] for c in choices if c["in_use"])
    assert str(active_model_dir()) == in_use_path


def test_use_default_model_deactivates_every_version(db_url, default_dir, tmp_path):
    (tmp_path / "a").mkdir()
    activate_model_version(register_model_version(tmp_path / "a"))
    assert active_model_dir() == (tmp_path / "a").resolve()
    assert use_default_model() == default_dir
    assert not [v for v in list_model_versions() if v["is_active"]]
    assert active_model_dir() == default_dir
    assert [c["name"] for c in model_choices() if c["in_use"]] == [DEFAULT_MODEL_NAME]


def test_use_default_model_keeps_the_version_when_the_default_is_missing(
    db_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(tmp_path / "gone"))
    (tmp_path / "a").mkdir()
    activate_model_version(register_model_version(tmp_path / "a"))
    with pytest.raises(ValueError, match="shipped default model folder .*gone is missing"):
        use_default_model()
    assert [v["name"] for v in list_model_versions() if v["is_active"]] == ["a"]


def test_a_version_cannot_take_the_default_name(db_url, tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="names the shipped default model"):
        register_model_version(tmp_path / "a", name=DEFAULT_MODEL_NAME)


def test_audits_name_a_lab_model_by_its_version(db_url, tmp_path):
    from types import SimpleNamespace

    from skuaudit.audit import detector_name
    from skuaudit.model_registry import model_name_for, register_model_version

    folder = tmp_path / "lab-0003-20261130" / "model"  # where the Model lab writes a version
    folder.mkdir(parents=True)
    assert model_name_for(folder, db_url) == "model"  # not registered: the folder name
    register_model_version(folder, name="lab-0003-20261130", url=db_url)
    assert model_name_for(folder, db_url) == "lab-0003-20261130"
    assert detector_name(SimpleNamespace(model_dir=folder), db_url) == "lab-0003-20261130"
    assert detector_name(SimpleNamespace(model_dir=None), db_url) == "SimpleNamespace"


@pytest.mark.parametrize(
    "description, label",
    [
        ("synthetic shelves: 1500 renders 1024x768 (generate_dataset seed 1)", "synthetic shelves"),
        ("shelf-gaps (SKU-110K subset annotated by Munimul/ESD): 500 photos", "shelf-gaps"),
        ("64 generated shelves (seed 0)", "64 generated shelves"),  # Model lab jobs
        ("/data/sets/SKU110K (sku110k, 8219 images, 1200000 boxes)", "SKU110K"),  # skuaudit train
        ("", ""),
    ],
)
def test_dataset_label(description, label):
    assert dataset_label(description) == label


def test_model_choices_name_the_validation_data_sets(db_url, default_dir, tmp_path):
    (default_dir / "config.json").write_text(
        json.dumps(
            {
                "training": {
                    "config": {"data_description": ["synthetic shelves: x", "/d/gaps (yolo)"]},
                    "metrics": {"dataset 0": {"product": {"ap50": 0.9}}},
                }
            }
        )
    )
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "config.json").write_text("{not json")  # unreadable: no names, no error
    register_model_version(tmp_path / "v", {}, name="v")
    by_name = {c["name"]: c for c in model_choices()}
    assert by_name[DEFAULT_MODEL_NAME]["datasets"] == {
        "dataset 0": "synthetic shelves",
        "dataset 1": "gaps",
    }
    assert by_name["v"]["datasets"] == {}


def test_shipped_model_names_its_data_sets():
    from skuaudit.config import get_settings

    labels = dataset_labels(get_settings().default_model_dir)
    assert labels["dataset 0"] == "shelf-photos" and labels["dataset 1"] == "shelf-gaps"


def _report(ap50, ap, product_mae, gap_mae=None):
    from skuaudit.training.evaluate import EvalReport

    per_class = {"product": {"count_mae": product_mae}}
    if gap_mae is not None:
        per_class["gap"] = {"count_mae": gap_mae}
    return EvalReport(ap, ap50, None, None, None, None, 4, per_class)


@pytest.mark.parametrize(
    "candidate, active, worse",
    [
        (_report(0.80, 0.50, 3.0), _report(0.80, 0.50, 3.0), []),  # equal: safe
        (_report(0.797, 0.50, 3.1), _report(0.80, 0.50, 3.0), []),  # within the tolerances
        (_report(0.70, 0.50, 3.0), _report(0.80, 0.50, 3.0), ["AP50 0.700 against 0.800"]),
        (_report(0.80, 0.50, 4.0), _report(0.80, 0.50, 3.0), ["product count error"]),
        (_report(0.80, 0.50, 3.0), _report(0.80, 0.50, 3.0, 1.0), ["gap count error"]),
        (_report(0.01, 0.0, 170.0), _report(0.99, 0.66, 0.0), ["AP50", "AP ", "product"]),
    ],
)
def test_activation_check_names_the_figures_a_candidate_is_worse_on(candidate, active, worse):
    from skuaudit.model_registry import activation_check

    check = activation_check(
        {"name": "new", "metrics": {"x": 1}}, {"name": "old"}, candidate, active, "4 shelves"
    )
    assert check.evaluated and check.safe == (not worse)
    assert len(check.worse) == len(worse)
    for found, expected in zip(check.worse, worse, strict=True):
        assert found.startswith(expected.strip()) or expected in found
    if worse:
        assert check.warnings()[0].startswith(
            "new is worse than the active model (old) on 4 shelves"
        )
    assert [r["figure"] for r in check.rows] == [
        "AP50",
        "AP",
        "product count error (MAE)",
        "gap count error (MAE)",
    ]


def test_activation_check_of_an_unevaluated_model_without_training_figures():
    from skuaudit.model_registry import activation_check

    check = activation_check({"name": "lab-9", "metrics": {}}, {"name": "old"})
    assert not check.evaluated and not check.safe
    assert [w.split(" ")[1] for w in check.warnings()] == ["has", "training"]

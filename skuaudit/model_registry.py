"""Which detector folder new audits use, and which ``ModelVersion`` row a folder belongs to.

The active ``ModelVersion`` (``is_active``) wins when its folder exists on disk; otherwise audits
use the shipped default model (``get_settings().default_model_dir``), so a database that names a
deleted folder still audits. ``use_default_model`` deactivates every version to go back to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from skuaudit.config import get_settings
from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

DEFAULT_MODEL_NAME = "shipped default"


def active_model_dir(url: str | None = None) -> Path:
    """Folder of the active detector: the active ``ModelVersion``'s if it exists, else the default."""
    with session_scope(url) as s:
        path = s.scalar(
            sa.select(m.ModelVersion.path)
            .where(m.ModelVersion.is_active.is_(True), m.ModelVersion.kind == "detector")
            .order_by(m.ModelVersion.id.desc())
        )
    if path and Path(path).is_dir():
        return Path(path)
    return get_settings().default_model_dir


def model_version_for(path: str | Path | None, url: str | None = None) -> int | None:
    """Id of the ``ModelVersion`` whose folder is ``path`` (compared resolved), or ``None``."""
    if path is None:
        return None
    wanted = Path(path).resolve()
    with session_scope(url) as s:
        rows = s.execute(sa.select(m.ModelVersion.id, m.ModelVersion.path)).all()
    return next((vid for vid, p in rows if Path(p).resolve() == wanted), None)


def model_name_for(path: str | Path, url: str | None = None) -> str:
    """A readable name of the model in ``path``: its ``ModelVersion`` name when registered (a
    Model lab version's folder is ``<version>/model``), else the folder name."""
    wanted = Path(path).resolve()
    with session_scope(url) as s:
        rows = s.execute(sa.select(m.ModelVersion.name, m.ModelVersion.path)).all()
    return next((name for name, p in rows if Path(p).resolve() == wanted), Path(path).name)


def register_model_version(
    path: str | Path,
    metrics: dict | None = None,
    *,
    name: str | None = None,
    url: str | None = None,
) -> int:
    """Record a trained model folder as a new, inactive ``ModelVersion``; returns its id.

    Args:
        path: the model folder (must exist).
        metrics: evaluation figures stored as ``metrics_json``.
        name: unique version name; default the folder name.
        url: database URL (default from the settings).

    Raises:
        ValueError: the folder does not exist, or the name is taken or is ``DEFAULT_MODEL_NAME``.
    """
    import json

    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{folder}: model folder not found; it cannot be registered")
    name = name or folder.name
    if name == DEFAULT_MODEL_NAME:
        raise UserError(f"{name!r} names the shipped default model; choose another version name")
    with session_scope(url) as s:
        if s.scalar(sa.select(m.ModelVersion.id).where(m.ModelVersion.name == name)) is not None:
            raise UserError(f"a model version named {name!r} already exists")
        version = m.ModelVersion(
            name=name,
            path=str(folder.resolve()),
            kind="detector",
            is_active=False,
            metrics_json=json.dumps(metrics or {}, default=float),
        )
        s.add(version)
        s.flush()
        return version.id


def activate_model_version(version_id: int, url: str | None = None) -> None:
    """Make one detector version the active one (all others inactive) in a single transaction.

    Raises:
        ValueError: no such version, or its folder is missing on disk.
    """
    with session_scope(url) as s:
        version = s.get(m.ModelVersion, version_id)
        if version is None or version.kind != "detector":
            raise UserError(f"model version {version_id} does not exist")
        if not Path(version.path).is_dir():
            raise UserError(
                f"model version {version.name!r}: folder {version.path} is missing; it cannot be activated"
            )
        s.execute(
            sa.update(m.ModelVersion)
            .where(m.ModelVersion.kind == "detector", m.ModelVersion.id != version_id)
            .values(is_active=False)
        )
        version.is_active = True


def use_default_model(url: str | None = None) -> Path:
    """Deactivate every detector version, so new audits use the shipped default model again.

    Returns:
        The default model folder (``get_settings().default_model_dir``).

    Raises:
        ValueError: the default model folder is missing; the active version is kept.
    """
    default_dir = get_settings().default_model_dir
    if not default_dir.is_dir():
        raise UserError(
            f"the shipped default model folder {default_dir} is missing; keep a trained version "
            "active or set SKUAUDIT_MODEL_DIR"
        )
    with session_scope(url) as s:
        s.execute(
            sa.update(m.ModelVersion)
            .where(m.ModelVersion.kind == "detector")
            .values(is_active=False)
        )
    return default_dir


def list_model_versions(url: str | None = None) -> list[dict]:
    """Detector versions, newest first: ``id, name, path, is_active, created_at, metrics``."""
    import json

    with session_scope(url) as s:
        rows = s.scalars(
            sa.select(m.ModelVersion)
            .where(m.ModelVersion.kind == "detector")
            .order_by(m.ModelVersion.id.desc())
        ).all()
        return [
            {
                "id": v.id,
                "name": v.name,
                "path": v.path,
                "is_active": v.is_active,
                "created_at": v.created_at,
                "metrics": json.loads(v.metrics_json or "{}"),
            }
            for v in rows
        ]


def _training_info(model_dir: Path) -> dict:
    """``config.json``'s ``training`` section, or ``{}`` (no file, unreadable, or not a dict)."""
    import json

    try:
        info = json.loads((Path(model_dir) / "config.json").read_text()).get("training", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return info if isinstance(info, dict) else {}


def dataset_label(description: str) -> str:
    """A short name of a training data set from its model-card line.

    Example:
        >>> dataset_label("shelf-gaps (SKU-110K subset): 500 photos 416x416")
        'shelf-gaps'
        >>> dataset_label("/data/SKU110K (sku110k, 8219 images)")
        'SKU110K'
        >>> dataset_label("64 generated shelves (seed 0)")
        '64 generated shelves'
    """
    name = description.split(":", 1)[0].split(" (", 1)[0].strip()
    if "/" in name or "\\" in name:
        name = Path(name.replace("\\", "/")).name or name
    return name[:40] or description[:40]


def dataset_labels(model_dir: str | Path) -> dict[str, str]:
    """``{"dataset 0": short name, ...}`` of the data sets a model folder was trained on.

    The keys are those of its validation figures (``training.metrics``); data sets without a
    description keep their key.
    """
    return _dataset_labels(_training_info(Path(model_dir)))


def _dataset_labels(training_info: dict) -> dict[str, str]:
    config = training_info.get("config", {})
    descriptions = config.get("data_description") if isinstance(config, dict) else None
    if not isinstance(descriptions, list):
        return {}
    return {
        f"dataset {i}": dataset_label(d) for i, d in enumerate(descriptions) if isinstance(d, str)
    }


def model_choices(url: str | None = None) -> list[dict]:
    """Every model an analyst can pick: the detector versions (newest first), then the shipped default.

    Each entry has the keys of ``list_model_versions`` plus ``in_use``: whether new audits use it
    (the folder ``active_model_dir`` returns), and ``datasets``: ``dataset_labels`` of its
    folder. The default's ``id`` is ``None``, its ``name`` ``DEFAULT_MODEL_NAME`` and its
    ``is_active`` equals its ``in_use``.

    Example:
        >>> [c["name"] for c in model_choices() if c["in_use"]]  # doctest: +SKIP
        ['shipped default']
    """
    versions = list_model_versions(url)
    active = next((v for v in versions if v["is_active"]), None)
    in_use_id = active["id"] if active and Path(active["path"]).is_dir() else None
    default_dir = get_settings().default_model_dir
    default_info = _training_info(default_dir)
    default = {
        "id": None,
        "name": DEFAULT_MODEL_NAME,
        "path": str(default_dir),
        "is_active": in_use_id is None,
        "created_at": None,
        "metrics": default_info.get("metrics", {}),
        "in_use": in_use_id is None,
        "datasets": _dataset_labels(default_info),
    }
    return [
        {**v, "in_use": v["id"] == in_use_id, "datasets": dataset_labels(v["path"])}
        for v in versions
    ] + [default]


# --------------------------------------------------------------------------- champion / challenger

# How much worse a candidate may score than the active model before activation warns: AP
# figures lower by more than AP_TOLERANCE, count errors higher by more than COUNT_TOLERANCE
# (relative) plus COUNT_SLACK facings per image.
AP_TOLERANCE = 0.005
COUNT_TOLERANCE = 0.05
COUNT_SLACK = 0.05


def headline_figures(report) -> dict[str, float | None]:
    """The figures an activation compares, from an ``EvalReport``: AP50 and AP (higher is
    better) and the count error of products and of gaps, apart (mean absolute error per image;
    lower is better; ``None`` where the photos label no such class)."""
    per_class = report.per_class or {}
    return {
        "AP50": report.ap50,
        "AP": report.ap,
        "product count error (MAE)": (per_class.get("product") or {}).get("count_mae"),
        "gap count error (MAE)": (per_class.get("gap") or {}).get("count_mae"),
    }


def _worse(figure: str, candidate: float, active: float) -> bool:
    if figure.startswith("AP"):
        return candidate < active - AP_TOLERANCE
    return candidate > active * (1 + COUNT_TOLERANCE) + COUNT_SLACK


@dataclass(frozen=True)
class ActivationCheck:
    """A candidate model next to the active one on the same evaluation (champion/challenger).

    Attributes:
        candidate: the candidate's name.
        active: the active model's name.
        scored_on: what both were scored on (e.g. "8 generated shelves"); ``None``: not both
            evaluated on the same photos yet.
        rows: ``{"figure", "candidate", "active"}`` per headline figure (``headline_figures``).
        worse: the figures on which the candidate is worse.
        no_training_figures: the candidate's training recorded no validation figures.
    """

    candidate: str
    active: str
    scored_on: str | None
    rows: tuple[dict, ...] = ()
    worse: tuple[str, ...] = ()
    no_training_figures: bool = False

    @property
    def evaluated(self) -> bool:
        return self.scored_on is not None

    @property
    def safe(self) -> bool:
        """Evaluated with the active model, and worse on no figure."""
        return self.evaluated and not self.worse

    def warnings(self) -> list[str]:
        """What an analyst should know before activating, in words (empty when ``safe``)."""
        out = []
        if not self.evaluated:
            out.append(
                f"{self.candidate} has not been evaluated next to the active model "
                f"({self.active}) on the same photos: evaluate both before activating it."
            )
        if self.worse:
            out.append(
                f"{self.candidate} is worse than the active model ({self.active}) on "
                f"{self.scored_on}: " + ", ".join(self.worse) + "."
            )
        if self.no_training_figures:
            out.append(
                f"{self.candidate}'s training recorded no validation figures (a very short "
                "run, or no validation photos)."
            )
        return out


def activation_check(
    candidate: dict,
    active: dict,
    candidate_report=None,
    active_report=None,
    scored_on: str | None = None,
) -> ActivationCheck:
    """Compare a candidate with the active model before activating it.

    Args:
        candidate, active: entries of ``model_choices``.
        candidate_report, active_report: ``EvalReport``s of both on the same photos
            (``scored_on``), or ``None`` when one of them has not been evaluated there.
        scored_on: what the reports scored.

    Example:
        >>> check = activation_check({"name": "lab-2", "metrics": {}}, {"name": "shipped default"})
        >>> check.safe, check.warnings()[0][:40]
        (False, 'lab-2 has not been evaluated next to the')
    """
    no_figures = not candidate.get("metrics")
    if candidate_report is None or active_report is None or scored_on is None:
        return ActivationCheck(
            candidate["name"], active["name"], None, no_training_figures=no_figures
        )
    ours, theirs = headline_figures(candidate_report), headline_figures(active_report)
    rows, worse = [], []
    for figure, value in ours.items():
        other = theirs[figure]
        rows.append({"figure": figure, "candidate": value, "active": other})
        if value is not None and other is not None and _worse(figure, value, other):
            worse.append(f"{figure} {value:.3f} against {other:.3f}")
        elif value is None and other is not None:
            worse.append(f"{figure} not measured")
    return ActivationCheck(
        candidate["name"],
        active["name"],
        scored_on,
        tuple(rows),
        tuple(worse),
        no_figures,
    )

"""Which detector folder new audits use, and which ``ModelVersion`` row a folder belongs to.

The active ``ModelVersion`` (``is_active``) wins when its folder exists on disk; otherwise audits
use the shipped default model (``get_settings().default_model_dir``), so a database that names a
deleted folder still audits.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from skuaudit.config import get_settings
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope


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
        ValueError: the folder does not exist or the name is taken.
    """
    import json

    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder}: model folder not found; it cannot be registered")
    name = name or folder.name
    with session_scope(url) as s:
        if s.scalar(sa.select(m.ModelVersion.id).where(m.ModelVersion.name == name)) is not None:
            raise ValueError(f"a model version named {name!r} already exists")
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
            raise ValueError(f"model version {version_id} does not exist")
        if not Path(version.path).is_dir():
            raise ValueError(
                f"model version {version.name!r}: folder {version.path} is missing; it cannot be activated"
            )
        s.execute(
            sa.update(m.ModelVersion)
            .where(m.ModelVersion.kind == "detector", m.ModelVersion.id != version_id)
            .values(is_active=False)
        )
        version.is_active = True


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

"""Settings from environment variables, each with a safe default.

| variable | default | meaning |
|---|---|---|
| ``SKUAUDIT_DB_URL`` | ``sqlite:///<repo>/data/skuaudit.db`` | SQLAlchemy database URL |
| ``SKUAUDIT_MODELS_DIR`` | ``<repo>/models`` | folder of model versions |
| ``SKUAUDIT_MODEL_DIR`` | ``<models>/default`` | model used when the database names no active one |
| ``SKUAUDIT_MEDIA_DIR`` | ``<repo>/data/media`` | audit snapshots and reference images |
| ``SKUAUDIT_ICE_SERVERS`` | ``[]`` | JSON list of WebRTC ICE servers |
| ``SKUAUDIT_MAX_UPLOAD_MB`` | ``25`` | largest accepted image upload |
| ``SKUAUDIT_MAX_DATASET_MB`` | ``1024`` | largest dataset zip the Model lab accepts (at most the |
|  |  | server's ``maxUploadSize`` in ``.streamlit/config.toml``, 1024) |
| ``SKUAUDIT_MAX_IMAGE_PIXELS`` | ``50000000`` | largest accepted decoded image (decompression bombs) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from skuaudit.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    db_url: str
    models_dir: Path
    default_model_dir: Path
    recognition_model_dir: Path
    media_dir: Path
    max_upload_mb: int
    max_image_pixels: int
    max_dataset_mb: int = 1024

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise UserError(f"{name} must be a whole number, got {raw!r}") from exc
    if value <= 0:
        raise UserError(f"{name} must be positive, got {value}")
    return value


def get_settings() -> Settings:
    """Read the settings now (environment changes are picked up on every call)."""
    data_dir = REPO_ROOT / "data"
    models_dir = Path(os.environ.get("SKUAUDIT_MODELS_DIR") or REPO_ROOT / "models")
    return Settings(
        db_url=os.environ.get("SKUAUDIT_DB_URL") or f"sqlite:///{data_dir / 'skuaudit.db'}",
        models_dir=models_dir,
        default_model_dir=Path(os.environ.get("SKUAUDIT_MODEL_DIR") or models_dir / "default"),
        recognition_model_dir=Path(
            os.environ.get("SKUAUDIT_RECOGNITION_DIR") or models_dir / "recognition"
        ),
        media_dir=Path(os.environ.get("SKUAUDIT_MEDIA_DIR") or data_dir / "media"),
        max_upload_mb=_int_env("SKUAUDIT_MAX_UPLOAD_MB", 25),
        max_image_pixels=_int_env("SKUAUDIT_MAX_IMAGE_PIXELS", 50_000_000),
        max_dataset_mb=_int_env("SKUAUDIT_MAX_DATASET_MB", 1024),
    )

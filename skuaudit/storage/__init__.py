"""Storage: SQLAlchemy 2 ORM models, engine/session handling and Alembic migrations.

The URL comes from ``SKUAUDIT_DB_URL`` (default: a SQLite file under ``data/`` in WAL mode with a
busy timeout). The same code runs on PostgreSQL.
"""

from __future__ import annotations

from skuaudit.storage.db import (
    DatabaseError,
    SchemaTooNewError,
    get_engine,
    get_sessionmaker,
    session_scope,
    upgrade_database,
)
from skuaudit.storage.models import (
    Audit,
    AuditImage,
    Base,
    Brand,
    BrandMetric,
    Detection,
    ModelVersion,
    PlanogramTarget,
    Product,
    ProductMetric,
    ProductTarget,
    ReferenceImage,
    Store,
    TrainingJob,
    User,
)

__all__ = [
    "Audit",
    "AuditImage",
    "Base",
    "Brand",
    "BrandMetric",
    "DatabaseError",
    "Detection",
    "ModelVersion",
    "PlanogramTarget",
    "Product",
    "ProductMetric",
    "ProductTarget",
    "ReferenceImage",
    "SchemaTooNewError",
    "Store",
    "TrainingJob",
    "User",
    "get_engine",
    "get_sessionmaker",
    "session_scope",
    "upgrade_database",
]

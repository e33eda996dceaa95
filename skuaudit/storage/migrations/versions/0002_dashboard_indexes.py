"""dashboard indexes

Covering indexes for the dashboard queries in ``skuaudit.reports``: every query joins
``brand_metrics`` to ``audits`` by audit and filters audits by date and store, so these let SQLite
and PostgreSQL answer from the indexes alone (bench/bench_dashboards.py measures the difference).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 11:00:00

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BRAND_METRICS_COVER = [
    "audit_id",
    "brand_id",
    "facings",
    "linear_px",
    "expected_facings",
    "is_stockout",
    "below_target",
]


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.create_index("ix_dash_audits_created_store", ["created_at", "store_id"])
    with op.batch_alter_table("brand_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_dash_brand_metrics_cover", BRAND_METRICS_COVER)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("brand_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_dash_brand_metrics_cover")
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.drop_index("ix_dash_audits_created_store")

"""catalogue deletion

Stores and brands can be deleted from the catalogue while the audits that counted them keep their
history: a store or brand that audits refer to is marked ``deleted_at`` (it leaves every list,
picker and import, its planogram targets and reference images are deleted) instead of losing its
row, which the dashboards still name.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 20:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    for table in ("stores", "brands"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("deleted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    for table in ("brands", "stores"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("deleted_at")

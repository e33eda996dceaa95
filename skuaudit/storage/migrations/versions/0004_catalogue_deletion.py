"""catalogue deletion

Stores and brands can be deleted from the catalogue while the audits that counted them keep their
history: a store or brand that audits refer to is marked ``deleted_at`` (it leaves every list,
picker and import; its planogram targets, and a brand's products' references and targets, are
deleted) instead of losing its row, which the dashboards still name. Downgrading drops the mark:
the stores and brands deleted so far are listed again (without their targets and references).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 20:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    for table in ("stores", "brands"):
        op.add_column(table, sa.Column("deleted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    # NOTE: not a batch operation: on SQLite a batch copies the table and drops the old one, and
    # with foreign keys on, dropping stores or brands deletes every row that refers to them
    # (audits, products, references...). SQLite 3.35+ drops the column in place.
    for table in ("brands", "stores"):
        op.drop_column(table, "deleted_at")

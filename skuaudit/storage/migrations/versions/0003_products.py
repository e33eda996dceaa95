"""products (SKUs)

A brand now has products; reference images belong to a product, detections name a product, audits
keep per-product figures, and stores may have per-product planogram targets.

Existing data is carried over: every brand becomes one product of that brand, named after it,
which takes the brand's reference images; detections of the brand point to that product, and each
audit's brand rows with facings get a matching product row. Brand figures and brand targets are
unchanged. The downgrade gives each reference image its product's brand back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRODUCT_OF_BRAND = "(SELECT p.id FROM products p WHERE p.brand_id = {table}.brand_id)"
PRODUCT_METRICS_COVER = [
    "audit_id",
    "brand_id",
    "product_id",
    "facings",
    "linear_px",
    "expected_facings",
    "is_stockout",
    "below_target",
]


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("brand_id", "name", name="uq_products_brand_name"),
        sa.UniqueConstraint("gtin", name="uq_products_gtin"),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index("ix_products_brand_id", ["brand_id"], unique=False)
    op.execute(
        "INSERT INTO products (brand_id, name, gtin, is_demo, created_at) "
        "SELECT id, name, NULL, is_demo, created_at FROM brands"
    )

    with op.batch_alter_table("reference_images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("product_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("features", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("features_model", sa.String(length=200), nullable=False, server_default="")
        )
    op.execute(
        "UPDATE reference_images SET product_id = "
        + PRODUCT_OF_BRAND.format(table="reference_images")
    )
    with op.batch_alter_table("reference_images", schema=None) as batch_op:
        batch_op.alter_column("product_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            "fk_reference_images_product_id", "products", ["product_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_reference_images_product_id", ["product_id"], unique=False)
        batch_op.drop_index("ix_reference_images_brand_id")
        batch_op.drop_column("brand_id")

    with op.batch_alter_table("detections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("product_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("product_score", sa.Float(), nullable=True))
        batch_op.create_foreign_key(
            "fk_detections_product_id", "products", ["product_id"], ["id"], ondelete="SET NULL"
        )
    op.execute(
        "UPDATE detections SET product_id = "
        + PRODUCT_OF_BRAND.format(table="detections")
        + ", product_score = brand_score WHERE brand_id IS NOT NULL"
    )

    op.create_table(
        "product_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("facings", sa.Integer(), nullable=False),
        sa.Column("share_facings", sa.Float(), nullable=False),
        sa.Column("linear_px", sa.Float(), nullable=False),
        sa.Column("share_linear", sa.Float(), nullable=False),
        sa.Column("expected_facings", sa.Integer(), nullable=True),
        sa.Column("is_stockout", sa.Boolean(), nullable=False),
        sa.Column("below_target", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["audit_id"], ["audits.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("product_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_product_metrics_audit_id", ["audit_id"], unique=False)
        batch_op.create_index(
            "ix_product_metrics_product_audit", ["product_id", "audit_id"], unique=False
        )
        batch_op.create_index("ix_product_metrics_cover", PRODUCT_METRICS_COVER, unique=False)
    # Before this revision a brand was one product: its figures are that product's. Targets were
    # brand targets and stay on the brand rows; a product row has a target only from a
    # ProductTarget, so the copied rows have none.
    false = sa.false().compile(dialect=op.get_bind().dialect)
    op.execute(
        "INSERT INTO product_metrics (audit_id, brand_id, product_id, facings, share_facings, "
        "linear_px, share_linear, expected_facings, is_stockout, below_target) "
        "SELECT bm.audit_id, bm.brand_id, p.id, bm.facings, bm.share_facings, bm.linear_px, "
        f"bm.share_linear, NULL, {false}, {false} "
        "FROM brand_metrics bm LEFT JOIN products p ON p.brand_id = bm.brand_id "
        "WHERE bm.facings > 0"
    )

    op.create_table(
        "product_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("expected_facings", sa.Integer(), nullable=False),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("store_id", "product_id", name="uq_product_target_store_product"),
    )
    with op.batch_alter_table("product_targets", schema=None) as batch_op:
        batch_op.create_index("ix_product_targets_product_id", ["product_id"], unique=False)
        batch_op.create_index("ix_product_targets_store_id", ["store_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema: products fold back into their brands (references keep their brand)."""
    op.drop_table("product_targets")
    op.drop_table("product_metrics")

    with op.batch_alter_table("detections", schema=None) as batch_op:
        batch_op.drop_constraint("fk_detections_product_id", type_="foreignkey")
        batch_op.drop_column("product_score")
        batch_op.drop_column("product_id")

    with op.batch_alter_table("reference_images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("brand_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE reference_images SET brand_id = "
        "(SELECT p.brand_id FROM products p WHERE p.id = reference_images.product_id)"
    )
    with op.batch_alter_table("reference_images", schema=None) as batch_op:
        batch_op.alter_column("brand_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            "fk_reference_images_brand_id", "brands", ["brand_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_reference_images_brand_id", ["brand_id"], unique=False)
        batch_op.drop_constraint("fk_reference_images_product_id", type_="foreignkey")
        batch_op.drop_index("ix_reference_images_product_id")
        batch_op.drop_column("features_model")
        batch_op.drop_column("features")
        batch_op.drop_column("product_id")

    op.drop_table("products")

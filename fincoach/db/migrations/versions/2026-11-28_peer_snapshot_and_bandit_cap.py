"""Peer statistics from a published snapshot, and the per-user cap on what teaches the bandit.

``segment_peer_snapshot``: per segment, the rounded aggregates peer comparisons answer from,
the member count and the members when published. ``recommendation_feedback.teaches``: whether a
feedback counts for the shared bandit (every existing feedback did).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "segment_peer_snapshot",
        sa.Column("segment_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("members", JSON, nullable=False),
        sa.Column("stats", JSON, nullable=False),
        sa.Column(
            "refreshed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("segment_id", name=op.f("pk_segment_peer_snapshot")),
    )
    with op.batch_alter_table("recommendation_feedback") as batch:
        batch.add_column(
            sa.Column("teaches", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("recommendation_feedback") as batch:
        batch.drop_column("teaches")
    op.drop_table("segment_peer_snapshot")

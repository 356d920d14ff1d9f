"""battles, turns and votes

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "battles",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("voter", sa.String(200), nullable=False, index=True),
        sa.Column("model_a", sa.String(200), nullable=False),
        sa.Column("model_b", sa.String(200), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure", sa.Text, nullable=True),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("battle_id", sa.String(36), sa.ForeignKey("battles.id"), nullable=False, index=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer_a", sa.Text, nullable=True),
        sa.Column("answer_b", sa.Text, nullable=True),
        sa.UniqueConstraint("battle_id", "number"),
    )
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("battle_id", sa.String(36), sa.ForeignKey("battles.id"), nullable=False, unique=True),
        sa.Column("voter", sa.String(200), nullable=False, index=True),
        sa.Column("evaluation", sa.String(16), nullable=False),
        sa.Column("corrected_answer", sa.Text, nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("votes")
    op.drop_table("turns")
    op.drop_table("battles")

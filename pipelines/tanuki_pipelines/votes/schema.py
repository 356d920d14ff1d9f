"""The vote database's tables (SQLAlchemy; created and changed only by the migrations under
``migrations/versions``).

A **battle** is one person's side-by-side chat with two anonymous models (``model_a`` is shown on
the left); its **turns** are the questions and both answers; its **vote** (at most one: a unique
battle id) says which answer was better. A battle whose model failed mid-answer is ``failed`` and
cannot be voted on; one whose answer names a model is ``flagged`` and left out of ratings.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

OPEN, FAILED, VOTED = "open", "failed", "voted"
"""Battle states."""


class Base(DeclarativeBase):
    pass


class Battle(Base):
    __tablename__ = "battles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    voter: Mapped[str] = mapped_column(String(200), index=True)
    model_a: Mapped[str] = mapped_column(String(200))
    model_b: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    failure: Mapped[str | None] = mapped_column(Text, nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    turns: Mapped[list[Turn]] = relationship(order_by="Turn.number", back_populates="battle")
    vote: Mapped[Vote | None] = relationship(back_populates="battle")


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("battle_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    battle_id: Mapped[str] = mapped_column(ForeignKey("battles.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    answer_a: Mapped[str | None] = mapped_column(Text, nullable=True)
    answer_b: Mapped[str | None] = mapped_column(Text, nullable=True)
    battle: Mapped[Battle] = relationship(back_populates="turns")


class Vote(Base):
    __tablename__ = "votes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    battle_id: Mapped[str] = mapped_column(ForeignKey("battles.id"), unique=True)
    voter: Mapped[str] = mapped_column(String(200), index=True)
    evaluation: Mapped[str] = mapped_column(String(16))
    corrected_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    battle: Mapped[Battle] = relationship(back_populates="vote")

"""Votes as records: the Tanuki arena's vote format (what ``tanuki eval ratings`` imports with its
default ``vote_codes``) and FastChat's battle format.

The ``evaluation`` values the arena writes are ``codes.EVALUATIONS``' keys; the import's default
``vote_codes`` are that mapping, so an export round-trips with no configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from tanuki_pipelines.votes.codes import EVALUATIONS
from tanuki_pipelines.votes.schema import VOTED, Battle, Vote


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def tanuki_record(battle: Battle, vote: Vote) -> dict[str, Any]:
    """``question``, ``answer_1``, ``answer_2`` (the first turn), ``evaluation``, ``corrected_answer``,
    ``model_1``, ``model_2``, ``created_time``; and every turn, the battle id, the flag."""
    first = battle.turns[0]
    return {"question": first.question, "answer_1": first.answer_a, "answer_2": first.answer_b,
            "evaluation": vote.evaluation, "corrected_answer": vote.corrected_answer,
            "model_1": battle.model_a, "model_2": battle.model_b, "created_time": _iso(vote.created),
            "battle_id": battle.id, "language": battle.language, "flagged": battle.flagged,
            "turns": [{"question": t.question, "answer_1": t.answer_a, "answer_2": t.answer_b} for t in battle.turns]}


def fastchat_record(battle: Battle, vote: Vote) -> dict[str, Any]:
    """One battle as FastChat's ``clean_battle_data`` writes it (conversations as OpenAI messages)."""
    def conversation(side: str) -> list[dict[str, str]]:
        messages = []
        for turn in battle.turns:
            messages += [{"role": "user", "content": turn.question},
                         {"role": "assistant", "content": getattr(turn, f"answer_{side}") or ""}]
        return messages

    created = vote.created if vote.created.tzinfo else vote.created.replace(tzinfo=UTC)
    return {"question_id": battle.id, "model_a": battle.model_a, "model_b": battle.model_b,
            "winner": EVALUATIONS[vote.evaluation], "judge": "human", "anony": True, "language": battle.language,
            "turn": len(battle.turns), "tstamp": created.timestamp(),
            "conversation_a": conversation("a"), "conversation_b": conversation("b")}


def voted(session: Any, include_flagged: bool = True) -> Iterator[tuple[Battle, Vote]]:
    """Every voted battle with its vote, oldest vote first."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    query = (select(Battle, Vote).join(Vote, Vote.battle_id == Battle.id).where(Battle.status == VOTED)
             .options(selectinload(Battle.turns)).order_by(Vote.created, Vote.id))
    if not include_flagged:
        query = query.where(Battle.flagged.is_(False))
    for battle, vote in session.execute(query):  # noqa: UP028 (a Row unpacked: the (Battle, Vote) mypy wants)
        yield battle, vote


def read_votes(url: str) -> list[dict[str, Any]]:
    """Every vote of the database at ``url`` as Tanuki records (``tanuki eval ratings --votes``)."""
    from tanuki_pipelines.votes.database import open_database, sessions

    engine = open_database(url)
    try:
        with sessions(engine)() as session:
            return [tanuki_record(battle, vote) for battle, vote in voted(session)]
    finally:
        engine.dispose()

"""Ratings from pairwise battles (pure apart from scikit-learn's solver).

A battle log is FastChat's format: one record per battle with ``model_a``, ``model_b`` and
``winner`` ∈ {``model_a``, ``model_b``, ``tie``, ``tie (bothbad)``} (other keys are kept but not
read), so logs of FastChat's judge, a human-voting arena or ``tanuki eval arena`` mix freely.

- Bradley-Terry by maximum likelihood, as Chatbot Arena computes it: ratings on the Elo scale
  (400 per factor of 10 in odds, 1000 at the origin), a win counted twice for the winner, a tie
  once each way, no regularisation; an optional anchor model pinned to a given rating; percentile
  confidence intervals from a seeded bootstrap over battles.
- Glicko-2 (``glicko2``), rating periods of a fixed number of battles in log order.
- Per model: battles, wins, losses, ties, win rate (wins over battles); the pairwise win rate.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tanuki_pipelines.eval.glicko2 import Rating, rate

WINNERS = {"model_a", "model_b", "tie", "tie (bothbad)"}
SCALE, BASE, INITIAL = 400.0, 10.0, 1000.0


@dataclass(frozen=True)
class Battle:
    model_a: str
    model_b: str
    winner: str

    @property
    def tie(self) -> bool:
        return self.winner.startswith("tie")


@dataclass
class CleanLog:
    battles: list[Battle] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    """Records left out, by reason."""


def clean(records: list[dict[str, Any]]) -> CleanLog:
    """The usable battles of a log, and how many records were dropped for which reason."""
    log = CleanLog()
    for record in records:
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) and record.get(k)
                                                   for k in ("model_a", "model_b", "winner")):
            log.dropped["missing model_a, model_b or winner"] += 1
        elif record["winner"] == "unparseable":
            log.dropped["the judge gave no readable verdict"] += 1
        elif record["winner"] == "judge request failed":
            log.dropped["the judge's request failed"] += 1
        elif record["winner"] not in WINNERS:
            log.dropped[f"unknown winner {record['winner']!r}"] += 1
        elif record["model_a"] == record["model_b"]:
            log.dropped["a model against itself"] += 1
        else:
            log.battles.append(Battle(record["model_a"], record["model_b"], record["winner"]))
    return log


def models_of(battles: list[Battle]) -> list[str]:
    return sorted({b.model_a for b in battles} | {b.model_b for b in battles})


def bradley_terry(battles: list[Battle], anchor: tuple[str, float] | None = None) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    models = models_of(battles)
    index = {model: i for i, model in enumerate(models)}
    beats: Counter = Counter()  # (i, j) → weight of "i beat j"
    for battle in battles:
        a, b = index[battle.model_a], index[battle.model_b]
        if battle.tie:
            beats[a, b] += 1
            beats[b, a] += 1
        elif battle.winner == "model_a":
            beats[a, b] += 2
        else:
            beats[b, a] += 2
    rows, labels, weights = [], [], []
    pairs = {(min(i, j), max(i, j)) for i, j in beats}
    for i, j in sorted(pairs):  # one row per outcome of each pair: i over j (label 1), j over i (label 0)
        row = np.zeros(len(models))
        row[i], row[j] = math.log(BASE), -math.log(BASE)
        for label, weight in ((1.0, beats[i, j]), (0.0, beats[j, i])):
            if weight:
                rows.append(row)
                labels.append(label)
                weights.append(weight)
    if len(set(labels)) < 2:  # every outcome one way round (e.g. one pair, always the same winner)
        labels.append(1.0 - labels[0])
        rows.append(rows[0])
        weights.append(1e-6)
    solver = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-6, max_iter=1000)  # C=inf: no regularisation
    solver.fit(np.array(rows), np.array(labels), sample_weight=np.array(weights))
    ratings = {model: SCALE * float(coef) + INITIAL for model, coef in zip(models, solver.coef_[0])}
    if anchor is not None and anchor[0] in ratings:
        shift = anchor[1] - ratings[anchor[0]]
        ratings = {model: value + shift for model, value in ratings.items()}
    return ratings


def bootstrap(battles: list[Battle], rounds: int, seed: int,
              anchor: tuple[str, float] | None = None) -> dict[str, tuple[float, float]]:
    """2.5 % and 97.5 % percentiles of each model's rating over battle logs resampled with replacement."""
    import numpy as np

    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {model: [] for model in models_of(battles)}
    for _ in range(rounds):
        drawn = [battles[i] for i in rng.integers(0, len(battles), len(battles))]
        for model, value in bradley_terry(drawn, anchor).items():
            samples[model].append(value)
    return {model: (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
            for model, values in samples.items() if values}


def glicko(battles: list[Battle], period: int = 1, tau: float = 0.5) -> dict[str, Rating]:
    """Glicko-2 ratings after rating periods of ``period`` battles each, in log order."""
    ratings = {model: Rating() for model in models_of(battles)}
    for start in range(0, len(battles), period):
        games: dict[str, list[tuple[Rating, float]]] = {model: [] for model in ratings}
        for battle in battles[start:start + period]:
            score = 0.5 if battle.tie else 1.0 if battle.winner == "model_a" else 0.0
            games[battle.model_a].append((ratings[battle.model_b], score))
            games[battle.model_b].append((ratings[battle.model_a], 1.0 - score))
        ratings = {model: rate(ratings[model], games[model], tau) for model in ratings}
    return ratings


def tallies(battles: list[Battle]) -> dict[str, dict[str, int]]:
    counts = {model: {"battles": 0, "wins": 0, "losses": 0, "ties": 0} for model in models_of(battles)}
    for battle in battles:
        for model, role in ((battle.model_a, "model_a"), (battle.model_b, "model_b")):
            counts[model]["battles"] += 1
            outcome = "ties" if battle.tie else "wins" if battle.winner == role else "losses"
            counts[model][outcome] += 1
    return counts


def win_rate_matrix(battles: list[Battle]) -> dict[str, dict[str, float | None]]:
    """matrix[a][b]: the share of a's battles against b that a won (None: they never met)."""
    models = models_of(battles)
    met: Counter = Counter()
    won: Counter = Counter()
    for battle in battles:
        met[battle.model_a, battle.model_b] += 1
        met[battle.model_b, battle.model_a] += 1
        if not battle.tie:
            winner, loser = (battle.model_a, battle.model_b) if battle.winner == "model_a" else \
                (battle.model_b, battle.model_a)
            won[winner, loser] += 1
    return {a: {b: (won[a, b] / met[a, b] if met[a, b] else None) for b in models if b != a} for a in models}


def leaderboard(battles: list[Battle], rounds: int = 1000, seed: int = 0, anchor: tuple[str, float] | None = None,
                period: int = 1, tau: float = 0.5) -> dict[str, Any]:
    """Everything ``leaderboard.json`` holds, models sorted by Bradley-Terry rating."""
    bt = bradley_terry(battles, anchor)
    intervals = bootstrap(battles, rounds, seed, anchor) if rounds else {}
    g2 = glicko(battles, period, tau)
    counts = tallies(battles)
    rows = []
    for model in sorted(bt, key=lambda m: -bt[m]):
        low, high = intervals.get(model, (bt[model], bt[model]))
        rows.append({"model": model,
                     "bt": {"rating": round(bt[model], 2), "ci_low": round(low, 2), "ci_high": round(high, 2)},
                     "glicko2": {"rating": round(g2[model].rating, 2), "rd": round(g2[model].rd, 2),
                                 "volatility": round(g2[model].volatility, 6)},
                     **counts[model],
                     "win_rate": round(counts[model]["wins"] / counts[model]["battles"], 4)})
    return {"models": rows, "win_rate_matrix": win_rate_matrix(battles)}

"""Ratings from pairwise battles (pure apart from scikit-learn's solver).

A battle log is FastChat's format: one record per battle with ``model_a``, ``model_b`` and
``winner`` ∈ {``model_a``, ``model_b``, ``tie``, ``tie (bothbad)``} (other keys are kept but not
read), so logs of FastChat's judge, a human-voting arena or ``tanuki eval arena`` mix freely.

- Bradley-Terry by maximum likelihood, as Chatbot Arena computes it: ratings on the Elo scale
  (400 per factor of 10 in odds, 1000 at the origin), a win counted twice for the winner, a tie
  once each way, no regularisation; an optional anchor model pinned to a given rating; percentile
  confidence intervals from a seeded bootstrap over battles. Only models the log can rate get a
  number (``separation``: a model that never lost has no finite maximum); the others get their
  record, unless a stated Gaussian prior (``prior_sd``) regularises the estimate.
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


def bradley_terry(battles: list[Battle], anchor: tuple[str, float] | None = None, prior_sd: float | None = None,
                  models: list[str] | None = None) -> dict[str, float]:
    """Bradley-Terry ratings on the Elo scale: maximum likelihood, or with ``prior_sd`` the maximum a
    posteriori under a Gaussian prior N(1000, prior_sd²) on each rating. Unregularised, call it only on
    a log that is not separated (``separation.estimability``): otherwise no maximum exists. ``models``
    (default: those of the log) are the columns; with a prior, one without battles rates 1000."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    models = models if models is not None else models_of(battles)
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
    rows: list[np.ndarray] = []
    labels: list[float] = []
    weights: list[float] = []
    pairs = {(min(i, j), max(i, j)) for i, j in beats}
    for i, j in sorted(pairs):  # one row per outcome of each pair: i over j (label 1), j over i (label 0)
        row = np.zeros(len(models))
        row[i], row[j] = math.log(BASE), -math.log(BASE)
        for label, weight in ((1.0, beats[i, j]), (0.0, beats[j, i])):
            if weight:
                rows.append(row)
                labels.append(label)
                weights.append(weight)
    if len(set(labels)) < 2:  # scikit-learn needs both classes; only a prior's fit gets here (one-sided log)
        labels.append(1.0 - labels[0])
        rows.append(rows[0])
        weights.append(1e-9)
    # a Gaussian prior of SD σ rating points on coefficients of 1/400 rating point is scikit-learn's L2
    # penalty with C = (σ/400)²; C = inf is no penalty
    strength = np.inf if prior_sd is None else (prior_sd / SCALE) ** 2
    solver = LogisticRegression(fit_intercept=False, C=strength, tol=1e-6, max_iter=1000)
    solver.fit(np.array(rows), np.array(labels), sample_weight=np.array(weights))
    ratings = {model: SCALE * float(coef) + INITIAL for model, coef in zip(models, solver.coef_[0], strict=True)}
    if anchor is not None and anchor[0] in ratings:
        shift = anchor[1] - ratings[anchor[0]]
        ratings = {model: value + shift for model, value in ratings.items()}
    return ratings


def among(battles: list[Battle], models: list[str]) -> list[Battle]:
    """The battles between two of ``models``."""
    chosen = set(models)
    return [b for b in battles if b.model_a in chosen and b.model_b in chosen]


def percentile_bounds(values: list[float], low: float = 2.5, high: float = 97.5) -> tuple[float | None, float | None]:
    """NumPy's linear percentiles of values that may be ±inf (separated in that resample) or nan (not
    comparable): a bound that touches an infinite value, or a nan on its side, is None (unbounded)."""
    import numpy as np

    def bound(q: float, nan_as: float) -> float | None:
        ordered = np.sort(np.where(np.isnan(values), nan_as, values))
        position = q / 100 * (len(ordered) - 1)
        below, above = ordered[int(math.floor(position))], ordered[int(math.ceil(position))]
        if not (np.isfinite(below) and np.isfinite(above)):
            return None
        return float(below + (above - below) * (position - math.floor(position)))

    return bound(low, -np.inf), bound(high, np.inf)


def bootstrap(battles: list[Battle], rounds: int, seed: int, anchor: tuple[str, float] | None = None,
              prior_sd: float | None = None, models: list[str] | None = None,
              reference: dict[str, float] | None = None) -> dict[str, tuple[float | None, float | None]]:
    """2.5 % and 97.5 % percentiles of each of ``models``' ratings (default: the log's) over battle logs
    resampled with replacement; None where the interval is unbounded on that side.

    Without a prior, a resample may be separated where the whole log is not: there the models it can
    rate are fitted and aligned with ``reference`` (the whole log's ratings: on the anchor when it is
    among them, else on their mean), a model above them counts as +inf, below as −inf and one not
    comparable as unknown on both sides, never as whatever value a solver stopped at."""
    import numpy as np

    from tanuki_pipelines.eval.separation import estimability

    models = models if models is not None else models_of(battles)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {model: [] for model in models}
    infinite = {"rated": math.nan, "above": math.inf, "below": -math.inf, "apart": math.nan}  # rated: refitted below
    for _ in range(rounds):
        drawn = among([battles[i] for i in rng.integers(0, len(battles), len(battles))], models)
        if prior_sd is not None:
            values = bradley_terry(drawn, anchor, prior_sd, models) if drawn else {m: INITIAL for m in models}
        else:
            positions = estimability(drawn, models)
            rated = positions.rated
            values = {model: infinite[position] for model, position in positions.positions.items()}
            if rated:
                fitted = bradley_terry(among(drawn, rated), anchor, None, rated)
                if reference is not None and not (anchor is not None and anchor[0] in fitted):
                    shift = sum(reference[m] - fitted[m] for m in rated) / len(rated)
                    fitted = {model: value + shift for model, value in fitted.items()}
                values.update(fitted)
        for model in models:
            samples[model].append(values[model])
    return {model: percentile_bounds(values) for model, values in samples.items() if values}


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


def record(row: dict[str, Any]) -> str:
    """A model's record as people write it: wins–losses, and the ties when there were any."""
    return f"{row['wins']}–{row['losses']}" + (f" ({row['ties']} ties)" if row["ties"] else "")


SEPARATION_TEXT = {"above": "never lost to the rated models", "below": "never beat the rated models",
                   "apart": "not compared both ways with the rated models"}
"""Why a model has no rating, when some models have one."""
NOBODY_RATED_TEXT = {"above": "never lost", "below": "never won",
                     "apart": "no two models both won and lost against each other"}
"""Why a model has no rating, when no model has one."""


def bt_cells(row: dict[str, Any]) -> tuple[str, str]:
    """A leaderboard row's Bradley-Terry rating and interval as a page shows them (a † after the model's
    name marks too few battles: ``method_notes``)."""
    bt = row["bt"]
    if bt["rating"] is None:
        return "not estimable", f"{bt['why']} ({record(row)})"

    def side(value: float | None, unbounded: str) -> str:
        return unbounded if value is None else f"{value:.1f}"

    if "ci_low" in bt:
        interval = f"{side(bt['ci_low'], '−∞')} – {side(bt['ci_high'], '+∞')}"
    else:  # no bootstrap, or a model the prior alone rates: resampling its one-sided record says nothing
        interval = f"none: {record(row)}, one-sided in every resample" if bt["separation"] else "–"
    return f"{bt['rating']:.1f}" + ("*" if bt["separation"] else ""), interval


def method_notes(board: dict[str, Any]) -> list[str]:
    """What a reader must know to read the Bradley-Terry column (plain sentences, for any page)."""
    method, rows = board["bt_method"], board["models"]
    notes = []
    if method["prior_sd"] is not None:
        sd = method["prior_sd"]
        notes.append(f"Bradley-Terry with a Gaussian prior: each rating N({INITIAL:.0f}, {sd:g}²) (ratings.prior_sd; "
                     f"that is scikit-learn's L2 penalty with C = {(sd / SCALE) ** 2:g}, and SD 400 its default C = 1), "
                     "so a model that never lost or never won still gets a finite rating, shrunk toward "
                     f"{INITIAL:.0f}; * marks such a model, whose rating the prior decides.")
    elif any(row["bt"]["separation"] for row in rows):
        notes.append("Bradley-Terry ratings exist only for models that both took and gave points (a tie is half a "
                     "win each way) within one group; any other model's maximum-likelihood rating is infinite or "
                     "undefined, so its record shows instead. Set ratings.prior_sd for a regularised estimate.")
    if any(row["bt"].get("ci_low", 0) is None or row["bt"].get("ci_high", 0) is None
           for row in rows if row["bt"]["rating"] is not None):
        notes.append("±∞ in an interval: in more than 2.5% of the bootstrap resamples that model never lost (or "
                     "never won) against the others, so the data bound its rating on one side only.")
    if method.get("anchor_unrated"):
        notes.append(f"The anchor {method['anchor_unrated']} cannot be rated: ratings are centred on {INITIAL:.0f}.")
    few = [row["model"] for row in rows if row["few_battles"]]
    if few:
        notes.append(f"† fewer than {board['min_battles']} battles, too few for any claim: {', '.join(few)}.")
    return notes


def leaderboard(battles: list[Battle], rounds: int = 1000, seed: int = 0, anchor: tuple[str, float] | None = None,
                period: int = 1, tau: float = 0.5, prior_sd: float | None = None,
                min_battles: int = 10) -> dict[str, Any]:
    """Everything ``leaderboard.json`` holds. Without a prior only the log's largest strongly connected
    group is rated (``separation``); the other models' ``bt.rating`` is None and ``bt.separation``
    says where they stand. Rows: models above the rated ones, the rated ones by rating, then those
    apart and those below (unrated ones by Glicko-2)."""
    from tanuki_pipelines.eval.separation import estimability

    models = models_of(battles)
    positions = estimability(battles, models).positions
    rated = models if prior_sd is not None else [m for m in models if positions[m] == "rated"]
    bt = bradley_terry(among(battles, rated), anchor, prior_sd, rated) if rated else {}
    intervals = bootstrap(battles, rounds, seed, anchor, prior_sd, rated, bt) if rounds and rated else {}
    g2 = glicko(battles, period, tau)
    counts = tallies(battles)
    rows = []
    for model in models:
        rating = bt.get(model)
        row: dict[str, Any] = {"model": model, "bt": {
            "rating": None if rating is None else round(rating, 2),
            "separation": None if positions[model] == "rated" else positions[model]}}
        if rating is None:
            row["bt"]["why"] = (SEPARATION_TEXT if bt else NOBODY_RATED_TEXT)[positions[model]]
        elif rounds and positions[model] == "rated":  # a separated model is separated in every resample too
            low, high = intervals[model]
            row["bt"].update(ci_low=None if low is None else round(low, 2),
                             ci_high=None if high is None else round(high, 2))
        row.update({"glicko2": {"rating": round(g2[model].rating, 2), "rd": round(g2[model].rd, 2),
                                "volatility": round(g2[model].volatility, 6)},
                    **counts[model], "win_rate": round(counts[model]["wins"] / counts[model]["battles"], 4),
                    "few_battles": counts[model]["battles"] < min_battles})
        rows.append(row)
    band = {"above": 0, "rated": 1, "apart": 2, "below": 3}
    rows.sort(key=lambda row: (band[row["bt"]["separation"] or "rated"],
                               -(row["bt"]["rating"] if row["bt"]["rating"] is not None else row["glicko2"]["rating"])))
    anchor_unrated = anchor[0] if anchor is not None and anchor[0] in models and anchor[0] not in bt else None
    return {"models": rows, "win_rate_matrix": win_rate_matrix(battles), "min_battles": min_battles,
            "bt_method": {"prior_sd": prior_sd, "anchor": list(anchor) if anchor else None,
                          "anchor_unrated": anchor_unrated}}

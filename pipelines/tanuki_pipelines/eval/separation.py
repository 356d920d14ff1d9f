"""Which Bradley-Terry ratings a battle log can estimate at all (pure, scipy's graph routines).

Bradley-Terry's maximum-likelihood ratings exist only where the log is not *separated*: a group
of models that never lost to the rest (a tie counts as half a win each way) pushes the likelihood
ever higher as its ratings grow, so an unregularised solver stops somewhere arbitrary. Zermelo's
and Ford's condition says when they exist: in the graph with an edge i → j whenever i took points
from j (a win or a tie), ratings are finite, and unique up to a shift, exactly within a strongly
connected group. So the leaderboard rates the largest such group (``rated``) and says of every
other model where it stands against that group instead of printing a number:

- ``above``: took points from the rated group but never gave any back (e.g. 12–0);
- ``below``: the reverse;
- ``apart``: neither (never met the rated group, or only through other unrated models both ways).

When no two models took points from each other, nothing is rated: ``above`` then means never
lost at all, ``below`` never won, ``apart`` both (as the middle of a chain a > b > c).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Position = Literal["rated", "above", "below", "apart"]


class Decided(Protocol):
    """A battle, read only (``ratings.Battle`` is frozen)."""

    @property
    def model_a(self) -> str: ...
    @property
    def model_b(self) -> str: ...
    @property
    def winner(self) -> str: ...


def _took_points(battle: Decided) -> list[tuple[str, str]]:
    """(taker, giver) pairs of one battle: the winner from the loser, or both ways for a tie."""
    if battle.winner.startswith("tie"):
        return [(battle.model_a, battle.model_b), (battle.model_b, battle.model_a)]
    if battle.winner == "model_a":
        return [(battle.model_a, battle.model_b)]
    return [(battle.model_b, battle.model_a)]


@dataclass(frozen=True)
class Estimability:
    """Where each model of a log stands for Bradley-Terry."""

    positions: dict[str, Position]
    """Each model's position: ``rated`` (in the largest strongly connected group) or relative to it."""

    @property
    def rated(self) -> list[str]:
        """Models whose ratings the log estimates (sorted; empty when no two models are connected both ways)."""
        return sorted(model for model, position in self.positions.items() if position == "rated")

    @property
    def separated(self) -> bool:
        """Some model of the log cannot be rated."""
        return any(position != "rated" for position in self.positions.values())


def estimability(battles: Sequence[Decided], models: list[str] | None = None) -> Estimability:
    """Positions of ``models`` (default: every model of the log) given the battles among them."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    names = sorted(models if models is not None else {b.model_a for b in battles} | {b.model_b for b in battles})
    index = {name: i for i, name in enumerate(names)}
    edges = {(index[taker], index[giver]) for battle in battles
             if battle.model_a in index and battle.model_b in index for taker, giver in _took_points(battle)}
    rows, columns = zip(*sorted(edges), strict=True) if edges else ((), ())
    graph = csr_matrix((np.ones(len(edges)), (rows, columns)), shape=(len(names), len(names)))
    _, labels = connected_components(graph, directed=True, connection="strong")
    inside: Counter = Counter()  # battles within each strongly connected group
    for battle in battles:
        if battle.model_a in index and battle.model_b in index \
                and labels[index[battle.model_a]] == labels[index[battle.model_b]]:
            inside[labels[index[battle.model_a]]] += 1
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    candidates = [members for members in groups.values() if len(members) >= 2]
    if not candidates:  # nobody can be rated: say who never lost and who never won at all
        took = {i for i, _ in edges}
        gave = {j for _, j in edges}
        return Estimability({name: "above" if i in took and i not in gave else
                             "below" if i in gave and i not in took else "apart" for name, i in index.items()})
    # the largest group; then the one with more battles inside; then the first model name
    main = min(candidates, key=lambda members: (-len(members), -inside[labels[members[0]]], members[0]))
    member = main[0]
    reached_from = set(breadth_first_order(graph, member, directed=True, return_predecessors=False).tolist())
    reaching = set(breadth_first_order(graph.T.tocsr(), member, directed=True, return_predecessors=False).tolist())
    positions: dict[str, Position] = {}
    for name, i in index.items():
        if labels[i] == labels[member]:
            positions[name] = "rated"
        elif i in reaching:
            positions[name] = "above"  # reaches the group and, not being in it, is never reached back
        elif i in reached_from:
            positions[name] = "below"
        else:
            positions[name] = "apart"
    return Estimability(positions)

"""Glicko-2 (Glickman, "Example of the Glicko-2 system", 2022 revision of the 2001 paper).

A pure module: ``Rating`` on the Glicko scale (rating, RD, volatility); ``rate`` updates one
player from the games of one rating period; ``idle`` is a period without games. The worked
example of the paper (1500/200/0.06 against 1400/30, 1550/100, 1700/300 with results 1, 0, 0,
τ = 0.5) gives 1464.06 / 151.52 / 0.05999, which a test checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCALE = 173.7178
"""Glicko-2's conversion between the Glicko scale and its internal one (400 / ln 10)."""
CONVERGENCE = 1e-6


@dataclass(frozen=True)
class Rating:
    rating: float = 1500.0
    rd: float = 350.0
    volatility: float = 0.06

    @property
    def mu(self) -> float:
        return (self.rating - 1500.0) / SCALE

    @property
    def phi(self) -> float:
        return self.rd / SCALE


def _g(phi: float) -> float:
    return 1.0 / math.sqrt(1.0 + 3.0 * phi * phi / (math.pi * math.pi))


def _expected(mu: float, mu_j: float, phi_j: float) -> float:
    return 1.0 / (1.0 + math.exp(-_g(phi_j) * (mu - mu_j)))


def _new_volatility(sigma: float, phi: float, v: float, delta: float, tau: float) -> float:
    """Step 5: the Illinois algorithm on f(x) = 0 for x = ln σ'²."""
    a = math.log(sigma * sigma)

    def f(x: float) -> float:
        ex = math.exp(x)
        return (ex * (delta * delta - phi * phi - v - ex) / (2.0 * (phi * phi + v + ex) ** 2)
                - (x - a) / (tau * tau))

    upper = a
    if delta * delta > phi * phi + v:
        lower = math.log(delta * delta - phi * phi - v)
    else:
        k = 1
        while f(a - k * tau) < 0:
            k += 1
        lower = a - k * tau
    f_upper, f_lower = f(upper), f(lower)
    while abs(lower - upper) > CONVERGENCE:
        c = upper + (upper - lower) * f_upper / (f_lower - f_upper)
        f_c = f(c)
        if f_c * f_lower <= 0:
            upper, f_upper = lower, f_lower
        else:
            f_upper /= 2.0
        lower, f_lower = c, f_c
    return math.exp(upper / 2.0)


def idle(player: Rating) -> Rating:
    """A rating period without games: only the uncertainty grows."""
    phi = math.sqrt(player.phi ** 2 + player.volatility ** 2)
    return Rating(player.rating, phi * SCALE, player.volatility)


def rate(player: Rating, games: list[tuple[Rating, float]], tau: float = 0.5) -> Rating:
    """``player`` after one rating period with ``games``: (opponent before the period, score 1 / 0.5 / 0)."""
    if not games:
        return idle(player)
    mu, phi = player.mu, player.phi
    terms = [(_g(opponent.phi), _expected(mu, opponent.mu, opponent.phi), score) for opponent, score in games]
    v = 1.0 / sum(g * g * e * (1.0 - e) for g, e, _ in terms)
    delta = v * sum(g * (score - e) for g, e, score in terms)
    sigma = _new_volatility(player.volatility, phi, v, delta, tau)
    phi_star = math.sqrt(phi * phi + sigma * sigma)
    new_phi = 1.0 / math.sqrt(1.0 / (phi_star * phi_star) + 1.0 / v)
    new_mu = mu + new_phi * new_phi * sum(g * (score - e) for g, e, score in terms)
    return Rating(new_mu * SCALE + 1500.0, new_phi * SCALE, sigma)

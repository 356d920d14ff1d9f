"""Quality figures of a quantized model against its source, and the gate's decision (pure)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Scores:
    """One model on one text: per predicted position, its argmax token and the log-probability it
    gives the text's actual next token."""

    argmax: list[int]
    logprobs: list[float]


@dataclass(frozen=True)
class Quality:
    agreement: float
    """Share of positions where both models' greedy next token is the same."""
    mean_abs_dlogprob: float
    max_abs_dlogprob: float
    source_perplexity: float
    quantized_perplexity: float
    positions: int
    texts: int

    def as_dict(self) -> dict[str, float | int]:
        return {key: (round(value, 6) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def compare(source: list[Scores], quantized: list[Scores]) -> Quality:
    """Figures over every scored position of every held-out text (same tokens for both models)."""
    agree, deltas, source_lp, quant_lp = 0, [], [], []
    for s, q in zip(source, quantized, strict=True):
        if len(s.argmax) != len(q.argmax):
            raise ValueError(f"scored {len(s.argmax)} vs {len(q.argmax)} positions: not the same tokens")
        agree += sum(a == b for a, b in zip(s.argmax, q.argmax, strict=True))
        deltas += [abs(a - b) for a, b in zip(s.logprobs, q.logprobs, strict=True)]
        source_lp += s.logprobs
        quant_lp += q.logprobs
    if not deltas:
        raise ValueError("no positions scored")
    return Quality(agreement=agree / len(deltas), mean_abs_dlogprob=sum(deltas) / len(deltas),
                   max_abs_dlogprob=max(deltas), source_perplexity=math.exp(-sum(source_lp) / len(source_lp)),
                   quantized_perplexity=math.exp(-sum(quant_lp) / len(quant_lp)), positions=len(deltas),
                   texts=len(source))


def gate_failure(quality: Quality, threshold: float) -> str | None:
    """The failure message (with the figures) when agreement is below ``threshold``, else None."""
    if quality.agreement >= threshold:
        return None
    return (f"gate.threshold: next-token agreement with the source {quality.agreement:.4f} < {threshold} "
            f"(mean |Δlogprob| {quality.mean_abs_dlogprob:.4f}, max {quality.max_abs_dlogprob:.4f}; perplexity "
            f"{quality.source_perplexity:.3f} → {quality.quantized_perplexity:.3f}; {quality.positions} positions "
            f"in {quality.texts} held-out texts); try a wider scheme (W8A8, q8_0), more calibration samples, "
            "or more modules in `ignore`")

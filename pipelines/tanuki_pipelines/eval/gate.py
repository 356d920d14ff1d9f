"""``tanuki eval --mode gate``: is a canary (the first target) not worse than its reference (the
second)? Each configured gate gathers its evidence from the two endpoints — log-likelihoods of
held-out texts, judged battles, judged grades, harness scores — and ``tanuki_common.quality``
decides; the verdicts go to ``gate.json`` and, compact, to the stage's outputs, where the operator
reads them. Given one target (a server's first revision: nothing to compare with), only the gates
with an absolute bar judge it, against their bars.

A gate whose evidence is incomplete (a judge request failed, a text the server refused) says so
(no verdict): the caller holds the canary rather than promote it on missing evidence.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_common.quality import (
    GateVerdict,
    arena_gate,
    combine,
    grade_bar,
    grade_gate,
    harness_bar,
    harness_gate,
    perplexity_bar,
    perplexity_gate,
)
from tanuki_pipelines.eval.client import RequestFailed, reachable_client
from tanuki_pipelines.eval.config import Contestant, EvalConfig, PerplexityGate
from tanuki_pipelines.eval.records import load_questions, read_jsonl

CANARY_WINS = "model_a"
"""The canary is the first target, so model_a of every battle (pairs keep the targets' order)."""
TIES = ("tie", "tie (bothbad)")


def held_out_texts(settings: PerplexityGate) -> list[str]:
    """The texts to score: ``text`` records, or every turn of MT-Bench questions (the shipped ones by default)."""
    texts: list[str] = []
    if settings.texts is None:
        texts = [turn for question in load_questions(None).items for turn in question.turns]
    else:
        records, _ = read_jsonl(settings.texts)
        if not records and not settings.texts.is_file():
            raise BadInputError(f"gate.perplexity.texts: no such file: {settings.texts}")
        for record in records:
            if not isinstance(record, dict):
                continue
            if isinstance(record.get("text"), str) and record["text"].strip():
                texts.append(record["text"])
            elif isinstance(record.get("turns"), list):
                texts += [turn for turn in record["turns"] if isinstance(turn, str) and turn.strip()]
    if not texts:
        raise BadInputError(f"gate.perplexity.texts: no text to score in {settings.texts or 'the shipped questions'}")
    return texts[:settings.max_texts]


def text_log_likelihood(openai_client: Any, model: str, text: str, max_tokens: int | None) -> tuple[float, int]:
    """(sum of log p(token | the tokens before it), tokens scored) of one text, from a vLLM server's
    ``prompt_logprobs`` on its completions API (one token is generated and ignored)."""
    from openai import APIError

    extra: dict[str, Any] = {"prompt_logprobs": 0, "return_token_ids": True}
    if max_tokens is not None:
        extra["truncate_prompt_tokens"] = max_tokens
    try:
        response = openai_client.completions.create(model=model, prompt=text, max_tokens=1, temperature=0.0,
                                                    extra_body=extra)
    except APIError as exc:
        raise RequestFailed(f"{type(exc).__name__}: {str(exc)[:300]}") from None
    choice = response.choices[0].model_extra or {}
    ids, logprobs = choice.get("prompt_token_ids"), choice.get("prompt_logprobs")
    if not ids or not logprobs:
        raise RequestFailed("the server returned no prompt_logprobs (the perplexity gate needs a vLLM server)")
    total, count = 0.0, 0
    for token, entry in zip(ids[1:], logprobs[1:], strict=False):  # the first token has no context
        if entry:
            total += entry[str(token)]["logprob"]
            count += 1
    return total, count


def mean_log_likelihood(target: Contestant, texts: list[str], settings: PerplexityGate, parallel: int,
                        field: str) -> tuple[float | None, int, list[str]]:
    """(mean log-likelihood per token over every text, tokens, failures) of one target."""
    openai_client = reachable_client(target.base_url, target.api_key_env, field)

    def score(text: str) -> tuple[float, int] | str:
        try:
            return text_log_likelihood(openai_client, target.model, text, settings.max_text_tokens)
        except RequestFailed as exc:
            return str(exc)

    with ThreadPoolExecutor(parallel) as pool:
        scored = list(pool.map(score, texts))
    failures = [item for item in scored if isinstance(item, str)]
    sums = [item for item in scored if not isinstance(item, str)]
    tokens = sum(count for _, count in sums)
    if failures or tokens == 0:
        return None, tokens, failures
    return sum(total for total, _ in sums) / tokens, tokens, failures


def perplexity_verdict(config: EvalConfig) -> GateVerdict:
    settings = config.gate.perplexity
    assert settings is not None
    texts = held_out_texts(settings)
    scores = [mean_log_likelihood(target, texts, settings, config.arena.parallel, f"targets[{index}]")
              for index, target in enumerate(config.targets)]
    failed = [f"{target.label}: {len(found[2])} of {len(texts)} texts failed ({found[2][0]})"
              for target, found in zip(config.targets, scores, strict=True) if found[2]]
    if failed:
        return GateVerdict("perplexity", None, "; ".join(failed))
    canary, canary_tokens, _ = scores[0]
    if len(scores) == 1:  # nothing to compare with: the bar
        assert settings.max_perplexity is not None, "one target runs only the gates with a bar"
        verdict = perplexity_bar(canary, settings.max_perplexity)
        figures = {**verdict.figures, "texts": len(texts), "canary_tokens": canary_tokens}
        return GateVerdict(verdict.gate, verdict.passed, f"{verdict.message} over {len(texts)} texts", figures)
    reference, reference_tokens, _ = scores[1]
    verdict = perplexity_gate(canary, reference, settings.max_drop)
    figures = {**verdict.figures, "texts": len(texts), "canary_tokens": canary_tokens,
               "reference_tokens": reference_tokens}
    return GateVerdict(verdict.gate, verdict.passed, f"{verdict.message} over {len(texts)} texts", figures)


def arena_verdict(config: EvalConfig, out: Path) -> GateVerdict:
    from tanuki_pipelines.eval.arena import battles

    settings = config.gate.arena
    assert settings is not None
    log = battles(config, out)
    outcomes = [record.get("winner") for record in log.records.values()]
    wins = outcomes.count(CANARY_WINS)
    losses = outcomes.count("model_b")
    ties = sum(outcomes.count(tie) for tie in TIES)
    undecided = len(outcomes) - wins - losses - ties
    if undecided:
        failed = sorted({str(outcome) for outcome in outcomes if outcome not in (CANARY_WINS, "model_b", *TIES)})
        return GateVerdict("arena", None, f"{undecided} of {len(outcomes)} battles undecided ({', '.join(failed)})")
    return arena_gate(wins, ties, losses, settings.min_win_rate, settings.confidence)


def grade_verdict(config: EvalConfig, out: Path) -> GateVerdict:
    from tanuki_pipelines.eval.grade import grade

    settings = config.gate.grade
    assert settings is not None
    found = grade(config, out)
    means = [found["models"].get(target.label, {}).get("overall") for target in config.targets]
    if len(means) == 1:
        assert settings.min_grade is not None, "one target runs only the gates with a bar"
        return grade_bar(means[0], settings.min_grade)
    return grade_gate(means[0], means[1], settings.max_drop)


def harness_verdict(config: EvalConfig, out: Path) -> GateVerdict:
    from tanuki_pipelines.eval.harness import run_harness

    settings = config.gate.harness
    assert settings is not None
    found = run_harness(config.targets, config.harness, out)
    scores = [_task_scores(found["models"].get(target.label) or {}) for target in config.targets]
    if len(scores) == 1:
        return harness_bar(scores[0], settings.min_scores)
    return harness_gate(scores[0], scores[1], settings.max_drop)


def _task_scores(tasks: dict[str, Any]) -> dict[str, float]:
    """task → its first metric (the one the leaderboard shows), from one model's harness scores."""
    from tanuki_pipelines.eval.harness import headline

    return {task: found[1] for task, metrics in tasks.items() if (found := headline(metrics)) is not None}


def evaluate_gates(config: EvalConfig, out: Path) -> dict[str, Any]:
    """Every configured gate's verdict and the combined one (``gate.json``)."""
    if not config.gate.given():
        raise BadInputError("gate: mode gate needs at least one of gate.perplexity, gate.arena, gate.grade, "
                            "gate.harness")
    if len(config.targets) not in (1, 2) or (len(config.targets) == 1 and not config.gate.bars()):
        found = f"{len(config.targets)} target(s){' and no bar' if len(config.targets) == 1 else ''}"
        raise BadInputError(f"targets: mode gate compares two targets, the canary then its reference, or judges "
                            f"one against the gates' absolute bars (got {found})")
    run = {"perplexity": lambda: perplexity_verdict(config), "arena": lambda: arena_verdict(config, out),
           "grade": lambda: grade_verdict(config, out), "harness": lambda: harness_verdict(config, out)}
    alone = len(config.targets) == 1
    verdicts = [run[name]() for name in (config.gate.bars() if alone else config.gate.given())]
    decision = combine(verdicts)
    return {"canary": config.targets[0].label, "reference": None if alone else config.targets[1].label,
            "passed": decision.passed, "reason": decision.reason, "message": decision.message,
            "gates": [{**asdict(verdict), "reason": verdict.reason} for verdict in verdicts]}


def compact(result: dict[str, Any], limit: int = 2500) -> dict[str, Any]:
    """The verdict for the stage's outputs (a termination message keeps 4 KiB): every gate's figures
    while they fit, else only the verdicts."""
    import json

    brief = {"passed": result["passed"], "reason": result["reason"], "message": result["message"][:600],
             "figures": {gate["gate"]: {name: round(value, 6) for name, value in gate["figures"].items()}
                         for gate in result["gates"]}}
    if len(json.dumps(brief, ensure_ascii=False).encode()) > limit:
        brief["figures"] = {}
    return brief

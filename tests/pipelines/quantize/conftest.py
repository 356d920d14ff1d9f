"""Tiny models the quantize tests share: a debug Llama briefly trained on the debug corpus (a random
one's next-token distribution is nearly flat, so its argmax flips under any rounding), and an MoE
upcycled from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DEBUG_CORPUS = Path(__file__).resolve().parents[3] / "pipelines" / "recipes" / "debug" / "corpus"

FIT_STEPS = 200


@pytest.fixture(scope="session")
def trained_debug(tmp_path_factory: pytest.TempPathFactory, debug_tokenizer_dir: Path) -> Path:
    """The debug model (widths 128/384: multiples of W4A16's group of 128) after a few hundred
    AdamW steps on the shipped corpus: peaked enough that argmax agreement means something."""
    import torch
    from transformers import AutoTokenizer

    from tanuki_pipelines.pretrain.config import ModelConfig
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.tokenizer.train import copy_tokenizer_files

    torch.manual_seed(0)
    model = build_model(ModelConfig(preset="debug"), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(debug_tokenizer_dir)
    ids = [i for name in ("ja.jsonl", "en.jsonl") for line in (DEBUG_CORPUS / name).open(encoding="utf-8")
           for i in tokenizer(json.loads(line)["text"], add_special_tokens=False)["input_ids"]]
    data = torch.tensor(ids)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(FIT_STEPS):
        starts = torch.randint(0, len(data) - 65, (16,), generator=generator)
        batch = torch.stack([data[start:start + 64] for start in starts])
        model(batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    out = tmp_path_factory.mktemp("quantize-models") / "trained"
    model.save_pretrained(out)
    copy_tokenizer_files(debug_tokenizer_dir, out)
    return out


@pytest.fixture(scope="session")
def trained_moe(trained_debug: Path) -> Path:
    """The trained debug model upcycled (our upcycle code) into a 4-expert Mixtral."""
    from tanuki_pipelines.upcycle.config import UpcycleConfig
    from tanuki_pipelines.upcycle.convert import upcycle

    out = trained_debug.parent / "moe"
    upcycle(UpcycleConfig(source=trained_debug, num_experts=4, top_k=2, noise_std=0.0), out, progress=False)
    return out


@pytest.fixture(scope="session")
def write_recipe():
    """``write_recipe(path, **fields)``: a quantize recipe calibrating on a handful of the shipped
    corpus' texts (a JSON file is YAML too)."""
    return _write_recipe


def _write_recipe(path: Path, **fields: object) -> Path:
    recipe = {"calibration": {"path": str(DEBUG_CORPUS / "ja.jsonl"), "num_samples": 8, "max_seq_length": 128},
              "gate": {"num_texts": 8, "max_tokens": 64}, **fields}
    path.write_text(json.dumps(recipe, default=str), encoding="utf-8")
    return path

"""Serving test helpers shared by tests/serving and the local-runner rollout tests."""

from __future__ import annotations

import shutil
from pathlib import Path

API_KEY = "test-key"
SERVED_NAME = "debug-chat"


def build_checkpoint(out: Path, tokenizer_dir: Path, seed: int) -> Path:
    """A servable debug checkpoint (random weights from ``seed``) with the debug tokenizer."""
    import torch

    from tanuki_pipelines.pretrain.config import ModelConfig
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.tokenizer.train import copy_tokenizer_files

    torch.manual_seed(seed)
    build_model(ModelConfig(preset="debug"), dtype=torch.float32).save_pretrained(out)
    copy_tokenizer_files(tokenizer_dir, out)
    return out


def build_checkpoints(root: Path, tokenizer_dir: Path) -> dict[str, Path]:
    """``a`` and ``b``: servable, different weights; ``broken``: ``a`` with its weights file corrupted
    (config and tokenizer intact, so only vLLM's load fails)."""
    found = {name: build_checkpoint(root / name, tokenizer_dir, seed) for name, seed in (("a", 0), ("b", 1))}
    broken = root / "broken"
    shutil.copytree(found["a"], broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    found["broken"] = broken
    return found

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


def noised_checkpoint(source: Path, out: Path, std: float, seed: int = 0) -> Path:
    """A copy of ``source`` with Gaussian noise of ``std`` added to every weight: the same model made
    worse (its predictions confidently wrong), servable like the original."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, out)
    weights = load_file(source / "model.safetensors")
    generator = torch.Generator().manual_seed(seed)
    noised = {name: tensor + std * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
              for name, tensor in weights.items()}
    save_file(noised, out / "model.safetensors", metadata={"format": "pt"})
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

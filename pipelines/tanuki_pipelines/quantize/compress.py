"""llmcompressor ``oneshot`` → a compressed-tensors checkpoint stock vLLM loads."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

MODIFIER_MODULES = {"SmoothQuantModifier": "llmcompressor.modifiers.transform",
                    "GPTQModifier": "llmcompressor.modifiers.quantization",
                    "QuantizationModifier": "llmcompressor.modifiers.quantization"}


def modifiers(recipe: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return [getattr(import_module(MODIFIER_MODULES[name]), name)(**kwargs) for name, kwargs in recipe]


def compress(source: Path, out: Path, recipe: list[tuple[str, dict[str, Any]]], texts: list[str],
             dtype: str, max_seq_length: int) -> None:
    """Calibrate on ``texts`` (none for data-free schemes) and save compressed into ``out``. The model
    is loaded on the CPU: llmcompressor's pipelines onload it layer by layer to the GPU when there is
    one, so a model larger than the GPU still calibrates."""
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tanuki_pipelines.tokenizer.train import copy_tokenizer_files

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
    arguments: dict[str, Any] = {}
    if texts:
        encoded = tokenizer(texts, truncation=True, max_length=max_seq_length, add_special_tokens=False)
        arguments = {"dataset": Dataset.from_dict({"input_ids": encoded["input_ids"],
                                                   "attention_mask": encoded["attention_mask"]}),
                     "num_calibration_samples": len(texts), "max_seq_length": max_seq_length}
    oneshot(model=model, tokenizer=tokenizer, recipe=modifiers(recipe), **arguments)
    model.save_pretrained(out, save_compressed=True)
    copy_tokenizer_files(source, out)

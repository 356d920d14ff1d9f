from __future__ import annotations

from importlib.metadata import entry_points

import torch

from tanuki_serving.plugin import normalize_gate_logits


def test_gate_logits_are_standardised_then_scaled() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0, 10.0], [-5.0, 0.0, 5.0, 0.0]])
    normalised = normalize_gate_logits(logits, scale=2.5)
    assert torch.allclose(normalised.mean(-1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(normalised.std(-1, unbiased=False), torch.full((2,), 2.5), atol=1e-4)
    assert torch.equal(normalised.argsort(-1), logits.argsort(-1))  # the order (top-k) is kept


def test_vllm_finds_the_plugin_through_its_entry_point() -> None:
    plugins = {entry.name: entry.value for entry in entry_points(group="vllm.general_plugins")}
    assert plugins.get("tanuki_moe") == "tanuki_serving.plugin:register"

"""What ``tanuki sft`` checks before torchrun starts (see ``tanuki_pipelines.preflight``)."""

from __future__ import annotations

from tanuki_pipelines.preflight import Preflight
from tanuki_pipelines.sft.config import SFTConfig
from tanuki_pipelines.sft.data import conversation_problem


def preflight(config: SFTConfig, check: Preflight) -> None:
    check.fine_tuning_start(config.model, config.train.max_length, config.router_aux_loss_coef)
    check.records("dataset", config.dataset, 'conversations ({"messages": [...]} with an assistant turn)',
                  conversation_problem)

"""What ``tanuki dpo`` checks before generating pairs or training (see ``tanuki_pipelines.preflight``)."""

from __future__ import annotations

from tanuki_pipelines.dpo.config import DPOConfig
from tanuki_pipelines.dpo.generate import pair_problem, prompt_messages
from tanuki_pipelines.preflight import Preflight


def preflight(config: DPOConfig, check: Preflight) -> None:
    model = check.fine_tuning_start(config.model, config.train.max_length, config.router_aux_loss_coef)
    if config.generate:
        check.records("prompts", config.prompts, 'prompts ({"prompt": ...} or {"messages": [...]} ending in a '
                      "user turn)", lambda record: prompt_messages(record)[1])
        pairs = config.pairs
        if pairs.engine == "vllm":
            check.vllm_engine("model", model, "pairs.generator.", pairs.generator.max_model_len,
                              pairs.generator.tensor_parallel_size)
        elif pairs.endpoint is None:
            check.problem("pairs.endpoint: required with pairs.engine endpoint")
        if pairs.max_temperature < pairs.temperature:
            check.problem(f"pairs.max_temperature: {pairs.max_temperature} is below pairs.temperature "
                          f"{pairs.temperature}")
    else:
        check.records("prompts", config.prompts, 'preference pairs ({"prompt", "chosen", "rejected"})',
                      pair_problem)

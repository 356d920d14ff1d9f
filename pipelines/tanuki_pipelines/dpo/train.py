"""One DPO training process (``torchrun -m tanuki_pipelines.dpo.train``) on ``pairs.jsonl``.

TRL's ``DPOTrainer`` with the recipe's β and loss; prompts are cut to their last
``max_prompt_tokens`` tokens first (TRL 1.16 has no ``max_prompt_length``); LoRA optional, ZeRO
0–3 through the Trainer, the MoE router loss kept, resumable from ``checkpoints/``. TRL's
per-step chosen/rejected rewards and their margin go to ``metrics.jsonl`` and ``margins.png``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tanuki_pipelines.dpo.config import DPOConfig

PAIRS_FILE = "pairs.jsonl"


def trl_arguments(config: DPOConfig, output_dir: Path, on_gpu: bool, world_size: int = 1) -> dict[str, Any]:
    """``trl.DPOConfig`` keyword arguments for the recipe (pure)."""
    from tanuki_pipelines.sft.train import trainer_arguments

    return {**trainer_arguments(config.train, output_dir, on_gpu, world_size, config.router_aux_loss_coef),
            "beta": config.beta, "loss_type": [config.loss_type], "truncation_mode": "keep_start"}


def cut_prompt(messages: list[dict[str, str]], tokenizer: Any, max_tokens: int) -> list[dict[str, str]] | None:
    """The prompt with its last user turn shortened from the front until the templated prompt has
    at most ``max_tokens`` tokens; None when even an empty last turn does not fit."""
    from tanuki_pipelines.synth.engines import chat_prompt_tokens

    def length(candidate: list[dict[str, str]]) -> int:
        return chat_prompt_tokens(tokenizer, candidate)

    if length(messages) <= max_tokens:
        return messages
    *context, last = messages
    ids = tokenizer(last["content"], add_special_tokens=False)["input_ids"]
    low, high = 0, len(ids)  # the fewest leading tokens to drop so the prompt fits
    while low < high:
        middle = (low + high) // 2
        shortened = [*context, {**last, "content": tokenizer.decode(ids[middle:])}]
        if length(shortened) <= max_tokens:
            high = middle
        else:
            low = middle + 1
    result = [*context, {**last, "content": tokenizer.decode(ids[low:])}]
    return result if length(result) <= max_tokens and result[-1]["content"].strip() else None


def training_rows(pairs: list[dict[str, Any]], tokenizer: Any, max_prompt_tokens: int) -> tuple[list[dict], int]:
    """TRL's conversational preference rows, and how many pairs had prompts too long to keep."""
    rows, dropped = [], 0
    for pair in pairs:
        prompt = cut_prompt(pair["prompt"], tokenizer, max_prompt_tokens)
        if prompt is None:
            dropped += 1
            continue
        rows.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": pair["chosen"]}],
                     "rejected": [{"role": "assistant", "content": pair["rejected"]}]})
    return rows, dropped


def plot_margins(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in records]
    for key, label in (("rewards/margins", "margin (chosen − rejected)"), ("rewards/chosen", "chosen"),
                       ("rewards/rejected", "rejected")):
        if all(key in r for r in records):
            axis.plot(steps, [r[key] for r in records], label=label)
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_xlabel("step")
    axis.set_ylabel("implicit reward")
    axis.set_title("tanuki dpo: rewards")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(config: DPOConfig, output_dir: Path) -> dict[str, Any] | None:
    import torch
    from datasets import Dataset
    from trl import DPOConfig as TrlDPOConfig
    from trl import DPOTrainer

    from tanuki_common.errors import BadInputError
    from tanuki_pipelines.sft.train import MetricsLog, chat_tokenizer, peft_config, train_and_publish

    if config.model is None:  # the launcher checks it; a pod starts torchrun directly
        raise BadInputError("model: not set")
    on_gpu = torch.cuda.is_available()
    tokenizer = chat_tokenizer(config.model)
    pairs = [json.loads(line) for line in (output_dir / PAIRS_FILE).read_text(encoding="utf-8").splitlines()]
    rows, too_long = training_rows(pairs, tokenizer, config.max_prompt_tokens)
    if os.environ.get("RANK", "0") == "0" and too_long:
        print(f"[tanuki dpo] left out {too_long} pair(s) whose prompt does not fit max_prompt_tokens", flush=True)
    if not rows:
        raise BadInputError(f"no preference pair fits max_prompt_tokens {config.max_prompt_tokens}")
    arguments = TrlDPOConfig(**trl_arguments(config, output_dir, on_gpu, int(os.environ.get("WORLD_SIZE", "1"))))
    metrics = MetricsLog(output_dir / "metrics.jsonl")
    # the model by path: TRL then builds the frozen reference from the same checkpoint
    trainer = DPOTrainer(model=str(config.model), args=arguments, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=peft_config(config), callbacks=[metrics.callback])
    return train_and_publish(trainer, tokenizer, config, output_dir, stage="dpo", plots={"margins.png": plot_margins})


def main(argv: list[str] | None = None) -> int:
    from tanuki_pipelines.cli_common import torchrun_worker_main

    return torchrun_worker_main("dpo", __doc__.splitlines()[0], DPOConfig, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())

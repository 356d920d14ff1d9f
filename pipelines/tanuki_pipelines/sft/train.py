"""One SFT training process (``torchrun -m tanuki_pipelines.sft.train`` per device, or plain python).

TRL's ``SFTTrainer`` on the checked conversations: loss on assistant tokens only (the chat
template's ``{% generation %}`` markers), optional packing and LoRA, DeepSpeed ZeRO through the
Trainer when the recipe asks for it, resumable from the newest checkpoint under
``checkpoints/``. Rank 0 then publishes the final HF checkpoint (LoRA merged when asked) with
``metrics.jsonl``, ``loss.png`` and ``outputs.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tanuki_pipelines.sft.config import FinetuneTrain, SFTConfig

CHECKPOINT_DIR = "checkpoints"
FINAL_DIR = "checkpoint"
ADAPTER_DIR = "adapter"
SAVED_DIR = ".tmp-trained"


def deepspeed_config(stage: int) -> dict[str, Any] | None:
    """The Trainer's DeepSpeed config ("auto" values filled from its arguments); None for stage 0."""
    if stage == 0:
        return None
    zero: dict[str, Any] = {"stage": stage}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
            "train_batch_size": "auto", "gradient_clipping": "auto", "bf16": {"enabled": "auto"},
            "zero_optimization": zero, "zero_allow_untested_optimizer": True}


def trainer_arguments(train: FinetuneTrain, output_dir: Path, on_gpu: bool, world_size: int,
                      router_aux_loss_coef: float | None) -> dict[str, Any]:
    """The Trainer settings SFT and DPO share (pure)."""
    bf16 = on_gpu if train.precision == "auto" else train.precision == "bf16"
    return {"output_dir": str(output_dir / CHECKPOINT_DIR), "num_train_epochs": train.epochs,
            "max_steps": train.max_steps, "learning_rate": train.lr, "warmup_steps": train.warmup_ratio,
            "lr_scheduler_type": "cosine", "per_device_train_batch_size": train.micro_batch_size,
            "gradient_accumulation_steps": train.grad_accum_steps, "max_length": train.max_length,
            "bf16": bf16, "use_cpu": not on_gpu, "ddp_backend": "gloo" if world_size > 1 and not on_gpu else None,
            "gradient_checkpointing": on_gpu, "logging_steps": 1, "save_steps": train.save_every_steps,
            "save_total_limit": train.keep_last, "report_to": "none", "seed": train.seed,
            # progress goes to metrics.jsonl and [tanuki progress] lines (the runner and the operator read them)
            "disable_tqdm": True,
            "deepspeed": deepspeed_config(train.zero_stage), "dataset_num_proc": None,
            # TRL keeps a Mixture-of-Experts router's load-balancing loss in the loss (None: the checkpoint's coefficient)
            "router_aux_loss_coef": router_aux_loss_coef}


def trl_arguments(config: SFTConfig, output_dir: Path, on_gpu: bool, world_size: int = 1) -> dict[str, Any]:
    """``trl.SFTConfig`` keyword arguments for the recipe (pure)."""
    return {**trainer_arguments(config.train, output_dir, on_gpu, world_size, config.router_aux_loss_coef),
            "packing": config.packing, "assistant_only_loss": config.assistant_only_loss}


def newest_checkpoint(output_dir: Path) -> str | None:
    found = sorted((output_dir / CHECKPOINT_DIR).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(found[-1]) if found else None


def load_model(config: Any, on_gpu: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    bf16 = on_gpu if config.train.precision == "auto" else config.train.precision == "bf16"
    return AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.bfloat16 if bf16 else torch.float32)


def peft_config(config: Any) -> Any:
    if config.lora is None:
        return None
    from peft import LoraConfig

    lora = config.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(lora.target_modules), task_type="CAUSAL_LM")


class MetricsLog:
    """A Trainer callback writing each logged step to ``metrics.jsonl`` (rank 0)."""

    def __init__(self, path: Path) -> None:
        from transformers import TrainerCallback

        from tanuki_pipelines.outputs import format_progress

        outer = self

        class Callback(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
                if state.is_world_process_zero and logs and "loss" in logs:
                    outer.write({"step": state.global_step, **{k: v for k, v in logs.items()
                                                                if isinstance(v, (int, float))}})
                    # the line the operator (pod log) and the local runner read progress from
                    print(format_progress(state.global_step, state.max_steps, loss=float(logs["loss"])), flush=True)

        self.path = path
        self.callback = Callback()

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def chat_tokenizer(model: Path) -> Any:
    """The checkpoint's tokenizer, which must have what chat fine-tuning needs: a chat template to
    format conversations and an eos token to end answers."""
    from tanuki_pipelines.tokenizer.special import load_tokenizer, require_chat_template, require_eos, special_ids

    tokenizer = load_tokenizer(model, "model")
    require_chat_template(tokenizer, "model", model)
    require_eos(special_ids(tokenizer), "model", model, "every answer ends with it")
    return tokenizer


def run(config: SFTConfig, output_dir: Path) -> dict[str, Any] | None:
    import torch
    from datasets import Dataset
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    from tanuki_common.errors import BadInputError
    from tanuki_pipelines.sft.data import read_conversations

    if config.dataset is None:  # the launcher checks both; a pod starts torchrun directly
        raise BadInputError("dataset: not set")
    if config.model is None:
        raise BadInputError("model: not set")
    on_gpu = torch.cuda.is_available()
    conversations, problems = read_conversations(config.dataset)
    if os.environ.get("RANK", "0") == "0":
        for reason, found in problems.as_dict().items():
            print(f"[tanuki sft] left out {found['count']} conversation(s): {reason} "
                  f"(e.g. {', '.join(found['first'])})", flush=True)
    tokenizer = chat_tokenizer(config.model)
    arguments = TrlSFTConfig(**trl_arguments(config, output_dir, on_gpu, int(os.environ.get("WORLD_SIZE", "1"))))
    metrics = MetricsLog(output_dir / "metrics.jsonl")
    trainer = SFTTrainer(model=load_model(config, on_gpu), args=arguments, train_dataset=Dataset.from_list(conversations),
                         processing_class=tokenizer, peft_config=peft_config(config), callbacks=[metrics.callback])
    return train_and_publish(trainer, tokenizer, config, output_dir)


def train_and_publish(trainer: Any, tokenizer: Any, config: Any, output_dir: Path, **publishing: Any) -> dict[str, Any] | None:
    """Train (resuming from the newest checkpoint; a fresh start drops old metrics), save on every
    rank (ZeRO-3 gathers the shards, the main process writes) and publish on the main process."""
    resume = newest_checkpoint(output_dir)
    if resume is None and (output_dir / "metrics.jsonl").exists():
        (output_dir / "metrics.jsonl").unlink()
    trainer.train(resume_from_checkpoint=resume)
    saved = output_dir / SAVED_DIR
    trainer.save_model(str(saved))
    if not trainer.is_world_process_zero():
        return None
    return publish(saved, tokenizer, config, output_dir, trainer.state.global_step, **publishing)


def publish(saved: Path, tokenizer: Any, config: Any, output_dir: Path, steps: int, stage: str = "sft",
            plots: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trained weights as the stage's outputs: the full checkpoint (with the LoRA adapter merged
    in when asked; the adapter alone beside it), metrics, loss curve, ``outputs.json``."""
    from tanuki_pipelines.outputs import publish_outputs
    from tanuki_pipelines.pretrain.metrics import plot_loss, read_metrics
    from tanuki_pipelines.publish import publish_dir, publish_file, staging

    final = output_dir / FINAL_DIR
    outputs: dict[str, Any] = {"checkpoint": str(final), "metrics": str(output_dir / "metrics.jsonl"), "steps": steps}
    if config.lora is None:
        tokenizer.save_pretrained(saved)
        publish_dir(saved, final, f"{stage}-checkpoint")
    else:
        publish_dir(saved, output_dir / ADAPTER_DIR, f"{stage}-adapter")
        outputs["adapter"] = str(output_dir / ADAPTER_DIR)
        if config.lora.merge:
            from peft import AutoPeftModelForCausalLM

            merged = AutoPeftModelForCausalLM.from_pretrained(output_dir / ADAPTER_DIR).merge_and_unload()
            with staging(final, f"{stage}-checkpoint") as staged:
                merged.save_pretrained(staged)
                tokenizer.save_pretrained(staged)
        else:
            outputs["checkpoint"] = str(config.model)  # the base, which the adapter applies to
    records = read_metrics(output_dir / "metrics.jsonl")
    if records:
        plot = output_dir / ".tmp-loss.png"
        plot_loss(records, plot, title=f"tanuki {stage}")
        publish_file(plot, output_dir / "loss.png")
        outputs.update(loss_curve=str(output_dir / "loss.png"), loss=records[-1]["loss"])
        for name, draw in (plots or {}).items():  # a stage's own curves, e.g. DPO's reward margins
            staged_plot = output_dir / f".tmp-{name}"
            draw(records, staged_plot)
            publish_file(staged_plot, output_dir / name)
            outputs[name.rsplit(".", 1)[0]] = str(output_dir / name)
    publish_outputs(outputs, output_dir)
    return outputs


def main(argv: list[str] | None = None) -> int:
    from tanuki_pipelines.cli_common import torchrun_worker_main

    return torchrun_worker_main("sft", __doc__.splitlines()[0], SFTConfig, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())

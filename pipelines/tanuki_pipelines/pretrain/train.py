"""The per-process training program that torchrun starts (one process per device).

    torchrun --nnodes N --nproc-per-node G --node-rank R --master-addr A --master-port P \
        -m tanuki_pipelines.pretrain.train --config recipe.yaml --output-dir DIR

Restarting the same command resumes from the newest complete checkpoint in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tanuki_common.errors import EXIT_BAD_INPUT, BadInputError
from tanuki_pipelines.outputs import format_progress, publish_outputs
from tanuki_pipelines.preflights import load_checked_recipe
from tanuki_pipelines.pretrain import checkpoint as ckpt
from tanuki_pipelines.pretrain.config import PretrainConfig
from tanuki_pipelines.pretrain.ds_config import deepspeed_config, resolve_precision
from tanuki_pipelines.pretrain.metrics import MetricsLog, mfu, peak_tflops_per_device, plot_loss, read_metrics
from tanuki_pipelines.pretrain.mixture import MixtureSampler
from tanuki_pipelines.pretrain.model import build_model, flops_per_token, llama_config_kwargs
from tanuki_pipelines.pretrain.schedule import learning_rate
from tanuki_pipelines.publish import make_durable, publish_file
from tanuki_pipelines.tokenizer.special import SpecialIds, load_tokenizer, special_ids
from tanuki_pipelines.tokenizer.train import copy_tokenizer_files

CHECKPOINTS_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
LOSS_PLOT_FILE = "loss.png"


@dataclass
class Dist:
    rank: int
    world: int
    local_rank: int
    local_world: int
    device: Any

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(on_gpu: bool) -> Dist:
    import datetime

    import deepspeed
    import torch

    # Rank 0 may train the tokenizer and tokenize the corpus while the others wait in a barrier.
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo",
                               timeout=datetime.timedelta(hours=2))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if on_gpu:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return Dist(
        rank=torch.distributed.get_rank(),
        world=torch.distributed.get_world_size(),
        local_rank=local_rank,
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
        device=device,
    )


def lm_loss(logits: Any, labels: Any, z_loss_coefficient: float) -> tuple[Any, Any, Any]:
    """Cross-entropy plus z-loss (coefficient × mean logZ²); returns (total, ce, z).

    One logsumexp serves both terms (ce = logZ − logit of the label), so the vocabulary-sized
    softmax is computed once forward and once backward instead of twice.
    """
    import torch

    logits = logits.float()
    log_z = torch.logsumexp(logits, dim=-1)
    label_logits = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    ce = (log_z - label_logits).mean()
    z = z_loss_coefficient * log_z.pow(2).mean()
    return ce + z, ce, z


def routed_counts(router_logits: Any, top_k: int) -> Any:
    """Tokens routed to each expert, per layer: (layers, experts) counts of the top-k choices."""
    import torch

    counts = []
    for logits in router_logits:
        chosen = torch.topk(logits.detach().float(), top_k, dim=-1).indices.reshape(-1)
        counts.append(torch.bincount(chosen.cpu(), minlength=logits.shape[-1]).double())
    return torch.stack(counts)


def parameter_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: matrices decay, norms (1-D tensors) do not."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class Trainer:
    def __init__(self, config: PretrainConfig, output_dir: Path) -> None:
        import torch

        self.config = config
        self.output_dir = output_dir
        self.root = output_dir / CHECKPOINTS_DIR
        self.on_gpu = torch.cuda.is_available()
        os.environ.setdefault("DS_ACCELERATOR", "cuda" if self.on_gpu else "cpu")
        self.dist = init_distributed(self.on_gpu)
        self.precision = resolve_precision(config.train, self.on_gpu)

    # ---- setup -------------------------------------------------------------------------
    def setup(self) -> None:
        import torch
        import torch.distributed as dist

        from tanuki_pipelines.pretrain import data, prepare

        if self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_staging(self.root)
            prepare.prepare(self.config, self.output_dir)
        dist.barrier()
        self.tokenizer_dir = prepare.tokenizer_dir(self.config, self.output_dir)
        self.special = special_ids(load_tokenizer(self.tokenizer_dir, "tokenizer.path"))
        self.arrays = data.open_packed(data.current_store(self.output_dir / prepare.DATA_CACHE_DIR),
                                       self.config.data.sources, self.config.train.seq_len)

        train = self.config.train
        self.global_batch = train.micro_batch_size * train.grad_accum_steps * self.dist.world
        self.sampler = MixtureSampler(
            data=self.config.data,
            sizes=[len(array) for array in self.arrays],
            total_steps=train.steps,
            global_batch=self.global_batch,
            seed=train.seed,
        )
        self._build_engine()
        self.start_step = self._resume()
        self.flops_per_token = flops_per_token(self.config.model, train.seq_len)
        device_name = torch.cuda.get_device_name(self.dist.local_rank) if self.on_gpu else None
        self.peak_tflops = peak_tflops_per_device(device_name, train.peak_tflops_per_device,
                                                  self.dist.local_world)

    def _build_engine(self) -> None:
        import deepspeed
        import torch

        train = self.config.train
        ds_config = deepspeed_config(train, self.dist.world, self.on_gpu)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        if train.zero_stage == 3:
            from transformers.integrations import HfDeepSpeedConfig

            # While this object lives, transformers builds the model inside deepspeed.zero.Init
            # (each rank materialises only its shard) and initialises weights shard-aware.
            self._hf_deepspeed_config = HfDeepSpeedConfig(ds_config)
        torch.manual_seed(train.seed)
        if self.config.init_from is not None:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(self.config.init_from, dtype=dtype)
            for key, value in self.special.config_kwargs().items():  # the tokenizer trained with decides
                setattr(model.config, key, value)
        else:
            model = build_model(self.config.model, dtype=dtype, special=self.special)
        model.config.use_cache = False
        if train.activation_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

        def scheduler(optimizer: Any) -> Any:
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: learning_rate(step, train) / train.lr)

        self.engine, _, _, _ = deepspeed.initialize(
            model=model,
            model_parameters=parameter_groups(model, train.weight_decay),
            config=ds_config,
            lr_scheduler=scheduler,
        )

    def _resume(self) -> int:
        latest = ckpt.latest_checkpoint(self.root)
        if latest is None:
            step = 0
        else:
            _, client_state = self.engine.load_checkpoint(
                str(latest / ckpt.DEEPSPEED_DIR), tag=ckpt.DEEPSPEED_TAG,
                load_optimizer_states=True, load_lr_scheduler_states=True)
            step = int(client_state["step"])
            self.sampler.load_state_dict(client_state["sampler"])
            self.log(f"resumed from {latest} at step {step}")
        if self.dist.is_main:
            self.metrics = MetricsLog(self.output_dir / METRICS_FILE, resume_step=step)
        return step

    # ---- loop --------------------------------------------------------------------------
    def log(self, message: str) -> None:
        if self.dist.is_main:
            print(f"[tanuki pretrain] {message}", flush=True)

    def run(self) -> dict[str, Any]:
        from tqdm import tqdm

        train = self.config.train
        bar = tqdm(total=train.steps, initial=self.start_step, desc="pretrain", unit="step",
                   disable=None if self.dist.is_main else True, dynamic_ncols=True)
        last: dict[str, Any] = {}
        for step in range(self.start_step, train.steps):
            record = self.train_step(step)
            last = record
            if self.dist.is_main and (record["step"] % train.log_every == 0 or record["step"] == train.steps):
                self.metrics.write(record)
                if bar.disable:  # logs, not a terminal: a line for people and one for the operator
                    self.log(f"step {record['step']}/{train.steps} loss {record['loss']:.4f} "
                             f"lr {record['lr']:.2e} tok/s {record['tokens_per_s']:.0f}")
                    print(format_progress(record["step"], train.steps, record["tokens"], record["loss"]),
                          flush=True)
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            bar.update(1)
            if record["step"] % self.config.checkpoint.every_steps == 0 or record["step"] == train.steps:
                self.save(record["step"], record)
        bar.close()
        return self.finish(last)

    def train_step(self, step: int) -> dict[str, Any]:
        import numpy as np
        import torch
        import torch.distributed as dist

        train = self.config.train
        started = time.perf_counter()
        batch = self.sampler.step_batch(step)
        micro, world, rank = train.micro_batch_size, self.dist.world, self.dist.rank
        model = self.config.model
        moe = model.num_experts > 1
        ce_total = torch.zeros((), dtype=torch.float64)
        z_total = torch.zeros((), dtype=torch.float64)
        aux_total = torch.zeros((), dtype=torch.float64)
        expert_counts = torch.zeros((model.num_hidden_layers, model.num_experts), dtype=torch.float64)
        for micro_step in range(train.grad_accum_steps):
            first = (micro_step * world + rank) * micro
            rows = batch[first : first + micro]
            tokens = torch.from_numpy(np.stack([self.arrays[s][i] for s, i in rows]).astype(np.int64))
            tokens = tokens.to(self.dist.device)
            if moe:
                output = self.engine(input_ids=tokens[:, :-1], output_router_logits=True)
            else:
                output = self.engine(input_ids=tokens[:, :-1])
            loss, ce, z = lm_loss(output.logits, tokens[:, 1:], train.z_loss)
            if moe:
                loss = loss + train.router_aux_loss * output.aux_loss
                aux_total += output.aux_loss.detach().double().cpu()
                expert_counts += routed_counts(output.router_logits, model.experts_per_token)
            self.engine.backward(loss)
            self.engine.step()
            ce_total += ce.detach().double().cpu()
            z_total += z.detach().double().cpu()
        stats = torch.stack([ce_total, z_total, aux_total]) / train.grad_accum_steps
        dist.all_reduce(stats)
        stats /= world
        if moe:
            dist.all_reduce(expert_counts)
        elapsed = time.perf_counter() - started
        tokens_per_s = self.global_batch * train.seq_len / elapsed
        grad_norm = self.engine.get_global_grad_norm()
        mix = {source.name: 0 for source in self.config.data.sources}
        for source_index, _ in batch:
            mix[self.config.data.sources[source_index].name] += 1
        return {
            "step": step + 1,
            "loss": float(stats[0]),
            "z_loss": float(stats[1]),
            "lr": learning_rate(step, train),
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "tokens": (step + 1) * self.global_batch * train.seq_len,
            "tokens_per_s": tokens_per_s,
            "mfu": mfu(tokens_per_s / world, self.flops_per_token, self.peak_tflops),
            "step_time_s": elapsed,
            "mix": mix,
            **({"aux_loss": float(stats[2]),
                "expert_load": (expert_counts / expert_counts.sum(dim=1, keepdim=True)).round(decimals=4).tolist()}
               if moe else {}),
        }

    # ---- checkpoints -------------------------------------------------------------------
    def full_state_dict(self) -> dict[str, Any] | None:
        """Unsharded weights on rank 0 (every rank must call this under ZeRO-3)."""
        if self.config.train.zero_stage == 3:
            return self.engine._zero3_consolidated_16bit_state_dict()
        if not self.dist.is_main:
            return None
        # copy: DeepSpeed keeps parameters as views into flat buffers, which safetensors refuses
        return {name: tensor.detach().to("cpu", copy=True)
                for name, tensor in self.engine.module.state_dict().items()}

    def save(self, step: int, record: dict[str, Any]) -> None:
        import torch.distributed as dist

        staged = ckpt.staging_dir(self.root, step)
        if self.dist.is_main:
            shutil.rmtree(staged, ignore_errors=True)
            staged.mkdir(parents=True)
        dist.barrier()
        client_state = {"step": step, "sampler": self.sampler.state_dict()}
        self.engine.save_checkpoint(str(staged / ckpt.DEEPSPEED_DIR), tag=ckpt.DEEPSPEED_TAG,
                                    client_state=client_state, save_latest=False)
        state_dict = self.full_state_dict()
        if self.dist.is_main:
            if state_dict is None:  # full_state_dict() gives the main rank the weights
                raise RuntimeError("the main rank got no consolidated weights to export")
            export_hf(state_dict, staged, self.config, self.precision, self.tokenizer_dir, self.special,
                      self.engine.module)
            trainer_state = {**client_state, "loss": record["loss"], "tokens": record["tokens"]}
            (staged / ckpt.TRAINER_STATE_FILE).write_text(json.dumps(trainer_state, indent=2) + "\n")
            final = ckpt.publish(staged, self.root, step, self.config.checkpoint.keep_last)
            self.log(f"checkpoint {final}")
        dist.barrier()

    def finish(self, last: dict[str, Any]) -> dict[str, Any]:
        import torch.distributed as dist

        outputs: dict[str, Any] = {}
        if self.dist.is_main:
            checkpoint = ckpt.latest_checkpoint(self.root)
            records = read_metrics(self.output_dir / METRICS_FILE)
            make_durable(self.output_dir / METRICS_FILE)
            if records:
                staged_plot = self.output_dir / f".tmp-{LOSS_PLOT_FILE}"
                plot_loss(records, staged_plot)
                publish_file(staged_plot, self.output_dir / LOSS_PLOT_FILE)
            if checkpoint is None:  # the last step always saves one
                raise RuntimeError(f"no complete checkpoint under {self.root} at the end of training")
            state = json.loads((checkpoint / ckpt.TRAINER_STATE_FILE).read_text())
            outputs = {
                "checkpoint": str(checkpoint),
                "step": state["step"],
                "tokens": state["tokens"],
                "loss": state["loss"],
                "tokenizer": str(self.tokenizer_dir),
                "metrics": str(self.output_dir / METRICS_FILE),
                "loss_curve": str(self.output_dir / LOSS_PLOT_FILE),
            }
            publish_outputs(outputs, self.output_dir)
            self.log(f"done: checkpoint {checkpoint}")
        dist.barrier()
        return outputs


def export_hf(state_dict: dict[str, Any], directory: Path, config: PretrainConfig, precision: str,
              tokenizer_dir: Path, special: SpecialIds, module: Any = None) -> None:
    """Write an HF checkpoint that stock transformers and vLLM load: config, safetensors, tokenizer."""
    import torch
    from huggingface_hub import save_torch_state_dict
    from transformers import GenerationConfig, LlamaConfig

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    weights = {name: tensor.to(dtype).contiguous() for name, tensor in state_dict.items()}
    GenerationConfig(**special.config_kwargs()).save_pretrained(directory)
    if config.model.num_experts > 1:
        # transformers keeps experts fused in memory; save_pretrained writes Mixtral's per-expert
        # w1/w2/w3 keys, the layout vLLM loads.
        module.config.dtype = dtype
        module.save_pretrained(directory, state_dict=weights, safe_serialization=True, max_shard_size="5GB")
    else:
        hf_config = LlamaConfig(**llama_config_kwargs(config.model, special))
        hf_config.architectures = ["LlamaForCausalLM"]
        hf_config.dtype = dtype
        hf_config.save_pretrained(directory)
        if config.model.tie_word_embeddings:
            weights.pop("lm_head.weight", None)
        save_torch_state_dict(weights, directory, max_shard_size="5GB")
    # only the tokenizer's own files: the tokenizer may live in a checkpoint (e.g. init_from's)
    copy_tokenizer_files(tokenizer_dir, directory)


def cleanup_shared_memory(rank: int) -> None:
    """Remove this rank's DeepSpeed CPU all-reduce buffer (~66 MB in /dev/shm)."""
    address, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    buffer = Path("/dev/shm") / f"deepspeed_allreduce_buffer_{os.getuid()}_{address}_{port}_{rank}"
    buffer.unlink(missing_ok=True)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tanuki_pipelines.pretrain.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--output-dir", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        config = load_checked_recipe(PretrainConfig, args.config, args.set)
        trainer = Trainer(config, args.output_dir.resolve())
    except BadInputError as exc:
        print(f"tanuki pretrain: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        trainer.setup()
        trainer.run()
    except BadInputError as exc:
        print(f"tanuki pretrain: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        cleanup_shared_memory(trainer.dist.rank)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Recipe → DeepSpeed config dict (pure: no deepspeed import)."""

from __future__ import annotations

from typing import Any

from tanuki_pipelines.pretrain.config import TrainConfig


def resolve_precision(train: TrainConfig, on_gpu: bool) -> str:
    """``auto`` means bf16 on GPU and fp32 on CPU (bf16 is ~8× slower on CPUs without AVX512-BF16)."""
    if train.precision == "auto":
        return "bf16" if on_gpu else "fp32"
    return train.precision


def deepspeed_config(train: TrainConfig, world_size: int, on_gpu: bool) -> dict[str, Any]:
    """The DeepSpeed engine config. The LR schedule is ours (a LambdaLR), not DeepSpeed's."""
    precision = resolve_precision(train, on_gpu)
    # ZeRO-1/2 shard optimizer state and gradients across ranks; alone, a rank would only pay for
    # the flat-buffer copies and the reduction hooks (about 7% of a debug-model step here).
    stage = 0 if world_size == 1 and train.zero_stage in (1, 2) else train.zero_stage
    zero: dict[str, Any] = {"stage": stage}
    if stage >= 2:
        zero.update({"overlap_comm": on_gpu, "contiguous_gradients": True})
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": train.micro_batch_size,
        "gradient_accumulation_steps": train.grad_accum_steps,
        "train_batch_size": train.micro_batch_size * train.grad_accum_steps * world_size,
        "gradient_clipping": train.grad_clip,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": train.lr,
                "betas": list(train.betas),
                "eps": train.eps,
                "weight_decay": train.weight_decay,
                # torch's own fused AdamW (CPU and CUDA kernels): no JIT build of DeepSpeed's
                # FusedAdam (minutes on CPU), and faster than the default per-tensor loop.
                "torch_adam": True,
                "fused": True,
            },
        },
        "bf16": {"enabled": precision == "bf16"},
        "zero_optimization": zero,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }

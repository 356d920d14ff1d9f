from __future__ import annotations

from tanuki_pipelines.pretrain.config import TrainConfig
from tanuki_pipelines.pretrain.ds_config import deepspeed_config


def test_cpu_config_is_fp32_with_torch_adamw() -> None:
    train = TrainConfig(steps=10, micro_batch_size=4, grad_accum_steps=2, zero_stage=3, grad_clip=0.5)
    config = deepspeed_config(train, world_size=2, on_gpu=False)
    assert config["train_batch_size"] == 16
    assert config["bf16"] == {"enabled": False}
    assert config["zero_optimization"]["stage"] == 3
    assert config["gradient_clipping"] == 0.5
    assert config["optimizer"]["type"] == "AdamW"
    assert config["optimizer"]["params"]["torch_adam"] is True
    assert config["optimizer"]["params"]["fused"] is True
    assert config["optimizer"]["params"]["betas"] == [0.9, 0.95]
    assert "scheduler" not in config  # the LR schedule is ours


def test_gpu_auto_precision_is_bf16() -> None:
    config = deepspeed_config(TrainConfig(steps=1, zero_stage=1), world_size=8, on_gpu=True)
    assert config["bf16"] == {"enabled": True}
    assert config["zero_optimization"] == {"stage": 1}


def test_a_single_rank_skips_zero_1_and_2_but_keeps_3() -> None:
    for stage, expected in ((1, 0), (2, 0), (3, 3)):
        config = deepspeed_config(TrainConfig(steps=1, zero_stage=stage), world_size=1, on_gpu=False)
        assert config["zero_optimization"]["stage"] == expected
    assert deepspeed_config(TrainConfig(steps=1, zero_stage=2), world_size=2, on_gpu=False)[
        "zero_optimization"]["stage"] == 2

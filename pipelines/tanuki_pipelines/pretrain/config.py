"""Recipe model of the pretraining stage (pydantic only: importable without torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tanuki_pipelines.config import ConfigModel, DataSource, InputPath
from tanuki_pipelines.tokenizer.config import TokenizerConfig

# Named model shapes. ``tanuki-8b`` is the Tanuki-8B architecture (~7.5B parameters).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # head_dim 32: the smallest vLLM's CPU attention kernels serve, so the debug model is servable
    "debug": {
        "vocab_size": 4096,
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
    },
    "1b": {
        "vocab_size": 65024,
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "max_position_embeddings": 4096,
    },
    "tanuki-8b": {
        "vocab_size": 65024,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 4096,
    },
}
# Tanuki-8x8B: Tanuki-8B's shape with every FFN upcycled into 8 experts, top-2 (~47B / ~13B active).
MODEL_PRESETS["tanuki-8x8b"] = {**MODEL_PRESETS["tanuki-8b"], "num_experts": 8, "experts_per_token": 2}


class ModelConfig(ConfigModel):
    """Shape of the Llama-style decoder. Fields left out come from ``preset``."""

    preset: Literal["debug", "1b", "tanuki-8b", "tanuki-8x8b"] | None = None
    """Named shape to start from; explicit fields below override it."""
    vocab_size: int = Field(default=65024, ge=8)
    """Embedding rows: the tokenizer's vocabulary padded up (Tanuki: 65,000 → 65,024)."""
    hidden_size: int = Field(default=4096, ge=8)
    """Width of the residual stream."""
    intermediate_size: int = Field(default=14336, ge=8)
    """Width of the SwiGLU feed-forward layer."""
    num_hidden_layers: int = Field(default=32, ge=1)
    """Number of decoder blocks."""
    num_attention_heads: int = Field(default=32, ge=1)
    """Query heads; must divide hidden_size."""
    num_key_value_heads: int = Field(default=8, ge=1)
    """Key/value heads (grouped-query attention); must divide num_attention_heads."""
    max_position_embeddings: int = Field(default=4096, ge=16)
    """Longest context the RoPE tables are built for."""
    rms_norm_eps: float = Field(default=1e-5, gt=0)
    """Epsilon of the RMSNorm layers."""
    rope_theta: float = Field(default=10000.0, gt=0)
    """RoPE base frequency."""
    tie_word_embeddings: bool = False
    """Share input embedding and output head (Tanuki: untied)."""
    initializer_range: float = Field(default=0.02, gt=0)
    """Standard deviation of the normal weight initialisation."""
    num_experts: int = Field(default=1, ge=1)
    """FFN experts per layer (1: dense Llama; more: Mixtral-style MoE, made by ``tanuki upcycle``)."""
    experts_per_token: int = Field(default=2, ge=1)
    """Experts each token is routed to (MoE only)."""

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in MODEL_PRESETS:
            return {**MODEL_PRESETS[data["preset"]], **data}
        return data

    @model_validator(mode="after")
    def _check_shape(self) -> ModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must divide "
                f"hidden_size ({self.hidden_size})"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_key_value_heads ({self.num_key_value_heads}) must divide "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.num_experts > 1 and self.experts_per_token > self.num_experts:
            raise ValueError(f"experts_per_token ({self.experts_per_token}) exceeds num_experts ({self.num_experts})")
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("hidden_size / num_attention_heads (head dim) must be even for RoPE")
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


class TrainConfig(ConfigModel):
    """Optimisation schedule and DeepSpeed settings."""

    steps: int = Field(ge=1)
    """Optimizer steps in the whole run (the cosine schedule and data phases span these)."""
    seq_len: int = Field(default=2048, ge=8)
    """Tokens per packed training sequence."""
    micro_batch_size: int = Field(default=1, ge=1)
    """Sequences per process per forward pass."""
    grad_accum_steps: int = Field(default=1, ge=1)
    """Micro-batches accumulated into one optimizer step."""
    lr: float = Field(default=3e-4, gt=0)
    """Peak learning rate reached after warmup."""
    min_lr: float = Field(default=3e-5, ge=0)
    """Learning rate at the end of the cosine decay."""
    warmup_steps: int = Field(default=0, ge=0)
    """Linear warmup steps from lr/warmup_steps up to lr."""
    weight_decay: float = Field(default=0.1, ge=0)
    """AdamW decoupled weight decay (not applied to norms)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW β1, β2."""
    eps: float = Field(default=1e-8, gt=0)
    """AdamW epsilon."""
    grad_clip: float = Field(default=1.0, ge=0)
    """Global gradient-norm clipping threshold (0 disables)."""
    z_loss: float = Field(default=1e-4, ge=0)
    """Coefficient of the z-loss (coefficient × logsumexp(logits)²); 0 disables it."""
    router_aux_loss: float = Field(default=0.02, ge=0)
    """MoE only: coefficient of the router load-balancing loss (Tanuki-8x8B: 0.02)."""
    zero_stage: Literal[0, 1, 2, 3] = 2
    """DeepSpeed ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also parameters."""
    activation_checkpointing: bool = False
    """Recompute each decoder block's activations in the backward pass (less memory, ~30% slower)."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """``auto``: bf16 on GPU, fp32 on CPU (CPUs here lack bf16 instructions)."""
    seed: int = 0
    """Seeds model initialisation and the data order."""
    log_every: int = Field(default=1, ge=1)
    """Write a metrics.jsonl record every this many steps."""
    peak_tflops_per_device: float | None = Field(default=None, gt=0)
    """Peak dense TFLOP/s of one device for the MFU estimate; None: look it up or estimate."""

    @model_validator(mode="after")
    def _check_schedule(self) -> TrainConfig:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) exceeds steps ({self.steps})")
        return self


class Phase(ConfigModel):
    """Mixing weights at one point of the run; weights are interpolated linearly between phases."""

    at: float = Field(ge=0, le=1)
    """Position as a fraction of the run's tokens (0.8 = after 80% of tokens)."""
    weights: dict[str, float]
    """Source name → relative weight (normalised). Sources left out get weight 0."""


class DataConfig(ConfigModel):
    """Pretraining corpora and how they are mixed over the run."""

    sources: list[DataSource] = Field(min_length=1)
    """Corpora, tokenized and packed into ``train.seq_len``-token sequences."""
    store: InputPath | None = None
    """A finished token store (what ``tanuki tokenize`` or a TokenizeJob wrote): each source is read
    from it by name and its ``path`` is not used. Empty: the run builds the store of the sources'
    files itself, into ``<output-dir>/data/store-<digest>``."""
    phases: list[Phase] = Field(default_factory=list)
    """Weight keyframes over the run (e.g. synthetic share 0 until 0.8, then ramping up).
    Empty: every source's own ``weight`` throughout."""

    @model_validator(mode="after")
    def _check_mixture(self) -> DataConfig:
        names = [source.name for source in self.sources]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"sources: duplicate names {duplicates}")
        positions = [phase.at for phase in self.phases]
        if positions != sorted(positions):
            raise ValueError("phases: 'at' must be in increasing order")
        for index, phase in enumerate(self.phases):
            unknown = sorted(set(phase.weights) - set(names))
            if unknown:
                raise ValueError(f"phases.{index}.weights: unknown sources {unknown}; known: {names}")
            if any(weight < 0 for weight in phase.weights.values()) or sum(phase.weights.values()) <= 0:
                raise ValueError(f"phases.{index}.weights: need non-negative weights with a positive sum")
        if not self.phases and sum(source.weight for source in self.sources) <= 0:
            raise ValueError("sources: at least one source needs a positive weight")
        return self


class CheckpointConfig(ConfigModel):
    """When checkpoints are written and how many are kept."""

    every_steps: int = Field(default=1000, ge=1)
    """Save every this many optimizer steps (and always at the last step)."""
    keep_last: int = Field(default=3, ge=1)
    """Complete checkpoints kept on disk; older ones are deleted after a newer one is published."""


NO_TOKENIZER = "tokenizer: set tokenizer.path or tokenizer.train (or data.store, whose copy of its tokenizer is used)"


class TokenizerSource(ConfigModel):
    """Where the tokenizer comes from: an existing HF tokenizer directory, or a recipe to train one
    into ``<output-dir>/tokenizer`` before pretraining (once; a resumed run reuses it). Neither: the
    copy in ``data.store`` (the tokenizer its ids come from)."""

    path: InputPath | None = None
    """An HF tokenizer directory: one ``tanuki tokenizer`` wrote, or any other (an existing LLM's);
    its special tokens (eos between documents, bos/pad in the exported config) are read from it."""
    train: TokenizerConfig | None = None
    """Tokenizer recipe trained as the first step of this job."""

    @model_validator(mode="after")
    def _at_most_one(self) -> TokenizerSource:
        if self.path is not None and self.train is not None:
            raise ValueError("set only one of tokenizer.path and tokenizer.train")
        return self


class PretrainConfig(ConfigModel):
    """A pretraining recipe: model shape, optimisation, data mixture, checkpoints, tokenizer."""

    tokenizer: TokenizerSource = Field(default_factory=TokenizerSource)
    """The tokenizer (copied into every checkpoint so the export is self-contained)."""
    model: ModelConfig
    """Decoder shape."""
    train: TrainConfig
    """Optimisation and DeepSpeed settings."""
    data: DataConfig
    """Corpora and mixture phases."""
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    """Checkpoint cadence and retention."""
    init_from: InputPath | None = None
    """Start from this HF checkpoint's weights (e.g. an upcycled MoE) instead of a random init;
    its config.json must describe the same shape as ``model``."""

    @model_validator(mode="after")
    def _check_context(self) -> PretrainConfig:
        if self.train.seq_len > self.model.max_position_embeddings:
            raise ValueError(
                f"train.seq_len ({self.train.seq_len}) exceeds "
                f"model.max_position_embeddings ({self.model.max_position_embeddings})"
            )
        return self

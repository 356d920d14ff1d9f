"""Dense HF Llama checkpoint → HF Mixtral checkpoint, one safetensors shard at a time.

Every expert of layer i starts as a copy of layer i's dense FFN (gate → w1, down → w2, up → w3)
plus Gaussian noise; each layer gets a new router (``block_sparse_moe.gate``). Everything else
is copied. Keys use Mixtral's original layout, which stock transformers and stock vLLM both load.

Memory stays near one shard: input tensors are read one at a time with plain file reads (a
memory map would keep a whole shard's pages resident), output shards hold at most half the
largest input shard (safetensors serialises a shard through one more in-memory copy), and freed
memory goes back to the OS after every output shard.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tanuki_pipelines.errors import BadInputError
from tanuki_pipelines.tokenizer.train import copy_tokenizer_files
from tanuki_pipelines.upcycle.config import UpcycleConfig

FFN_KEY = re.compile(r"^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight$")
EXPERT_NAMES = {"gate": "w1", "down": "w2", "up": "w3"}
INDEX_FILE = "model.safetensors.index.json"


def parse_size(text: str) -> int:
    """``"5GB"`` → bytes (decimal units, as transformers' max_shard_size)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B)\s*", text.upper())
    if not match:
        raise BadInputError(f"max_shard_size: expected e.g. 5GB or 500MB, got {text!r}")
    return int(float(match.group(1)) * {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}[match.group(2)])


def mixtral_config(dense: dict[str, Any], config: UpcycleConfig) -> dict[str, Any]:
    """The Mixtral config.json for a Llama config.json (pure)."""
    if dense.get("model_type") != "llama":
        raise BadInputError(f"source: expected a Llama checkpoint, config.json has model_type "
                            f"{dense.get('model_type')!r}")
    keep = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_parameters",
            "rope_theta", "tie_word_embeddings", "initializer_range", "hidden_act", "bos_token_id",
            "eos_token_id", "pad_token_id", "dtype", "torch_dtype", "attention_dropout"]
    result = {key: dense[key] for key in keep if key in dense}
    gate_norm = config.gate_norm.enabled
    result.update({
        # TanukiMoe (tanuki_serving.plugin) = Mixtral + gate-logit normalisation, same weight layout
        "architectures": ["TanukiMoeForCausalLM" if gate_norm else "MixtralForCausalLM"],
        "model_type": "tanuki_moe" if gate_norm else "mixtral",
        **({"gate_norm_scale": config.gate_norm.scale} if gate_norm else {}),
        "num_local_experts": config.num_experts,
        "num_experts_per_tok": config.top_k,
        "router_aux_loss_coef": config.router_aux_loss_coef,
        "output_router_logits": False,
        "sliding_window": None,
    })
    return result


def input_shards(source: Path) -> list[Path]:
    index = source / INDEX_FILE
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [source / name for name in names]
    single = source / "model.safetensors"
    if not single.is_file():
        raise BadInputError(f"source: no model.safetensors or {INDEX_FILE} in {source}")
    return [single]


SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                      "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def read_tensors(path: Path) -> Iterator[tuple[str, Any]]:
    """Tensors of a safetensors file in layer order, each read into its own buffer."""
    import torch

    with path.open("rb") as handle:
        (header_size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_size))
        header.pop("__metadata__", None)
        for name in sorted(header, key=_layer_order):
            entry = header[name]
            begin, end = entry["data_offsets"]
            handle.seek(8 + header_size + begin)
            data = bytearray(handle.read(end - begin))
            dtype = getattr(torch, SAFETENSORS_DTYPES[entry["dtype"]])
            tensor = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
            yield name, tensor.reshape(entry["shape"])


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return None


def map_large_allocations() -> None:
    """Serve every allocation over 256 KiB by its own mmap, returned to the OS when freed.

    glibc otherwise raises its mmap threshold after the first large free and carves later
    tensors out of the heap, whose holes between still-live tensors it cannot give back.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def upcycled_tensors(name: str, tensor: Any, config: UpcycleConfig, generator: Any) -> Iterator[tuple[str, Any]]:
    """The output tensors one input tensor becomes (the router right after a layer's gate_proj)."""
    import torch

    match = FFN_KEY.match(name)
    if match is None:
        yield name, tensor
        return
    layer, projection = match.groups()
    prefix = f"model.layers.{layer}.block_sparse_moe"
    for expert in range(config.num_experts):
        copy = tensor.clone()
        if config.noise_std:
            noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32) * config.noise_std
            copy = (copy.float() + noise).to(tensor.dtype)
        yield f"{prefix}.experts.{expert}.{EXPERT_NAMES[projection]}.weight", copy
    if projection == "gate":
        hidden = tensor.shape[1]
        if config.router_init.type == "zeros":
            router = torch.zeros(config.num_experts, hidden, dtype=tensor.dtype)
        else:
            router = (torch.randn(config.num_experts, hidden, generator=generator, dtype=torch.float32)
                      * config.router_init.std).to(tensor.dtype)
        yield f"{prefix}.gate.weight", router


class ShardWriter:
    """Accumulates tensors and writes ``model-0000N.safetensors`` files of bounded size."""

    def __init__(self, out_dir: Path, max_bytes: int) -> None:
        self.out_dir, self.max_bytes = out_dir, max_bytes
        self.buffer: dict[str, Any] = {}
        self.buffered = 0
        self.files: list[tuple[str, list[str]]] = []
        self.total = 0

    def add(self, name: str, tensor: Any) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.buffer and self.buffered + size > self.max_bytes:
            self.flush()
        self.buffer[name] = tensor.contiguous()
        self.buffered += size
        self.total += size

    def flush(self) -> None:
        from safetensors.torch import save_file

        if not self.buffer:
            return
        name = f"model-{len(self.files) + 1:05d}.safetensors"
        save_file(self.buffer, str(self.out_dir / name), metadata={"format": "pt"})
        self.files.append((name, list(self.buffer)))
        self.buffer, self.buffered = {}, 0
        release_free_memory()

    def finish(self) -> dict[str, Any]:
        """Flush, then name the shards ``-of-N`` and write the index; returns the index."""
        self.flush()
        count = len(self.files)
        weight_map = {}
        for number, (name, keys) in enumerate(self.files, start=1):
            final = f"model-{number:05d}-of-{count:05d}.safetensors"
            (self.out_dir / name).rename(self.out_dir / final)
            weight_map.update({key: final for key in keys})
        index = {"metadata": {"total_size": self.total}, "weight_map": dict(sorted(weight_map.items()))}
        (self.out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        return index


def upcycle(config: UpcycleConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Convert ``config.source`` into ``out_dir`` (written under a temp name, then renamed)."""
    import torch
    from tqdm import tqdm

    source = config.source
    if source is None or not (source / "config.json").is_file():
        raise BadInputError(f"source: no HF checkpoint (config.json) at {source}")
    dense = json.loads((source / "config.json").read_text())
    moe_config = mixtral_config(dense, config)
    shards = input_shards(source)
    max_bytes = min(parse_size(config.max_shard_size), max(path.stat().st_size for path in shards) // 2)
    out_dir = out_dir.resolve()
    staged = out_dir.with_name(f".tmp-{out_dir.name}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    map_large_allocations()
    generator = torch.Generator().manual_seed(config.seed)
    writer = ShardWriter(staged, max_bytes)
    with tqdm(total=len(shards), desc="upcycle", unit="shard", disable=None if progress else True) as bar:
        for shard in shards:
            for key, tensor in read_tensors(shard):
                for name, produced in upcycled_tensors(key, tensor, config, generator):
                    writer.add(name, produced)
            bar.update(1)
    index = writer.finish()
    (staged / "config.json").write_text(json.dumps(moe_config, indent=2) + "\n")
    copy_tokenizer_files(source, staged)  # the tokenizer and generation config travel along
    if (source / "generation_config.json").is_file():
        shutil.copyfile(source / "generation_config.json", staged / "generation_config.json")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staged.rename(out_dir)
    return {"checkpoint": str(out_dir), "architecture": moe_config["architectures"][0],
            "num_experts": config.num_experts, "top_k": config.top_k,
            "total_bytes": index["metadata"]["total_size"], "shards": len(set(index["weight_map"].values()))}


def _layer_order(key: str) -> tuple[int, str]:
    match = re.match(r"^model\.layers\.(\d+)\.", key)
    return (int(match.group(1)) if match else -1, key)

"""Dense HF Llama checkpoint → HF Mixtral checkpoint, one safetensors shard at a time.

Every expert of layer i starts as a copy of layer i's dense FFN (gate → w1, down → w2, up → w3)
plus Gaussian noise; each layer gets a new router (``block_sparse_moe.gate``). Everything else
is copied. Keys use Mixtral's original layout, which stock transformers and stock vLLM both load.

The output is published durably (``tanuki_pipelines.publish``): shards are written into
``.tmp-<dir>`` and fsynced one by one as they are written, then the directory is renamed into
place, so a crash leaves either no checkpoint or a complete one.

Memory stays near one shard: input tensors are read one at a time with plain file reads (a
memory map would keep a whole shard's pages resident), output shards hold at most half the
largest input shard (safetensors serialises a shard through one more in-memory copy), and freed
memory goes back to the OS after every output shard.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.publish import fault_point, fsync_file, staging
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


@dataclass
class Timings:
    """Where an upcycle's wall time went (seconds)."""

    read: float = 0.0
    """Reading the dense shards."""
    noise: float = 0.0
    """Generating the experts' noise and the routers (seeded Gaussian draws)."""
    write: float = 0.0
    """Serialising and writing the output shards, each fsynced."""


NOISE_CHUNK = 1 << 18
"""Elements per independently seeded noise chunk: fixed, so the output does not depend on threads."""


def _chunk_seed(seed: int, name: str, expert: int, chunk: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{name}/{expert}/{chunk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def noisy_copy(tensor: Any, std: float, seed: int, name: str, expert: int, pool: Any) -> Any:
    """``tensor + N(0, std²)`` in float32, as ``tensor``'s dtype. The noise is drawn in fixed-size
    chunks, each from its own generator seeded by (seed, tensor name, expert, chunk), filled in
    place and in parallel: the same seed gives the same bytes on any number of threads."""
    import torch

    out = torch.empty(tensor.shape, dtype=torch.float32)
    flat, source = out.view(-1), tensor.reshape(-1)

    def fill(chunk: int) -> None:
        part = flat[chunk * NOISE_CHUNK:(chunk + 1) * NOISE_CHUNK]
        generator = torch.Generator().manual_seed(_chunk_seed(seed, name, expert, chunk))
        part.normal_(0.0, std, generator=generator)
        part.add_(source[chunk * NOISE_CHUNK:(chunk + 1) * NOISE_CHUNK])

    list(pool.map(fill, range((flat.numel() + NOISE_CHUNK - 1) // NOISE_CHUNK)))
    return out if tensor.dtype == torch.float32 else out.to(tensor.dtype)


def upcycled_tensors(name: str, tensor: Any, config: UpcycleConfig, pool: Any,
                     timings: Timings | None = None) -> Iterator[tuple[str, Any]]:
    """The output tensors one input tensor becomes (the router right after a layer's gate_proj)."""
    import torch

    timings = timings or Timings()
    match = FFN_KEY.match(name)
    if match is None:
        yield name, tensor
        return
    layer, projection = match.groups()
    prefix = f"model.layers.{layer}.block_sparse_moe"
    for expert in range(config.num_experts):
        started = time.perf_counter()
        copy = noisy_copy(tensor, config.noise_std, config.seed, name, expert, pool) if config.noise_std \
            else tensor.clone()
        timings.noise += time.perf_counter() - started
        yield f"{prefix}.experts.{expert}.{EXPERT_NAMES[projection]}.weight", copy
    if projection == "gate":
        started = time.perf_counter()
        hidden = tensor.shape[1]
        if config.router_init.type == "zeros":
            router = torch.zeros(config.num_experts, hidden, dtype=tensor.dtype)
        else:
            generator = torch.Generator().manual_seed(_chunk_seed(config.seed, f"{prefix}.gate", -1, 0))
            router = (torch.randn(config.num_experts, hidden, generator=generator, dtype=torch.float32)
                      * config.router_init.std).to(tensor.dtype)
        timings.noise += time.perf_counter() - started
        yield f"{prefix}.gate.weight", router


class ShardWriter:
    """Accumulates tensors and writes ``model-0000N.safetensors`` files of bounded size.

    A full shard is serialised, written and fsynced on a background thread while the next one is
    being generated (at most one shard in flight, so memory stays near two shards' worth)."""

    def __init__(self, out_dir: Path, max_bytes: int, timings: Timings | None = None, label: str = "checkpoint") -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.out_dir, self.max_bytes = out_dir, max_bytes
        self.timings, self.label = timings or Timings(), label
        self.buffer: dict[str, Any] = {}
        self.buffered = 0
        self.files: list[tuple[str, list[str]]] = []
        self.total = 0
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer")
        self._pending: Any = None

    def add(self, name: str, tensor: Any) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.buffer and self.buffered + size > self.max_bytes:
            self.flush()
        self.buffer[name] = tensor.contiguous()
        self.buffered += size
        self.total += size

    def _write(self, name: str, tensors: dict[str, Any], number: int) -> None:
        from safetensors.torch import save_file

        started = time.perf_counter()
        save_file(tensors, str(self.out_dir / name), metadata={"format": "pt"})
        fsync_file(self.out_dir / name)  # now, not all at the end: dirty pages stay one shard's worth
        self.timings.write += time.perf_counter() - started
        fault_point(f"{self.label}:shard-{number}")

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()  # a write error surfaces here
            self._pending = None
            release_free_memory()

    def flush(self) -> None:
        if not self.buffer:
            return
        self._wait()
        number = len(self.files) + 1
        name = f"model-{number:05d}.safetensors"
        self._pending = self._io.submit(self._write, name, self.buffer, number)
        self.files.append((name, list(self.buffer)))
        self.buffer, self.buffered = {}, 0

    def finish(self) -> dict[str, Any]:
        """Flush, then name the shards ``-of-N`` and write the index; returns the index."""
        self.flush()
        self._wait()
        self._io.shutdown()
        count = len(self.files)
        weight_map = {}
        for number, (name, keys) in enumerate(self.files, start=1):
            final = f"model-{number:05d}-of-{count:05d}.safetensors"
            (self.out_dir / name).rename(self.out_dir / final)
            weight_map.update({key: final for key in keys})
        index = {"metadata": {"total_size": self.total}, "weight_map": dict(sorted(weight_map.items()))}
        (self.out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        return index


def output_shard_bytes(config: UpcycleConfig, shards: list[Path]) -> int:
    """The most bytes of one output shard: the recipe's limit, and at most half the largest input
    shard, so the writer's shard in flight plus the one being filled stay near one input's size."""
    return min(parse_size(config.max_shard_size), max(path.stat().st_size for path in shards) // 2)


def upcycle(config: UpcycleConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Convert ``config.source`` into ``out_dir`` (written under a temp name, then renamed)."""
    from tqdm import tqdm

    source = config.source
    if source is None or not (source / "config.json").is_file():
        raise BadInputError(f"source: no HF checkpoint (config.json) at {source}")
    dense = json.loads((source / "config.json").read_text())
    moe_config = mixtral_config(dense, config)
    shards = input_shards(source)
    max_bytes = output_shard_bytes(config, shards)
    out_dir = out_dir.resolve()
    map_large_allocations()
    timings = Timings()
    pool = ThreadPoolExecutor(max_workers=max(1, len(os.sched_getaffinity(0))), thread_name_prefix="noise")
    with pool, staging(out_dir, label=out_dir.name) as staged:
        writer = ShardWriter(staged, max_bytes, timings, label=out_dir.name)
        with tqdm(total=len(shards), desc="upcycle", unit="shard", disable=None if progress else True) as bar:
            for shard in shards:
                tensors = read_tensors(shard)
                while True:
                    started = time.perf_counter()
                    item = next(tensors, None)
                    timings.read += time.perf_counter() - started
                    if item is None:
                        break
                    for name, produced in upcycled_tensors(*item, config, pool, timings):
                        writer.add(name, produced)
                bar.update(1)
        index = writer.finish()
        (staged / "config.json").write_text(json.dumps(moe_config, indent=2) + "\n")
        copy_tokenizer_files(source, staged)  # the tokenizer and generation config travel along
        if (source / "generation_config.json").is_file():
            shutil.copyfile(source / "generation_config.json", staged / "generation_config.json")
    return {"checkpoint": str(out_dir), "architecture": moe_config["architectures"][0],
            "num_experts": config.num_experts, "top_k": config.top_k,
            "total_bytes": index["metadata"]["total_size"], "shards": len(set(index["weight_map"].values())),
            "seconds": {key: round(value, 3) for key, value in asdict(timings).items()}}


def _layer_order(key: str) -> tuple[int, str]:
    match = re.match(r"^model\.layers\.(\d+)\.", key)
    return (int(match.group(1)) if match else -1, key)

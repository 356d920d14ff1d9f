"""What every stage checks before it starts work: its inputs exist and are what their field says,
and the engine it will start can run the model on the hardware it has.

A stage's preflight (``<stage>/preflight.py``) reads only small things (``config.json``, the
tokenizer file, the first records of a JSONL) and collects every problem it finds, so a user mends
them all at once; the program raises them as one ``BadInputError`` (exit 2: terminal in a pod)
before it loads a model, starts an engine or trains. ``tanuki check`` runs the same preflights on a
chain's resources; there a path that is not here (a volume of the cluster) is *unknown*, not a problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tanuki_common.errors import BadInputError

if TYPE_CHECKING:
    from tanuki_pipelines.config import DataSource

FIRST_RECORDS = 8
"""How many records of a JSONL input are read to tell whether it is the kind the field needs."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
NOT_JSON = object()
"""What ``_first_records`` yields for a line that does not parse."""


@dataclass(frozen=True)
class Hardware:
    """What the stage's pod has: judged from ``spec.resources`` by ``tanuki check``, from the
    machine by the program."""

    gpus: int = 0
    """Accelerators it may use (0: the CPU backend)."""
    cpu_flags: frozenset[str] | None = None
    """The CPU's instruction-set flags (``/proc/cpuinfo``) on x86; None where not known (a cluster
    node seen from ``tanuki check``) or not x86."""

    @staticmethod
    def here() -> Hardware:
        import platform

        import torch

        flags = None
        if platform.machine() in ("x86_64", "AMD64"):
            try:
                line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
                flags = frozenset(line.split(":", 1)[1].split())
            except (OSError, StopIteration):
                flags = None
        return Hardware(gpus=torch.cuda.device_count() if torch.cuda.is_available() else 0, cpu_flags=flags)


@dataclass
class Preflight:
    """The findings of one stage's preflight."""

    hardware: Hardware = field(default_factory=Hardware)
    paths_here: bool = True
    """The stage's paths are on this machine: a missing one is a problem. False in ``tanuki check``
    of a cluster chain, where a path not found here may be on a volume this machine does not mount."""
    problems: list[str] = field(default_factory=list)
    """``field: what is wrong (and what would work)``, one per problem."""
    unknown: list[str] = field(default_factory=list)
    """Checks that could not be made here (``tanuki check``)."""

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def not_here(self, path: Path) -> None:
        text = f"{path} is not on this machine"
        if text not in self.unknown:
            self.unknown.append(text)

    def raise_problems(self) -> None:
        if self.problems:
            raise BadInputError("; ".join(self.problems))

    # -- paths -------------------------------------------------------------------------------------

    def present(self, name: str, path: Path | None, what: str) -> bool:
        """``path`` exists; else a problem (or an unknown) naming the field."""
        if path is None:
            self.problem(f"{name}: not set ({what} is needed)")
            return False
        if path.exists():
            return True
        if self.paths_here:
            self.problem(f"{name}: no such file or directory: {path} ({what} is needed)")
        else:
            self.not_here(path)
        return False

    def checkpoint(self, name: str, path: Path | None) -> dict[str, Any] | None:
        """The ``config.json`` of the HF checkpoint directory at ``path``, or None after a problem."""
        if not self.present(name, path, "an HF checkpoint directory"):
            return None
        assert path is not None
        if not path.is_dir():
            self.problem(f"{name}: {path} is a file, not an HF checkpoint directory (with config.json)")
            return None
        config = _json_object(path / "config.json")
        if config is None:
            self.problem(f"{name}: {path} has no readable config.json (not an HF checkpoint directory)")
            return None
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            self.problem(f"{name}: {path} has config.json but no weights (*.safetensors)")
        return config

    def tokenizer_size(self, name: str, path: Path | None) -> int | None:
        """The ids the tokenizer at ``path`` uses (the highest id + 1, added tokens included)."""
        if not self.present(name, path, "a tokenizer directory"):
            return None
        assert path is not None
        if not path.is_dir() or not any((path / file).is_file() for file in TOKENIZER_FILES):
            self.problem(f"{name}: no tokenizer in {path} (expected {' or '.join(TOKENIZER_FILES)})")
            return None
        if not (path / "tokenizer.json").is_file():
            return None  # a SentencePiece model alone: its size is known once transformers converts it
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:  # the Rust library raises its own Exception type
            self.problem(f"{name}: {path / 'tokenizer.json'} is not a readable tokenizer: {exc}")
            return None
        ids = list(tokenizer.get_vocab(with_added_tokens=True).values())
        return max(ids) + 1 if ids else 0

    def chat_template(self, name: str, path: Path) -> None:
        """The tokenizer in the checkpoint at ``path`` can format conversations and end answers."""
        settings = _json_object(path / "tokenizer_config.json")
        if settings is None:
            return  # no tokenizer_config.json: tokenizer_size names what is missing
        if not settings.get("chat_template") and not (path / "chat_template.jinja").is_file():
            self.problem(f"{name}: the tokenizer in {path} has no chat template (tokenizer_config.json "
                         "chat_template or chat_template.jinja); train from a chat-ready tokenizer")
        if not settings.get("eos_token"):
            self.problem(f"{name}: the tokenizer in {path} has no eos_token; every answer ends with it")

    def records(self, name: str, path: Path | None, what: str,
                problem_of: Callable[[dict[str, Any]], str | None], compression: str | None = None) -> None:
        """The first records of the JSONL file at ``path`` include a usable one (``problem_of`` says
        why a record is not); all unusable means the file is not what ``name`` takes."""
        if not self.present(name, path, f"a JSONL file of {what}"):
            return
        assert path is not None
        if path.is_dir():
            self.problem(f"{name}: {path} is a directory; a JSONL file of {what} is needed")
            return
        first: tuple[int, str] | None = None
        seen = 0
        for number, record in _first_records(path, compression):
            reason = "not JSON" if record is NOT_JSON else "not a JSON object" if not isinstance(record, dict) \
                else problem_of(record)
            if reason is None:
                return
            first = first or (number, reason)
            seen += 1
        if first is None:
            self.problem(f"{name}: {path} holds no record ({what} are needed)")
        else:
            self.problem(f"{name}: none of the first {seen} records of {path} is usable as {what} "
                         f"({path.name}:{first[0]}: {first[1]})")

    def sources(self, name: str, sources: list[DataSource]) -> None:
        """Each corpus names readable files, and a JSONL one's first records hold its ``text_field``."""
        from tanuki_pipelines.corpus_io import file_format, source_files

        for index, source in enumerate(sources):
            label = f"{name}[{index}] ({source.name})"
            if source.path is None:
                self.problem(f"{label}.path: not set (a file, directory or glob of the corpus is needed)")
                continue
            if not self.paths_here and not _anything_at(source.path):
                self.not_here(source.path)
                continue
            try:
                files = source_files(source)
            except BadInputError as exc:
                self.problem(f"{label}.path: {exc}")
                continue
            kind, compression = file_format(files[0], source.format)
            if kind == "jsonl":
                self.records(f"{label}.path", files[0], f"documents with a string {source.text_field!r}",
                             _text_field_problem(source.text_field), compression)

    # -- shapes ------------------------------------------------------------------------------------

    def vocabulary_fits(self, tokenizer_field: str, tokenizer_ids: int | None, model_field: str,
                        vocab_size: int | None) -> None:
        """Every id the tokenizer emits has a row in the model's embedding."""
        if tokenizer_ids is not None and vocab_size is not None and tokenizer_ids > vocab_size:
            self.problem(f"{model_field}: {vocab_size} but the tokenizer ({tokenizer_field}) uses ids up to "
                         f"{tokenizer_ids - 1}; set vocab_size to at least {tokenizer_ids}")

    def context_fits(self, length_field: str, length: int, model_field: str, model_config: dict[str, Any] | None) -> None:
        """A sequence length the model's positions cover."""
        positions = (model_config or {}).get("max_position_embeddings")
        if isinstance(positions, int) and length > positions:
            self.problem(f"{length_field}: {length} is longer than the model's max_position_embeddings "
                         f"{positions} ({model_field}); use at most {positions}")

    def tensor_parallel(self, tp_field: str, size: int, model_config: dict[str, Any] | None) -> None:
        """vLLM splits attention heads (and KV heads) over ``size`` ranks, one per GPU."""
        if size > 1 and self.hardware.gpus and size > self.hardware.gpus:
            self.problem(f"{tp_field}: {size} ranks but the pod has {self.hardware.gpus} GPU(s); "
                         f"use at most {self.hardware.gpus} or request more GPUs")
        heads = (model_config or {}).get("num_attention_heads")
        if isinstance(heads, int) and heads % size:
            self.problem(f"{tp_field}: {size} does not divide the model's {heads} attention heads")
        kv_heads = (model_config or {}).get("num_key_value_heads")
        if isinstance(kv_heads, int) and kv_heads % size and size % kv_heads:
            self.problem(f"{tp_field}: {size} neither divides nor is a multiple of the model's "
                         f"{kv_heads} key-value heads")

    def served_by_vllm(self, name: str, model_config: dict[str, Any] | None) -> None:
        """vLLM has a model class for the checkpoint's architecture."""
        if model_config is None:
            return
        architectures = model_config.get("architectures") or []
        supported = vllm_architectures()
        if supported is None:
            self.unknown.append(f"{name}: vLLM is not installed here to say whether it serves {architectures}")
            return
        if not architectures or not any(arch in supported for arch in architectures):
            self.problem(f"{name}: vLLM has no model class for architectures {architectures or '(none listed)'}; "
                         "convert the checkpoint to a supported one (e.g. LlamaForCausalLM, MixtralForCausalLM)")

    def fine_tuning_start(self, path: Path | None, max_length: int, router_aux_loss_coef: float | None) -> dict[str, Any] | None:
        """The checkpoint chat fine-tuning (SFT, DPO: field ``model``) starts from: its tokenizer fits
        its embedding, formats conversations and ends answers, and its positions cover
        ``train.max_length``. Its config.json, or None after a problem."""
        model = self.checkpoint("model", path)
        if model is None or path is None:
            return None
        self.vocabulary_fits("model", self.tokenizer_size("model", path), "model: config.json vocab_size",
                             model.get("vocab_size"))
        self.chat_template("model", path)
        self.context_fits("train.max_length", max_length, "model", model)
        if router_aux_loss_coef is not None and not is_moe(model):
            self.problem("router_aux_loss_coef: the model has no experts (a dense checkpoint); remove it")
        return model

    def vllm_engine(self, model_field: str, model: dict[str, Any] | None, prefix: str, max_model_len: int,
                    tensor_parallel_size: int) -> None:
        """A vLLM engine of this stage can load the checkpoint (``model``: its config.json, read
        from ``model_field``) with its settings under ``prefix``."""
        if model is None:
            return
        self.served_by_vllm(model_field, model)
        if not self.hardware.gpus and is_moe(model) and quantizes_experts(model):
            self.problem(f"{model_field}: a Mixture-of-Experts checkpoint with quantized experts, and vLLM's CPU "
                         "backend has no quantized-MoE kernel; serve it on a GPU, or quantize attention only "
                         "(quantize_experts: false)")
        self.context_fits(f"{prefix}max_model_len", max_model_len, model_field, model)
        self.tensor_parallel(f"{prefix}tensor_parallel_size", tensor_parallel_size, model)


def vllm_architectures() -> set[str] | None:
    """Architecture names vLLM's model registry knows (None: vLLM is not installed)."""
    try:
        from vllm.model_executor.models.registry import ModelRegistry
    except ImportError:
        return None
    return set(ModelRegistry.get_supported_archs())


def is_moe(model_config: dict[str, Any]) -> bool:
    """A Mixtral-style checkpoint (experts per layer) rather than a dense one."""
    return int(model_config.get("num_local_experts") or model_config.get("num_experts") or 0) > 1


def _anything_at(path: Path) -> bool:
    """A path, or a glob matching at least one file."""
    text = str(path)
    if any(char in text for char in "*?["):
        import glob

        return any(True for _ in glob.iglob(text, recursive=True))
    return path.exists()


def quantizes_experts(model_config: dict[str, Any]) -> bool:
    """A compressed-tensors checkpoint whose quantized Linear layers include the experts' (a scheme
    targeting every ``Linear``; tanuki's attention-only MoE schemes target the attention projections)."""
    groups = ((model_config.get("quantization_config") or {}).get("config_groups") or {}).values()
    return any("Linear" in (group.get("targets") or []) for group in groups if isinstance(group, dict))


def _text_field_problem(key: str) -> Callable[[dict[str, Any]], str | None]:
    def problem(record: dict[str, Any]) -> str | None:
        return None if isinstance(record.get(key), str) else f"no string {key!r} (text_field)"
    return problem


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _first_records(path: Path, compression: str | None) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value or NOT_JSON)`` of the first non-empty lines of a JSONL file (plain,
    ``gz`` or ``zst``); an unreadable file yields nothing."""
    from tanuki_pipelines.corpus_io import read_lines

    lines = read_lines(path, compression)
    seen = 0
    try:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError:
                yield number, NOT_JSON
            seen += 1
            if seen >= FIRST_RECORDS:
                return
    except (OSError, EOFError, ValueError, BadInputError):  # a corrupt stream: no usable record
        return
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()

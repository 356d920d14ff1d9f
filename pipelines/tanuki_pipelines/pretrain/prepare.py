"""Inputs a run needs before its first step: the tokenizer and the token store.

Called by the local launcher before it starts torchrun (so bad input fails at once, in one
process) and by global rank 0 of every run (a no-op when the launcher already did it; on a
cluster, where pods start torchrun directly, it does the work).
"""

from __future__ import annotations

import json
from pathlib import Path

from tanuki_common.errors import BadInputError
from tanuki_pipelines.corpus_io import source_files
from tanuki_pipelines.pretrain import data
from tanuki_pipelines.pretrain.config import NO_TOKENIZER, ModelConfig, PretrainConfig
from tanuki_pipelines.tokenize.store import TOKENIZER_DIR as STORE_TOKENIZER_DIR
from tanuki_pipelines.tokenize.store import read_store
from tanuki_pipelines.tokenizer.special import load_tokenizer, require_eos, special_ids

TOKENIZER_DIR = "tokenizer"
DATA_CACHE_DIR = "data"


def tokenizer_dir(config: PretrainConfig, output_dir: Path) -> Path:
    if config.tokenizer.path is not None:
        return config.tokenizer.path
    if config.tokenizer.train is not None:
        return output_dir / TOKENIZER_DIR
    if config.data.store is None:
        raise BadInputError(NO_TOKENIZER)
    return config.data.store / STORE_TOKENIZER_DIR


def ensure_tokenizer(config: PretrainConfig, output_dir: Path) -> Path:
    directory = tokenizer_dir(config, output_dir)
    if config.tokenizer.train is not None and not (directory / "outputs.json").is_file():
        from tanuki_pipelines.tokenizer.train import build_tokenizer

        build_tokenizer(config.tokenizer.train, directory)
    if config.tokenizer.path is None and config.tokenizer.train is None and not directory.is_dir():
        raise BadInputError(f"data.store: {config.data.store} keeps no copy of its tokenizer; set tokenizer.path")
    tokenizer = load_tokenizer(directory, "tokenizer.path")
    require_eos(special_ids(tokenizer), "tokenizer.path", directory, "pretraining joins documents with it")
    return directory


def check_vocab(config: PretrainConfig, directory: Path) -> None:
    tokens = len(load_tokenizer(directory, "tokenizer.path"))  # added tokens included
    if config.model.vocab_size < tokens:
        raise BadInputError(
            f"model.vocab_size ({config.model.vocab_size}) is smaller than the tokenizer's "
            f"{tokens} tokens ({directory})"
        )


def check_init_from(init_from: Path, model: ModelConfig) -> None:
    """The starting checkpoint ``init_from`` must have the recipe's shape (named field by field if not)."""
    source = init_from / "config.json"
    if not source.is_file():
        raise BadInputError(f"init_from: no HF checkpoint (config.json) at {init_from}")
    wrong = init_mismatches(json.loads(source.read_text()), model)
    if wrong:
        raise BadInputError(f"init_from: {init_from} does not match model: " + "; ".join(wrong))


def init_mismatches(found: dict[str, object], model: ModelConfig) -> list[str]:
    """``field: recipe X, checkpoint Y`` for each shape field of ``model`` the checkpoint's config.json
    ``found`` does not have (pure)."""
    expected: dict[str, int | str] = {
        "vocab_size": model.vocab_size, "hidden_size": model.hidden_size, "intermediate_size": model.intermediate_size,
        "num_hidden_layers": model.num_hidden_layers, "num_attention_heads": model.num_attention_heads,
        "num_key_value_heads": model.num_key_value_heads}
    if model.num_experts > 1:
        expected.update({"model_type": "mixtral", "num_local_experts": model.num_experts,
                         "num_experts_per_tok": model.experts_per_token})
    else:
        expected["model_type"] = "llama"
    return [f"{key}: recipe {value!r}, checkpoint {found.get(key)!r}"
            for key, value in expected.items() if found.get(key) != value]


def prepare(config: PretrainConfig, output_dir: Path, cpus: int | None = None) -> tuple[Path, Path]:
    """Tokenizer directory and token store, building what is missing (the store with ``cpus`` cores,
    default: all this process may use)."""
    import os

    if config.init_from is not None:
        check_init_from(config.init_from, config.model)
    if config.data.store is not None:
        read_store(config.data.store)  # a finished store, before its tokenizer is looked for
    else:
        for source in config.data.sources:
            source_files(source)  # every source names readable files, before the tokenizer is trained
    directory = ensure_tokenizer(config, output_dir)
    check_vocab(config, directory)
    cache = output_dir / DATA_CACHE_DIR
    if config.data.store is not None:
        store = data.use_store(config.data.store, directory, cache)
    else:
        store = data.prepare_store(config.data.sources, directory, cache, cpus or len(os.sched_getaffinity(0)))
    data.open_packed(store, config.data.sources, config.train.seq_len)  # each source fills a sequence
    return directory, store

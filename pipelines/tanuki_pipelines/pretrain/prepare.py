"""Inputs a run needs before its first step: the tokenizer and the packed data cache.

Called by the local launcher before it starts torchrun (so bad input fails at once, in one
process) and by global rank 0 of every run (a no-op when the launcher already did it; on a
cluster, where pods start torchrun directly, it does the work).
"""

from __future__ import annotations

import json
from pathlib import Path

from tanuki_pipelines.errors import BadInputError
from tanuki_pipelines.pretrain import data
from tanuki_pipelines.pretrain.config import PretrainConfig
from tanuki_pipelines.tokenizer.train import SP_MODEL_FILE

TOKENIZER_DIR = "tokenizer"
DATA_CACHE_DIR = "data"


def tokenizer_dir(config: PretrainConfig, output_dir: Path) -> Path:
    if config.tokenizer.path is not None:
        return config.tokenizer.path
    return output_dir / TOKENIZER_DIR


def ensure_tokenizer(config: PretrainConfig, output_dir: Path) -> Path:
    directory = tokenizer_dir(config, output_dir)
    if config.tokenizer.train is not None and not (directory / "outputs.json").is_file():
        from tanuki_pipelines.tokenizer.train import build_tokenizer

        build_tokenizer(config.tokenizer.train, directory)
    if not (directory / SP_MODEL_FILE).is_file():
        raise BadInputError(f"tokenizer.path: no {SP_MODEL_FILE} in {directory}")
    return directory


def check_vocab(config: PretrainConfig, directory: Path) -> None:
    outputs = directory / "outputs.json"
    if outputs.is_file():
        pieces = json.loads(outputs.read_text())["vocab_size"]
    else:
        import sentencepiece as spm

        pieces = spm.SentencePieceProcessor(model_file=str(directory / SP_MODEL_FILE)).get_piece_size()
    if config.model.vocab_size < pieces:
        raise BadInputError(
            f"model.vocab_size ({config.model.vocab_size}) is smaller than the tokenizer's "
            f"{pieces} pieces ({directory})"
        )


def prepare(config: PretrainConfig, output_dir: Path) -> tuple[Path, list[Path]]:
    """Tokenizer directory and packed-data paths (one per source), building what is missing."""
    if config.model.num_experts > 1:
        raise BadInputError("model.num_experts: MoE continued pretraining (router auxiliary loss, expert "
                            "load metrics, starting from an upcycled checkpoint) is not implemented yet")
    for source in config.data.sources:
        if source.path is None:
            raise BadInputError(f"data.sources[{source.name}].path: not set")
        if not source.path.is_file():
            raise BadInputError(f"data.sources[{source.name}].path: file not found: {source.path}")
    directory = ensure_tokenizer(config, output_dir)
    check_vocab(config, directory)
    paths = data.prepare_all(config.data.sources, directory, config.train.seq_len,
                             output_dir / DATA_CACHE_DIR)
    return directory, paths

"""Train the SentencePiece model and export an HF tokenizer directory with identical ids.

The HF export is made the way transformers 5.x converts it faithfully: the SentencePiece model is
placed at ``DIR/tokenizer.model`` and loaded with ``AutoTokenizer.from_pretrained(DIR)``
(``LlamaTokenizer(vocab_file=...)`` yields empty ids there).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.corpus_io import iter_texts
from tanuki_pipelines.tokenizer.config import CHAT_END, CHAT_START, TokenizerConfig
from tanuki_pipelines.tokenizer.pretokenize import DELIMITER, split_corpus

SP_MODEL_FILE = "tokenizer.model"
HF_TOKENIZER_FILES = (SP_MODEL_FILE, "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                      "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json")
"""What makes a tokenizer directory (copied into checkpoints; nothing else of the source is)."""


def copy_tokenizer_files(source: Path, target: Path) -> None:
    for name in HF_TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
# Round-trip probe checked after every export: Japanese, English, digits, spacing, chat markers.
ID_PROBE = f"{CHAT_START}user\n東京の天気は？ 2026年11月28日、気温は12度。{CHAT_END}\n  Hello, world!\n"


def chat_template() -> str:
    """ChatML with ``{% generation %}`` around assistant turns (TRL's assistant-only loss mask)."""
    return resources.files("tanuki_pipelines.tokenizer").joinpath("chat_template.jinja").read_text()


def sentencepiece_args(config: TokenizerConfig, input_file: Path, model_prefix: Path) -> dict[str, Any]:
    """Recipe → keyword arguments of ``SentencePieceTrainer.train`` (pure)."""
    special = config.special_tokens
    return {
        "input": str(input_file),
        "model_prefix": str(model_prefix),
        "model_type": config.model_type,
        "vocab_size": config.vocab_size,
        "hard_vocab_limit": config.hard_vocab_limit,
        "character_coverage": config.character_coverage,
        "byte_fallback": config.byte_fallback,
        "split_digits": config.split_digits,
        "normalization_rule_name": config.normalization,
        "remove_extra_whitespaces": config.remove_extra_whitespaces,
        "add_dummy_prefix": config.add_dummy_prefix,
        "user_defined_symbols": list(config.user_defined_symbols),
        "unk_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "pad_id": 3,
        "unk_piece": special.unk,
        "bos_piece": special.bos,
        "eos_piece": special.eos,
        "pad_piece": special.pad,
        "input_sentence_size": config.input_sentence_size,
        "shuffle_input_sentence": True,
        "max_sentence_length": config.max_sentence_length,
        "num_threads": config.num_threads or _cpu_count(),
        "minloglevel": 2,
        **({"pretokenization_delimiter": DELIMITER} if config.pretokenize.type == "mecab" else {}),
    }


def _cpu_count() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)))


def training_lines(config: TokenizerConfig) -> Iterator[str]:
    """The non-empty lines of every source, as written (streamed: sampled later when the recipe asks)."""
    for source in config.sources:
        for document in iter_texts(source):
            yield from (line for line in document.splitlines() if line.strip())


def sample_lines(lines: Iterable[str], size: int, seed: int = 0) -> list[str]:
    """A uniform sample of ``size`` lines (all of them when fewer), in corpus order (reservoir sampling)."""
    import random

    rng = random.Random(seed)
    reservoir: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        if index < size:
            reservoir.append((index, line))
        elif (slot := rng.randrange(index + 1)) < size:
            reservoir[slot] = (index, line)
    return [line for _, line in sorted(reservoir)]


def write_training_text(config: TokenizerConfig, path: Path) -> int:
    """One line per sentence for SentencePiece (split into MeCab words with ``pretokenize: mecab``);
    returns the number of lines written."""
    lines: Iterable[str] = training_lines(config)
    if config.input_sentence_size:  # sample while streaming: only what SentencePiece would use is written
        lines = sample_lines(lines, config.input_sentence_size)
    if config.pretokenize.type == "mecab":
        total = len(lines) if isinstance(lines, list) else sum(1 for _ in training_lines(config))
        lines = split_corpus(lines, config.pretokenize.dictionary, config.pretokenize.workers, total)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            count += 1
    return count


def train_sentencepiece(config: TokenizerConfig, work_dir: Path) -> Path:
    import sentencepiece as spm

    text_file = work_dir / "corpus.txt"
    write_training_text(config, text_file)
    prefix = work_dir / "sp"
    try:
        spm.SentencePieceTrainer.train(**sentencepiece_args(config, text_file, prefix))
    except RuntimeError as exc:
        # e.g. "Vocabulary size too high (65000). Please set it to a value <= 4153."
        raise BadInputError(f"vocab_size: SentencePiece refused the recipe: {exc}") from None
    return prefix.with_suffix(".model")


def export_hf_tokenizer(sp_model: Path, out_dir: Path, config: TokenizerConfig) -> None:
    """Write ``out_dir`` as an HF tokenizer directory (plus the SentencePiece model itself)."""
    from transformers import AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sp_model, out_dir / SP_MODEL_FILE)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    tokenizer.pad_token = config.special_tokens.pad
    tokenizer.add_special_tokens({"additional_special_tokens": [CHAT_START, CHAT_END]})
    tokenizer.chat_template = chat_template()
    tokenizer.model_max_length = config.model_max_length
    tokenizer.save_pretrained(out_dir)
    check_same_ids(out_dir, ID_PROBE)


def check_same_ids(tokenizer_dir: Path, text: str) -> None:
    """Fail loudly if the HF tokenizer and SentencePiece disagree on ``text``."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sp_ids = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / SP_MODEL_FILE)).encode(text)
    hf_ids = AutoTokenizer.from_pretrained(tokenizer_dir).encode(text, add_special_tokens=False)
    if sp_ids != hf_ids:
        raise RuntimeError(f"HF tokenizer ids differ from SentencePiece on {text!r}")


def build_tokenizer(config: TokenizerConfig, out_dir: Path) -> dict[str, Any]:
    """Train and export into ``out_dir`` durably (``tanuki_pipelines.publish``); returns the stage outputs."""
    from tanuki_pipelines.publish import staging

    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with staging(out_dir, label="tokenizer") as staged:  # fsynced, renamed, parent fsynced on success
        with tempfile.TemporaryDirectory(prefix=".tanuki-tok-", dir=out_dir.parent) as scratch:
            sp_model = train_sentencepiece(config, Path(scratch))
            export_hf_tokenizer(sp_model, staged, config)
        outputs = {"tokenizer": str(out_dir), "vocab_size": _piece_count(staged / SP_MODEL_FILE)}
        (staged / "outputs.json").write_text(json.dumps(outputs, indent=2) + "\n")
    return outputs


def _piece_count(sp_model: Path) -> int:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()

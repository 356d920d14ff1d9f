"""A byte-level BPE tokenizer (the GPT-2 / Llama-3 kind) trained with HF ``tokenizers``.

Not the Tanuki recipe: the baseline ``benchmarks/tokenizer_efficiency.py`` measures our unigram
against, and a tokenizer with a foreign special-token layout (``<|endoftext|>`` as eos at id 0, no
bos, no pad) for checking that every stage reads its special tokens from the tokenizer it is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

END_OF_TEXT = "<|endoftext|>"


def train_byte_level_bpe(texts: Iterable[str], vocab_size: int, out_dir: Path, chat_template: str | None = None,
                         model_max_length: int = 4096, split_digits: bool = False) -> Path:
    """Train on ``texts`` and save an HF tokenizer directory (``tokenizer.json``) at ``out_dir``;
    ``split_digits``: every digit its own token, as in tanuki's unigram (GPT-2 merges digit runs)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]) \
        if split_digits else byte_level
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=END_OF_TEXT,
                                      model_max_length=model_max_length)
    if chat_template is not None:
        wrapped.chat_template = chat_template
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(out_dir)
    return out_dir

"""Recipe model of the tokenizer stage (pydantic only: no sentencepiece import here)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tanuki_pipelines.config import ConfigModel, DataSource

CHAT_START = "<|im_start|>"
CHAT_END = "<|im_end|>"


class SpecialTokens(ConfigModel):
    """The four SentencePiece control/unknown pieces and their ids (0..3 in Tanuki's tokenizer)."""

    unk: str = "<unk>"
    """Unknown piece (rarely used: byte fallback covers unseen characters)."""
    bos: str = "<s>"
    """Beginning-of-sequence piece."""
    eos: str = "</s>"
    """End-of-sequence piece; pretraining puts one after every document."""
    pad: str = "<pad>"
    """Padding piece."""


class PreTokenize(ConfigModel):
    """Word boundaries the learned pieces must respect (Tanuki: MeCab 分かち書き)."""

    type: Literal["none", "mecab"] = "none"
    """``mecab``: training text is split into MeCab words first, and no piece is learned across a
    word boundary; encoding still takes raw text (nothing at inference knows about MeCab)."""
    dictionary: Literal["unidic-lite"] = "unidic-lite"
    """MeCab dictionary (the pip package ``unidic-lite``)."""
    workers: int = Field(default=0, ge=0)
    """Processes splitting the corpus (0: one per core)."""


class TokenizerConfig(ConfigModel):
    """How to train the SentencePiece model and export it as an HF tokenizer directory."""

    sources: list[DataSource] = Field(min_length=1)
    """Corpora to learn the vocabulary from (Japanese and English text)."""
    pretokenize: PreTokenize = Field(default_factory=PreTokenize)
    """Split the training text into words before learning pieces (``type: mecab``)."""
    vocab_size: int = Field(default=65000, ge=300)
    """Number of pieces (Tanuki: 65,000). The model's embedding is padded above this."""
    model_type: Literal["unigram", "bpe"] = "unigram"
    """SentencePiece algorithm; Tanuki uses unigram."""
    character_coverage: float = Field(default=0.9995, gt=0, le=1)
    """Share of characters covered by pieces; the rest falls back to bytes."""
    byte_fallback: bool = True
    """Encode characters outside the vocabulary as UTF-8 byte pieces instead of <unk>."""
    split_digits: bool = True
    """Every digit is its own piece, which helps arithmetic."""
    normalization: Literal["nfkc", "nmt_nfkc", "identity"] = "nfkc"
    """Unicode normalisation rule applied before tokenizing."""
    remove_extra_whitespaces: bool = False
    """Tanuki keeps whitespace as written (code, chat formatting); leave False."""
    add_dummy_prefix: bool = False
    """Prepend a space before text; False keeps Japanese and chat markers exact."""
    hard_vocab_limit: bool = True
    """Fail when the corpus cannot fill ``vocab_size``; tiny debug corpora set False."""
    user_defined_symbols: list[str] = Field(default_factory=lambda: [CHAT_START, CHAT_END])
    """Pieces never split: the chat markers of the ChatML template."""
    special_tokens: SpecialTokens = Field(default_factory=SpecialTokens)
    """Control pieces at ids 0..3."""
    input_sentence_size: int = Field(default=0, ge=0)
    """Sample this many lines from the corpus for training (0: use all)."""
    max_sentence_length: int = Field(default=16384, ge=16)
    """Longer lines are skipped by SentencePiece (bytes)."""
    num_threads: int = Field(default=0, ge=0)
    """Trainer threads (0: all cores)."""
    model_max_length: int = Field(default=4096, ge=16)
    """Context length recorded in the HF tokenizer config."""

    @model_validator(mode="after")
    def _check_symbols(self) -> TokenizerConfig:
        controls = set(self.special_tokens.model_dump().values())
        clash = sorted(controls.intersection(self.user_defined_symbols))
        if clash:
            raise ValueError(f"user_defined_symbols repeats special tokens: {clash}")
        if CHAT_START not in self.user_defined_symbols or CHAT_END not in self.user_defined_symbols:
            raise ValueError(
                f"user_defined_symbols must contain the chat markers {CHAT_START} and {CHAT_END}"
            )
        return self

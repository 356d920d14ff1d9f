"""Special tokens as the tokenizer a stage is given defines them, never as constants.

Our own tokenizer puts unk/bos/eos/pad at ids 0..3, but a user may bring any HF tokenizer
directory (``tokenizer.path``: an existing Japanese LLM's, a byte-level BPE, ...) with its own
layout, or without a pad or bos token. Every stage reads the ids from here, and a stage that needs
a token the tokenizer lacks fails naming the field and what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
"""A directory holding one of these is a tokenizer transformers can load without downloading."""


@dataclass(frozen=True)
class SpecialIds:
    """The special-token ids of one tokenizer (None: the tokenizer has no such token)."""

    bos: int | None
    eos: int | None
    pad: int | None
    unk: int | None

    def config_kwargs(self) -> dict[str, int | None]:
        """The ``*_token_id`` fields of an HF model or generation config."""
        return {"bos_token_id": self.bos, "eos_token_id": self.eos, "pad_token_id": self.pad}


def load_tokenizer(directory: Path, field: str) -> Any:
    """The HF tokenizer in ``directory``; a clear error naming ``field`` when there is none."""
    directory = Path(directory)
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise BadInputError(f"{field}: no tokenizer in {directory} (expected one of {', '.join(TOKENIZER_FILES)})")
    try:
        if (directory / "tokenizer.json").is_file():
            # the fast class directly: importing AutoTokenizer's registry costs 10-30 s of CPU here
            from transformers import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast.from_pretrained(directory)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(directory)  # a SentencePiece model alone: converted
    except (OSError, ValueError, TypeError) as exc:
        raise BadInputError(f"{field}: transformers cannot load the tokenizer in {directory}: {exc}") from None


def special_ids(tokenizer: Any) -> SpecialIds:
    return SpecialIds(bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id,
                      unk=tokenizer.unk_token_id)


def require_eos(ids: SpecialIds, field: str, directory: Path, why: str) -> int:
    """The eos id, or a clear error: ``why`` says what the stage needs it for."""
    if ids.eos is None:
        raise BadInputError(f"{field}: the tokenizer in {directory} has no eos token ({why}); set eos_token in "
                            "its tokenizer_config.json")
    return ids.eos


def require_chat_template(tokenizer: Any, field: str, directory: Path) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise BadInputError(f"{field}: the tokenizer in {directory} has no chat template (chat_template.jinja or "
                            "chat_template in tokenizer_config.json); chat fine-tuning formats conversations with it")

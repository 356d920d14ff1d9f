"""``tanuki tokenizer-info --tokenizer DIR --text FILE... [--output F]``: what a tokenizer is and how
well it compresses given text.

Vocabulary size, special tokens and their ids, whether it has a chat template; per text file the
characters and UTF-8 bytes per token and the share of byte-fallback tokens (``<0xNN>``: characters
the vocabulary lacks); and its longest pieces. Printed as a table and written as JSON. Works on any
HF tokenizer directory. A ``.jsonl`` file is read as documents (``"text"``), anything else as text.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
LONGEST = 10


@dataclass(frozen=True)
class TextStats:
    """How one text file tokenizes."""

    file: str
    characters: int
    bytes: int
    tokens: int
    byte_fallback_tokens: int

    @property
    def characters_per_token(self) -> float:
        return self.characters / max(self.tokens, 1)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / max(self.tokens, 1)

    @property
    def byte_fallback_share(self) -> float:
        return self.byte_fallback_tokens / max(self.tokens, 1)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "characters_per_token": round(self.characters_per_token, 4),
                "bytes_per_token": round(self.bytes_per_token, 4),
                "byte_fallback_share": round(self.byte_fallback_share, 6)}


def text_stats(name: str, texts: list[str], pieces: list[list[str]]) -> TextStats:
    """Figures of ``texts`` from their token strings (pure)."""
    return TextStats(file=name, characters=sum(len(text) for text in texts),
                     bytes=sum(len(text.encode("utf-8")) for text in texts),
                     tokens=sum(len(found) for found in pieces),
                     byte_fallback_tokens=sum(1 for found in pieces for piece in found if BYTE_PIECE.match(piece)))


def read_texts(path: Path) -> list[str]:
    from tanuki_common.errors import BadInputError

    if not path.is_file():
        raise BadInputError(f"--text: no such file: {path}")
    content = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return [content]
    texts = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            texts.append(json.loads(line)["text"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise BadInputError(f"--text: {path}:{number} is not a JSON object with \"text\"") from None
    return texts


def longest_pieces(vocabulary: dict[str, int], tokenizer: Any, count: int = LONGEST) -> list[dict[str, Any]]:
    """The ``count`` pieces whose text is longest (special and byte pieces left out)."""
    special = set(tokenizer.all_special_ids)
    texts = []
    for piece, index in vocabulary.items():
        if index in special or BYTE_PIECE.match(piece):
            continue
        texts.append((len(tokenizer.convert_tokens_to_string([piece])), index, piece))
    texts.sort(key=lambda item: (-item[0], item[1]))
    return [{"id": index, "piece": piece, "characters": length} for length, index, piece in texts[:count]]


def tokenizer_info(directory: Path, files: list[Path]) -> dict[str, Any]:
    from tanuki_pipelines.tokenizer.special import load_tokenizer

    tokenizer = load_tokenizer(directory, "--tokenizer")
    stats = []
    for path in files:
        texts = read_texts(path)
        pieces = [tokenizer.convert_ids_to_tokens(ids)
                  for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []
        stats.append(text_stats(str(path), texts, pieces).as_dict())
    special = {name: {"token": getattr(tokenizer, f"{name}_token"), "id": getattr(tokenizer, f"{name}_token_id")}
               for name in ("bos", "eos", "pad", "unk")}
    return {"tokenizer": str(directory), "vocab_size": len(tokenizer), "special_tokens": special,
            "chat_template": bool(getattr(tokenizer, "chat_template", None)), "texts": stats,
            "longest_pieces": longest_pieces(tokenizer.get_vocab(), tokenizer)}


def format_table(info: dict[str, Any]) -> str:
    lines = [f"tokenizer      {info['tokenizer']}", f"vocab size     {info['vocab_size']}",
             "special tokens " + ", ".join(f"{name} {found['token']!r}={found['id']}" if found["token"] is not None
                                           else f"{name} (none)" for name, found in info["special_tokens"].items()),
             f"chat template  {'yes' if info['chat_template'] else 'no'}", ""]
    header = f"{'file':<40} {'chars':>10} {'bytes':>10} {'tokens':>9} {'chars/tok':>9} {'bytes/tok':>9} {'byte-fb':>8}"
    lines.append(header)
    for stats in info["texts"]:
        name = stats["file"] if len(stats["file"]) <= 40 else "…" + stats["file"][-39:]
        lines.append(f"{name:<40} {stats['characters']:>10} {stats['bytes']:>10} {stats['tokens']:>9} "
                     f"{stats['characters_per_token']:>9.3f} {stats['bytes_per_token']:>9.3f} "
                     f"{stats['byte_fallback_share']:>8.2%}")
    lines.append("")
    lines.append("longest pieces: " + ", ".join(f"{p['piece']!r} ({p['characters']})" for p in info["longest_pieces"]))
    return "\n".join(lines)


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--tokenizer", type=Path, required=True, help="an HF tokenizer directory")
    parser.add_argument("--text", type=Path, nargs="+", required=True, help="text or JSONL files to measure on")
    parser.add_argument("--output", type=Path, default=Path("tokenizer-info.json"),
                        help="where the JSON goes (default tokenizer-info.json)")
    return parser


def main(args: argparse.Namespace) -> int:
    info = tokenizer_info(args.tokenizer, args.text)
    print(format_table(info))
    args.output.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\n{args.output}")
    return 0

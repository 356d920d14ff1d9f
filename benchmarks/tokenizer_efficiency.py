"""Characters per token on held-out text of three tokenizers trained in one run on the same text with
the same vocabulary size, and how long each took to train:

- **unigram + MeCab**: tanuki's recipe (SentencePiece unigram, byte fallback, split digits, NFKC)
  with ``pretokenize: mecab`` — pieces never cross a MeCab word boundary (分かち書き);
- **unigram**: the same without MeCab;
- **byte-level BPE**: HF ``tokenizers`` (the GPT-2 / Llama-3 kind), the baseline; and the same with
  every digit its own token, as the unigram splits them (GPT-2 merges digit runs, Llama-3 cuts
  them into groups of three).

The text: the project's Japanese and English debug corpus, each split 80/20 by document into
training and held-out text, plus any ``--ja``/``--en`` files (JSONL with "text", or plain text),
split the same way. Also reports the share of held-out Japanese tokens that cross a MeCab word
boundary, and the held-out Japanese's characters per MeCab word. Goal: unigram + MeCab ≥ byte-level
BPE on Japanese characters per token.

Measured on real text (吾輩は猫である and Botchan, from the SentencePiece repository's test data, as
``--ja``/``--en`` JSONL, one paragraph per document; vocabulary 8000): unigram + MeCab 1.157 Japanese
characters per token, unigram 1.613, byte-level BPE 1.616. The goal cannot be met by pieces kept inside
words: unidic-lite's words are 1.52 characters long on that text (ipadic's 1.55), below what BPE reaches.

A quality benchmark: characters per token are exact, so there are no rounds; training seconds are
printed as they came.

    .venv/bin/python benchmarks/tokenizer_efficiency.py [--vocab-size 2000] [--ja F ...] [--en F ...] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import unicodedata
from pathlib import Path

from benchkit import Report, machine_facts

CORPUS = Path(__file__).resolve().parents[1] / "pipelines" / "recipes" / "debug" / "corpus"


def read_documents(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in text.splitlines() if line.strip()]
    return [part for part in text.split("\n\n") if part.strip()]


def split(documents: list[str]) -> tuple[list[str], list[str]]:
    cut = len(documents) * 4 // 5
    return documents[:cut], documents[cut:]


def train_unigram(train_file: Path, vocab_size: int, mecab: bool, work: Path) -> tuple[object, float]:
    """(an encode function: text → token count, training seconds)."""
    import sentencepiece as spm

    from tanuki_pipelines.tokenizer.config import TokenizerConfig
    from tanuki_pipelines.tokenizer.train import train_sentencepiece

    config = TokenizerConfig(sources=[{"name": "train", "path": train_file}], vocab_size=vocab_size,
                             hard_vocab_limit=False, pretokenize={"type": "mecab" if mecab else "none"})
    work.mkdir(parents=True)
    started = time.perf_counter()
    model = train_sentencepiece(config, work)
    seconds = time.perf_counter() - started
    return spm.SentencePieceProcessor(model_file=str(model)), seconds


def train_bpe(texts: list[str], vocab_size: int, work: Path, split_digits: bool = False) -> tuple[object, float]:
    from transformers import AutoTokenizer

    from tanuki_pipelines.tokenizer.byte_bpe import train_byte_level_bpe

    started = time.perf_counter()
    directory = train_byte_level_bpe(texts, vocab_size, work, split_digits=split_digits)
    seconds = time.perf_counter() - started
    return AutoTokenizer.from_pretrained(directory), seconds


def token_count(tokenizer: object, text: str) -> int:
    if hasattr(tokenizer, "encode_as_ids"):
        return len(tokenizer.encode(text))
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def vocabulary(tokenizer: object) -> int:
    return tokenizer.get_piece_size() if hasattr(tokenizer, "get_piece_size") else len(tokenizer)


def mecab_words(texts: list[str]) -> list[tuple[str, list[str]]]:
    """Each text in NFKC (as the tokenizers see it) with its MeCab words, split once for every measure."""
    from tanuki_pipelines.tokenizer.pretokenize import DELIMITER, mecab_tagger, split_words

    normalized = [unicodedata.normalize("NFKC", text) for text in texts]
    return [(text, split_words(text, mecab_tagger()).split(DELIMITER)) for text in normalized]


def crossing_share(processor: object, split: list[tuple[str, list[str]]]) -> float:
    """Share of tokens of a SentencePiece model whose span holds a MeCab word boundary inside."""
    crossing = total = 0
    for text, words in split:
        boundaries, position = set(), 0
        for word in words:
            position += len(word.encode())
            boundaries.add(position)
        for piece in processor.encode(text, out_type="proto").pieces:
            total += 1
            crossing += any(piece.begin < b < piece.end for b in boundaries)
    return crossing / max(total, 1)


def characters_per_word(split: list[tuple[str, list[str]]]) -> float:
    """Characters per MeCab word: about the most that pieces kept inside words can reach."""
    return sum(len(text) for text, _ in split) / max(sum(len(words) for _, words in split), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--ja", type=Path, nargs="*", default=[], help="more Japanese text files")
    parser.add_argument("--en", type=Path, nargs="*", default=[], help="more English text files")
    parser.add_argument("--smoke", action="store_true", help="a 1,500-piece vocabulary: checks the script, not the text")
    args = parser.parse_args()
    if args.smoke:
        args.vocab_size = 1500
    names = ["unigram + MeCab", "unigram", "byte-level BPE", "BPE split digits"]
    report = Report("tokenizer_efficiency", [f"{name}: {language} chars/token" for name in names
                                             for language in ("ja", "en")]
                    + ["MeCab characters per word (ja)", "goal: unigram + MeCab ≥ byte-level BPE (ja)"],
                    machine_facts({"SentencePiece trainer": "its default", "HF tokenizers trainer": "its default"}))

    held_out: dict[str, list[str]] = {}
    training: list[str] = []
    for language, extra in (("ja", args.ja), ("en", args.en)):
        documents = read_documents(CORPUS / f"{language}.jsonl")
        for path in extra:
            documents += read_documents(path)
        train, held = split(documents)
        training += train
        held_out[language] = held
    with tempfile.TemporaryDirectory(prefix="tanuki-tokbench-") as scratch:
        root = Path(scratch)
        train_file = root / "train.jsonl"
        train_file.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in training))
        tokenizers = {
            "unigram + MeCab": train_unigram(train_file, args.vocab_size, True, root / "mecab"),
            "unigram": train_unigram(train_file, args.vocab_size, False, root / "plain"),
            "byte-level BPE": train_bpe(training, args.vocab_size, root / "bpe"),
            "BPE split digits": train_bpe(training, args.vocab_size, root / "bpe-digits", split_digits=True),
        }
        rows = {}
        for name, (tokenizer, seconds) in tokenizers.items():
            rows[name] = {"vocab": vocabulary(tokenizer), "train_seconds": round(seconds, 2)}
            for language, texts in held_out.items():
                characters = sum(len(text) for text in texts)
                tokens = sum(token_count(tokenizer, text) for text in texts)
                rows[name][f"{language}_chars_per_token"] = round(characters / tokens, 3)
        japanese_words = mecab_words(held_out["ja"])
        for name in ("unigram + MeCab", "unigram"):
            rows[name]["ja_tokens_crossing_words"] = round(crossing_share(tokenizers[name][0], japanese_words), 4)
    baseline = rows["byte-level BPE"]
    print(f"held-out: {sum(map(len, held_out['ja']))} Japanese, {sum(map(len, held_out['en']))} English characters; "
          f"requested vocabulary {args.vocab_size}")
    print(f"{'tokenizer':<18} {'vocab':>6} {'ja chars/tok':>13} {'vs BPE':>7} {'en chars/tok':>13} {'vs BPE':>7} "
          f"{'train s':>8} {'ja tokens across words':>23}")
    for name, row in rows.items():
        print(f"{name:<18} {row['vocab']:>6} {row['ja_chars_per_token']:>13.3f} "
              f"{row['ja_chars_per_token'] / baseline['ja_chars_per_token']:>6.2f}× {row['en_chars_per_token']:>13.3f} "
              f"{row['en_chars_per_token'] / baseline['en_chars_per_token']:>6.2f}× {row['train_seconds']:>8.2f} "
              f"{row.get('ja_tokens_crossing_words', float('nan')):>23.2%}")
    goal = rows["unigram + MeCab"]["ja_chars_per_token"] >= baseline["ja_chars_per_token"]
    for name, row in rows.items():
        for language in ("ja", "en"):
            report.figures[f"{name}: {language} chars/token"] = {"value": row[f"{language}_chars_per_token"],
                                                                 "train_seconds": row["train_seconds"]}
    report.value("MeCab characters per word (ja)", characters_per_word(japanese_words),
                 "characters (about the ceiling of unigram + MeCab, whatever the vocabulary)")
    report.value("goal: unigram + MeCab ≥ byte-level BPE (ja)", "met" if goal else "NOT met")
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())

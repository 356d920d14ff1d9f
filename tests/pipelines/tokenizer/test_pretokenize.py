"""MeCab 分かち書き before SentencePiece: no learned piece crosses a word boundary of the training
text, held-out Japanese is cut across word boundaries less often than without it, and encoding
raw text round-trips."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
import sentencepiece as spm

from tanuki_pipelines.tokenizer.config import TokenizerConfig
from tanuki_pipelines.tokenizer.pretokenize import DELIMITER, mecab_tagger, split_corpus, split_words
from tanuki_pipelines.tokenizer.train import sample_lines, sentencepiece_args, train_sentencepiece

CORPUS = Path(__file__).resolve().parents[3] / "pipelines" / "recipes" / "debug" / "corpus" / "ja.jsonl"


@pytest.mark.parametrize("line", [
    "吾輩はタヌキである。名前はまだない。",
    "東京タワーの高さは333メートルです。",
    "日本語とEnglish mixed,  two spaces and a tab\there.",
    "trailing space ",
    f"a stray {DELIMITER} delimiter",
])
def test_splitting_inserts_boundaries_and_loses_nothing(line: str) -> None:
    split = split_words(line, mecab_tagger())
    assert split.replace(DELIMITER, "") == line.replace(DELIMITER, "")
    assert split.count(DELIMITER) >= 1


def test_words_are_mecabs_and_spaces_stay_with_the_next_word() -> None:
    assert split_words("吾輩はタヌキである。", mecab_tagger()).split(DELIMITER) == [
        "吾輩", "は", "タヌキ", "で", "ある", "。"]
    assert split_words("trailing space ", mecab_tagger()).split(DELIMITER) == ["trailing", " space "]


def test_the_pool_keeps_order_and_the_sample_is_uniform_in_corpus_order() -> None:
    lines = [f"これは{index}番目の文です。" for index in range(50)]
    assert [s.replace(DELIMITER, "") for s in split_corpus(lines, workers=2)] == lines
    sample = sample_lines(iter(range(1000)), 100, seed=1)
    assert len(sample) == 100 and sample == sorted(sample) and sample[-1] > 500
    assert sample_lines(iter(range(5)), 100) == list(range(5))


def test_only_mecab_sets_the_delimiter(tmp_path: Path) -> None:
    plain = TokenizerConfig(sources=[{"name": "ja", "path": CORPUS}])
    mecab = plain.model_copy(update={"pretokenize": plain.pretokenize.model_copy(update={"type": "mecab"})})
    assert "pretokenization_delimiter" not in sentencepiece_args(plain, tmp_path / "in", tmp_path / "sp")
    assert sentencepiece_args(mecab, tmp_path / "in", tmp_path / "sp")["pretokenization_delimiter"] == DELIMITER


def words(text: str) -> list[str]:
    """MeCab words of NFKC-normalised ``text``, spaces as SentencePiece writes them."""
    split = split_words(unicodedata.normalize("NFKC", text), mecab_tagger())
    return [word.replace(" ", "▁") for word in split.split(DELIMITER)]


def crossing_share(processor: spm.SentencePieceProcessor, texts: list[str]) -> float:
    """Share of tokens whose span contains a MeCab word boundary strictly inside."""
    crossing = total = 0
    for text in texts:
        text = unicodedata.normalize("NFKC", text)
        boundaries, position = set(), 0
        for word in split_words(text, mecab_tagger()).split(DELIMITER):
            position += len(word.encode())  # the pieces' begin/end are UTF-8 byte offsets
            boundaries.add(position)
        for piece in processor.encode(text, out_type="proto").pieces:
            total += 1
            crossing += any(piece.begin < b < piece.end for b in boundaries)
    return crossing / total


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    documents = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    cut = len(documents) * 4 // 5
    root = tmp_path_factory.mktemp("pretokenize")
    train = root / "train.jsonl"
    train.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in documents[:cut]))
    found = {"held_out": documents[cut:], "training_text": documents[:cut]}
    for kind in ("none", "mecab"):
        config = TokenizerConfig(sources=[{"name": "ja", "path": train}], vocab_size=2000, hard_vocab_limit=False,
                                 pretokenize={"type": kind, "workers": 2})
        work = root / kind
        work.mkdir()
        found[kind] = spm.SentencePieceProcessor(model_file=str(train_sentencepiece(config, work)))
    return found


def learned_pieces(processor: spm.SentencePieceProcessor) -> list[str]:
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())
            if not (processor.is_control(i) or processor.is_unknown(i) or processor.is_byte(i)
                    or processor.id_to_piece(i) in ("<|im_start|>", "<|im_end|>"))]


def test_no_piece_crosses_a_word_boundary_of_the_training_text(trained: dict) -> None:
    segments = "\n".join({word for document in trained["training_text"] for line in document.splitlines()
                          for word in words(line)})
    across = {kind: [p for p in learned_pieces(trained[kind]) if p not in segments] for kind in ("none", "mecab")}
    assert across["mecab"] == []
    assert len(across["none"]) > 50  # without 分かち書き pieces span words: "ました", "について", …


def test_held_out_tokens_cross_fewer_word_boundaries_and_round_trip(trained: dict) -> None:
    held_out = trained["held_out"]
    shares = {kind: crossing_share(trained[kind], held_out) for kind in ("none", "mecab")}
    assert shares["mecab"] < shares["none"] / 2, shares
    for text in held_out[:20]:
        normalised = unicodedata.normalize("NFKC", text)
        assert trained["mecab"].decode(trained["mecab"].encode(normalised)) == normalised

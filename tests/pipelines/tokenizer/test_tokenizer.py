"""The trained tokenizer: HF ids equal SentencePiece's; Japanese and chat text round-trip."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
import sentencepiece as spm
from transformers import AutoTokenizer

from tanuki_common.errors import BadInputError
from tanuki_pipelines.tokenizer.config import TokenizerConfig
from tanuki_pipelines.tokenizer.train import build_tokenizer

TEXTS = [
    "吾輩はタヌキである。名前はまだない。2026年11月28日、東京の気温は12.5度でした。",
    "The quick brown fox jumps over 13 lazy dogs; 3.14159 is pi.",
    "日本語とEnglishが混ざった文章、カタカナのコンピューター、ひらがなのことば。",
    "  two leading spaces,\ttabs\tand\n\nblank lines\n",
    "絵文字🦝と珍しい漢字「鬱」「齟齬」",
]
CHAT = [
    {"role": "system", "content": "あなたは親切なアシスタントです。"},
    {"role": "user", "content": "富士山の高さは?"},
    {"role": "assistant", "content": "富士山の高さは3776メートルです。\nほかに質問はありますか?"},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You're welcome."},
]


@pytest.fixture(scope="module")
def tokenizer_dir(debug_tokenizer_dir: Path) -> Path:
    return debug_tokenizer_dir


def test_settings_are_tanukis(tokenizer_dir: Path) -> None:
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    proto = model_pb2.ModelProto()
    proto.ParseFromString((tokenizer_dir / "tokenizer.model").read_bytes())
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    assert spec.model_type == model_pb2.TrainerSpec.UNIGRAM
    assert spec.byte_fallback and spec.split_digits
    assert spec.character_coverage == pytest.approx(0.9995)
    assert norm.name == "nfkc" and not norm.add_dummy_prefix and not norm.remove_extra_whitespaces
    pieces = [piece.piece for piece in proto.pieces]
    assert pieces[:4] == ["<unk>", "<s>", "</s>", "<pad>"]
    assert "<|im_start|>" in pieces and "<|im_end|>" in pieces
    assert "<0x0A>" in pieces  # newline is a byte piece


@pytest.mark.parametrize("text", TEXTS)
def test_hf_ids_equal_sentencepiece(tokenizer_dir: Path, text: str) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "tokenizer.model"))
    hf = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert hf.encode(text, add_special_tokens=False) == sp.encode(text)


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_is_exact_on_normalised_text(tokenizer_dir: Path, text: str) -> None:
    hf = AutoTokenizer.from_pretrained(tokenizer_dir)
    normalised = unicodedata.normalize("NFKC", text)
    assert hf.decode(hf.encode(normalised, add_special_tokens=False)) == normalised


def test_digits_are_split(tokenizer_dir: Path) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "tokenizer.model"))
    assert [sp.id_to_piece(i) for i in sp.encode("3776")] == ["3", "7", "7", "6"]


def test_chat_template_round_trips_and_masks_assistant_turns(tokenizer_dir: Path) -> None:
    hf = AutoTokenizer.from_pretrained(tokenizer_dir)
    text = hf.apply_chat_template(CHAT, tokenize=False)
    assert unicodedata.normalize("NFKC", text) == text  # NFKC maps e.g. "？" to "?" by design
    assert text.startswith("<|im_start|>system\nあなたは")
    encoded = hf.apply_chat_template(CHAT, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    assert hf.decode(ids) == text
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "tokenizer.model"))
    assert ids == sp.encode(text)
    assistant_text = hf.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert assistant_text == (CHAT[2]["content"] + "<|im_end|>" + CHAT[4]["content"] + "<|im_end|>")
    prompt = hf.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_special_tokens_and_outputs(tokenizer_dir: Path) -> None:
    hf = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert (hf.unk_token_id, hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (0, 1, 2, 3)
    assert hf.decode(hf.encode("<|im_start|>はい<|im_end|>", add_special_tokens=False),
                     skip_special_tokens=True) == "はい"
    outputs = json.loads((tokenizer_dir / "outputs.json").read_text())
    assert outputs["vocab_size"] == len(hf)


def test_empty_corpus_is_an_error_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    config = TokenizerConfig(sources=[{"name": "ja", "path": empty}], vocab_size=500)
    with pytest.raises(BadInputError, match="empty.jsonl"):
        build_tokenizer(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_corpus_is_an_error_naming_the_file(tmp_path: Path) -> None:
    config = TokenizerConfig(sources=[{"name": "en", "path": tmp_path / "nope.txt"}], vocab_size=500)
    with pytest.raises(BadInputError, match="nope.txt"):
        build_tokenizer(config, tmp_path / "out")


@pytest.mark.slow  # runs tanuki tokenizer in subprocesses, killed and rerun
@pytest.mark.parametrize("point", ["tokenizer:before-rename", "tokenizer:after-rename", "outputs:before-write"])
def test_sigkill_while_publishing_leaves_no_or_a_complete_tokenizer_and_the_rerun_completes(
        tmp_path: Path, point: str) -> None:
    import os
    import subprocess
    import sys

    from tanuki_pipelines.publish import FAULT_ENV
    from tanuki_pipelines.recipes import shipped_recipe

    out = tmp_path / "tok"

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "tokenizer",
                               "--config", str(shipped_recipe("debug", "tokenizer")), "--output-dir", str(out)],
                              capture_output=True, text=True, timeout=300, env={**os.environ, **env})

    killed = run(**{FAULT_ENV: point})
    assert killed.returncode == -9, killed.stderr[-2000:]
    # the tokenizer directory is the output: absent before its rename, complete after
    assert out.exists() == (point != "tokenizer:before-rename")
    if out.exists():
        assert AutoTokenizer.from_pretrained(out).encode("タヌキ", add_special_tokens=False)
    rerun = run()
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads((out / "outputs.json").read_text())["tokenizer"] == str(out.resolve())
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))
    assert not list(tmp_path.glob(".tanuki-tok-*"))

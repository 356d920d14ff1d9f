"""``tanuki tokenizer-info`` on a hand-built tokenizer and a tiny fixed text: every figure equals a
hand count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TEXT = "東京タワーは高い。"
"""東京 | タワー | は are pieces; 高, い, 。 are not and fall back to their 3 UTF-8 bytes each."""


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocabulary = [("</s>", 0.0), ("<unk>", 0.0), ("東京", -1.0), ("タワー", -1.0), ("は", -1.0)]
    vocabulary += [(f"<0x{value:02X}>", -10.0) for value in range(256)]
    tokenizer = Tokenizer(models.Unigram(vocabulary, unk_id=1, byte_fallback=True))
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    directory = tmp_path_factory.mktemp("hand-built")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>").save_pretrained(directory)
    return directory


def test_figures_equal_a_hand_count(hand_built: Path, tmp_path: Path) -> None:
    text = tmp_path / "tiny.txt"
    text.write_text(TEXT, encoding="utf-8")
    documents = tmp_path / "tiny.jsonl"
    documents.write_text(json.dumps({"text": TEXT}, ensure_ascii=False) + "\n" + json.dumps({"text": "東京"}) + "\n")
    out = tmp_path / "info.json"
    done = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "tokenizer-info", "--tokenizer", str(hand_built),
                           "--text", str(text), str(documents), "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = json.loads(out.read_text())
    assert info["vocab_size"] == 5 + 256
    assert info["special_tokens"]["eos"] == {"token": "</s>", "id": 0}
    assert info["special_tokens"]["bos"]["id"] is None and info["special_tokens"]["pad"]["id"] is None
    assert info["chat_template"] is False
    plain, both = info["texts"]
    # 9 characters of 3 bytes; 3 pieces + 3 × 3 byte tokens
    assert (plain["characters"], plain["bytes"], plain["tokens"], plain["byte_fallback_tokens"]) == (9, 27, 12, 9)
    assert (plain["characters_per_token"], plain["bytes_per_token"], plain["byte_fallback_share"]) == (0.75, 2.25, 0.75)
    assert (both["characters"], both["bytes"], both["tokens"], both["byte_fallback_tokens"]) == (11, 33, 13, 9)
    assert [p["piece"] for p in info["longest_pieces"]] == ["タワー", "東京", "は"]
    assert "chars/tok" in done.stdout and "0.750" in done.stdout


def test_a_directory_without_a_tokenizer_is_named(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "tokenizer-info", "--tokenizer", str(tmp_path),
                           "--text", str(tmp_path / "none.txt")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--tokenizer: no tokenizer in" in done.stderr

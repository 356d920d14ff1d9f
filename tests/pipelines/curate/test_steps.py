"""The per-document steps of ``tanuki curate``, table-driven: what each keeps, changes or removes."""

from __future__ import annotations

from typing import Any

import pytest

from tanuki_pipelines.curate.config import (
    Language,
    Length,
    Normalize,
    Pii,
    Punctuation,
    RepeatedPhrase,
    WebText,
)
from tanuki_pipelines.curate.steps import (
    document_steps,
    language,
    length,
    normalize,
    pii,
    punctuation,
    repeats,
    run_steps,
    web_text,
)

JA = ("吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
      "何でも薄暗いじめじめした所で泣いていた事だけは記憶している。")
RUN_ON = "これは句読点がまったくない長い長い文章でありとても読みにくいものになっている"
EN = "The quick brown fox jumps over the lazy dog, and that is all there is to say about the fox with the dog."


@pytest.mark.parametrize(("function", "settings", "text", "expected"), [
    (normalize, Normalize(), "ＡＢＣ１２３　ｶﾀｶﾅ", "ABC123 カタカナ"),
    (normalize, Normalize(), "a  \t b  \n\n\n\nc  ", "a b\n\nc"),
    (normalize, Normalize(form="none", collapse_spaces=False), "ＡＢＣ  ", "ＡＢＣ  "),
    (normalize, Normalize(), " \u3000 \n ", None),
    (language, Language(), JA, JA),
    (language, Language(), EN, None),
    (language, Language(languages=["en"]), EN, EN),
    (length, Length(min_chars=10), "短い", None),
    (length, Length(min_chars=1, max_chars=5), "長すぎる文章です", None),
    (length, Length(min_chars=1, max_chars=50), "ちょうど良い", "ちょうど良い"),
    (repeats, RepeatedPhrase(max_chars=10), "同じ文を繰り返すと消される。" * 2, None),
    (repeats, RepeatedPhrase(max_chars=10), JA, JA),
    (punctuation, Punctuation(max_words_per_mark=5), RUN_ON, None),
    (punctuation, Punctuation(), JA, JA),
    (web_text, WebText(), "#tag #tag #tag #tag", None),
    (web_text, WebText(), "1234567890 12345 678", None),
    (web_text, WebText(), "・a\n・b\n・c", None),
    (web_text, WebText(), "続く…\nまだ続く…\n終わり", None),
    (web_text, WebText(min_english_stop_words=2), "Buy cheap pills online now", None),
    (web_text, WebText(min_english_stop_words=2), EN, EN),
    (pii, Pii(), "連絡先: taro.yamada@example.co.jp まで", "連絡先: <PII> まで"),
    (pii, Pii(), "電話 03-1234-5678 か 090-1234-5678 へ", "電話 <PII> か <PII> へ"),
    (pii, Pii(phone=False), "電話 03-1234-5678", "電話 03-1234-5678"),
    (pii, Pii(), "2024-12-03 に 12:30 集合", "2024-12-03 に 12:30 集合"),
])
def test_a_step_keeps_changes_or_removes(function: Any, settings: Any, text: str, expected: str | None) -> None:
    result, reason = function(text, settings)
    assert result == expected
    assert (reason is None) == (expected is not None)


def test_steps_run_in_recipe_order_and_the_first_removal_names_its_step() -> None:
    steps = document_steps([Normalize(), Length(min_chars=10), Pii()])
    assert run_steps("ＡＢＣ　ｄｅｆ　ghi　jkl", steps) == ("ABC def ghi jkl", None)
    text, why = run_steps("ＡＢ", steps)
    assert text is None and why is not None and why[0] == "length" and "too short: 2 < 10" in why[1]

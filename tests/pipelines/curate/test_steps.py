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
    repeated_phrase,
    repeats,
    run_on,
    run_steps,
    web_text,
    words_per_punctuation,
    wrong_language,
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


# ---- the checks the steps (and `tanuki synth`'s filters) use ----

TOKYO = ("東京は日本の首都であり、多くの人が暮らしている。交通網が発達しており、電車や地下鉄で便利に移動できる。"
         "観光地も多く、毎年たくさんの旅行者が国内外から訪れる。")
OTHERS = ["京都は長い歴史を持つ古い都で、寺や神社がたくさんある。秋には紅葉が美しく、春には桜を見に多くの人が集まる。",
          "味噌汁は大豆から作る味噌を出汁で溶いた汁物で、豆腐やわかめなどの具を入れて毎日の食卓に並ぶことが多い。"]


@pytest.mark.parametrize(("text", "dropped"), [
    (TOKYO, False),
    ("This is a perfectly ordinary English paragraph about the weather in London today.", True),
    ("asdf qwer zxcv uiop hjkl vbnm tyui ghjk", True),
    ("Ein ganz normaler deutscher Satz über das Wetter in Berlin heute Morgen.", True),
])
def test_the_japanese_score_keeps_japanese_and_drops_english_and_junk(text: str, dropped: bool) -> None:
    assert (wrong_language(text, ["ja"], 0.07) is not None) is dropped


def test_no_languages_means_no_language_filter() -> None:
    assert wrong_language("plain English", [], 0.07) is None


@pytest.mark.parametrize(("text", "dropped"), [
    (TOKYO + TOKYO, True),  # the whole 80-odd-character passage twice: over 60 characters repeated
    ("あ" * 61, True),  # a repeat overlapping itself counts
    ("あ" * 60, False),
    (TOKYO + "".join(OTHERS), False),
])
def test_longest_repeated_phrase(text: str, dropped: bool) -> None:
    assert (repeated_phrase(text, 59) is not None) is dropped


def test_words_per_punctuation_counts_mecab_words() -> None:
    assert words_per_punctuation("今日は晴れ。") == pytest.approx(3.0)  # 今日 / は / 晴れ, one 。
    run_on_text = "今日" + "は晴れで明日も晴れで明後日も晴れで" * 6
    assert run_on(run_on_text, 40) is not None and run_on(TOKYO, 40) is None

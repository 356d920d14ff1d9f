"""Template imitations of LLM-rewritten ("synthetic") documents.

LLM rewriting pipelines for synthetic pretraining data ask a model to
recast source paragraphs as Q&A, summaries, letters, interviews, news
articles or reports. Tests and the demo cannot run a model, so this module
produces documents with the same *shape*: the seed paragraph's sentences
are rearranged into each style's frame. The
content is only as good as the seed prose, which is the point: downstream
stages (dedup, filtering, tokenization, mixing) get realistic-looking input
without any network access or GPU.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from . import en_templates as en
from . import ja_templates as ja
from .common import en_date, ja_date, pick, random_date, season_of, split_sentences

_LABEL = re.compile(r"^【[^】]*】")  # a leading "【お知らせ】"-style tag
MIN_CHARS = {"ja": 12, "en": 30}  # shorter sentences are skipped as key points


def _sentences(paragraph: str, lang: str) -> list[str]:
    """Sentences of ``paragraph`` without a leading bracketed label."""
    return split_sentences(_LABEL.sub("", paragraph).strip(), lang)


def _key_points(sentences: list[str], lang: str, k: int = 3) -> list[str]:
    """Up to ``k`` informative sentences: the first, the last, then the longest others, in text order."""
    idx = [i for i, s in enumerate(sentences) if len(s) >= MIN_CHARS[lang]] or list(range(len(sentences)))
    chosen = [idx[0]] + ([idx[-1]] if len(idx) > 1 else [])
    rest = sorted(idx[1:-1], key=lambda i: (-len(sentences[i]), i))
    chosen += rest[: max(0, k - len(chosen))]
    return [sentences[i] for i in sorted(chosen)]


def _chunks(sentences: list[str], parts: int) -> list[list[str]]:
    """Split into ``parts`` consecutive non-empty runs (fewer if too short)."""
    parts = max(1, min(parts, len(sentences)))
    size, extra = divmod(len(sentences), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(sentences[start:end])
        start = end
    return out


# --------------------------------------------------------------------------- Japanese styles

JA_OPENERS = ("まず、簡単にお話を聞かせていただけますか。", "今日はどんなお話をうかがえるのでしょうか。",
              "最初に、テーマについて教えてください。")
JA_FOLLOW_UPS = ("具体的には、どういうことでしょうか。", "なるほど。ほかに印象に残っていることはありますか。",
                 "それは興味深いですね。もう少し詳しく聞かせてください。", "それから、どうなりましたか。")
JA_SEASON_GREETINGS = {"spring": ("春暖の候、", "新緑の候、"), "summer": ("盛夏の候、", "暑さ厳しき折、"),
                       "autumn": ("秋冷の候、", "紅葉の美しい季節となりました。"), "winter": ("寒さ厳しき折、", "初冬の候、")}
JA_REFLECTIONS = ("ふと、以前ご一緒した旅のことを思い出しました", "身近な暮らしの中にも、学ぶことが多いと感じました",
                  "皆さまのお元気な顔がふと目に浮かびました", "久しぶりに、ゆっくりと考える時間を持てました")


def ja_qa(rng: random.Random, para: str, sents: list[str]) -> str:
    points = _key_points(sents, "ja")
    body = "\n".join(f"{i}. {s}" for i, s in enumerate(points, 1))
    return (f"ユーザー：次の文章を読んで、大事なポイントを{len(points)}つにまとめてください。\n\n{para}\n\n"
            f"アシスタント：この文章のポイントは、次の{len(points)}つです。\n{body}\n"
            "ほかに詳しく知りたい点があれば、お気軽にお尋ねください。")


def ja_summary(rng: random.Random, para: str, sents: list[str]) -> str:
    summary = "".join(_key_points(sents, "ja", 2))
    return (f"以下の文章を要約してください。\n\n{para}\n\n"
            f"【要約】{summary}\n（原文{len(para)}字を{len(summary)}字にまとめました）")


def ja_letter(rng: random.Random, para: str, sents: list[str]) -> str:
    d = random_date(rng)
    greeting = pick(rng, JA_SEASON_GREETINGS[season_of(d.month)])
    return (f"{ja.person(rng)}様\n\n{greeting}いかがお過ごしでしょうか。"
            "先日、次のような文章を読み、ぜひお伝えしたいと思い筆をとりました。\n\n"
            f"{para}\n\n読みながら、{pick(rng, JA_REFLECTIONS)}。"
            f"どうぞお体を大切になさってください。\n\n{ja_date(d)}\n{ja.person(rng)}")


def ja_interview(rng: random.Random, para: str, sents: list[str]) -> str:
    guest = pick(rng, ja.SURNAMES)
    qs = [pick(rng, JA_OPENERS), *rng.sample(list(JA_FOLLOW_UPS), 2)]
    turns = [f"聞き手：{q}\n{guest}：{''.join(chunk)}" for q, chunk in zip(qs, _chunks(sents, 3), strict=False)]
    return f"【インタビュー】{guest}さんに聞く\n" + "\n".join(turns) + "\n聞き手：本日はありがとうございました。"


def ja_news(rng: random.Random, para: str, sents: list[str]) -> str:
    place = ja.town(rng)
    d = random_date(rng)
    return (f"【{place}＝{ja_date(d, False)}】{sents[0]}\n{''.join(sents[1:])}\n"
            f"（{pick(rng, ja.SURNAMES)}記者）")


def ja_report(rng: random.Random, para: str, sents: list[str]) -> str:
    parts = _chunks(sents, 3)
    labels = ("1. 概要", "2. 詳細", "3. 所感")
    body = "\n".join(f"{label}\n{''.join(part)}" for label, part in zip(labels, parts, strict=False))
    return f"報告書\n{body}\n以上\n作成：{ja.person(rng)}　作成日：{ja_date(random_date(rng))}"


# --------------------------------------------------------------------------- English styles

EN_OPENERS = ("Could you start by telling us what this is about?", "Where does the story begin?",
              "Thanks for joining us. How would you introduce the topic?")
EN_FOLLOW_UPS = ("What happened next?", "Is there anything else that stayed with you?",
                 "That's interesting. Could you say a little more?", "And how did things turn out?")
EN_REFLECTIONS = ("It made me think of the long walks we used to take.",
                  "It reminded me of your kitchen on Sunday mornings.",
                  "I thought you would enjoy it as much as I did.",
                  "It put me in mind of that summer by the sea.")


def en_qa(rng: random.Random, para: str, sents: list[str]) -> str:
    points = _key_points(sents, "en")
    body = "\n".join(f"{i}. {s}" for i, s in enumerate(points, 1))
    return (f"User: Read the following passage and list its {len(points)} main points.\n\n{para}\n\n"
            f"Assistant: Here are the main points:\n{body}\n"
            "Let me know if you would like more detail on any of them.")


def en_summary(rng: random.Random, para: str, sents: list[str]) -> str:
    summary = " ".join(_key_points(sents, "en", 2))
    return (f"Summarize the following text.\n\n{para}\n\n"
            f"Summary: {summary}\n({len(para.split())} words reduced to {len(summary.split())}.)")


def en_letter(rng: random.Random, para: str, sents: list[str]) -> str:
    return (f"Dear {pick(rng, en.FIRST_NAMES)},\n\nI came across this passage the other day and thought of you:\n\n"
            f"{para}\n\n{pick(rng, EN_REFLECTIONS)} I hope you are keeping well.\n\n"
            f"Best wishes,\n{en.person(rng)}\n{en_date(random_date(rng))}")


def en_interview(rng: random.Random, para: str, sents: list[str]) -> str:
    guest = en.person(rng)
    qs = [pick(rng, EN_OPENERS), *rng.sample(list(EN_FOLLOW_UPS), 2)]
    turns = [f"Interviewer: {q}\n{guest}: {' '.join(chunk)}" for q, chunk in zip(qs, _chunks(sents, 3), strict=False)]
    return f"Interview with {guest}\n" + "\n".join(turns) + "\nInterviewer: Thank you for your time."


def en_news(rng: random.Random, para: str, sents: list[str]) -> str:
    return (f"{en.town(rng).upper()}, {en_date(random_date(rng))} - {sents[0]}\n{' '.join(sents[1:])}\n"
            f"Reporting by {en.person(rng)}.")


def en_report(rng: random.Random, para: str, sents: list[str]) -> str:
    labels = ("1. Overview", "2. Details", "3. Observations")
    body = "\n".join(f"{label}\n{' '.join(part)}" for label, part in zip(labels, _chunks(sents, 3), strict=False))
    return f"Report\n{body}\nPrepared by {en.person(rng)}, {en_date(random_date(rng))}."


Style = Callable[[random.Random, str, list[str]], str]
STYLES: dict[str, tuple[tuple[str, Style], ...]] = {
    "ja": (("qa", ja_qa), ("summary", ja_summary), ("letter", ja_letter),
           ("interview", ja_interview), ("news", ja_news), ("report", ja_report)),
    "en": (("qa", en_qa), ("summary", en_summary), ("letter", en_letter),
           ("interview", en_interview), ("news", en_news), ("report", en_report)),
}


def rewrite(rng: random.Random, paragraph: str, lang: str, count: int = 1) -> list[str]:
    """Rewrite one seed paragraph into ``count`` different, randomly chosen styles."""
    sentences = _sentences(paragraph, lang)
    return [style(rng, paragraph, sentences) for _, style in rng.sample(STYLES[lang], count)]

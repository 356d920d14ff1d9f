"""The synthetic-data prompts (Japanese, written for tanuki) and the shipped persona lists (pure).

Rewrites ask for every piece of information of the source, in Japanese, without headings; dialogues
have the model first write a question as a persona, then answer it "plan first, then step by step".
"""

from __future__ import annotations

import functools
from pathlib import Path

DATA = Path(__file__).parent / "data"

STYLES: dict[str, str] = {
    "logical": "論理的に筋道を立てて説明する文章",
    "qa": "質問と回答を交互に並べたQ&A",
    "essay": "筆者の考察を交えたエッセイ",
    "news": "新聞のニュース記事",
    "report": "事実を整理した報告書",
    "story": "登場人物が出てくる物語",
    "summary": "要点を簡潔にまとめた要約",
    "letter": "知人に宛てた手紙",
    "review": "長所と短所を評価するレビュー",
    "interview": "聞き手と専門家のインタビュー",
    "instructions": "順を追った手順の説明",
    "textbook": "学生向けの教科書の一節",
    "dialogue": "二人の人物の対話",
    "blog": "個人のブログ記事",
    "speech": "聴衆に語りかけるスピーチ原稿",
    "manual": "利用者向けのマニュアル",
    "guide": "初心者向けの案内・ガイド",
    "recipe": "材料と手順からなるレシピ風の文章",
    "poem": "内容を保った詩",
    "presentation": "発表用のプレゼンテーション原稿",
    "advertisement": "読者に魅力を伝える広告文",
    "announcement": "関係者へのお知らせ",
    "fiction": "内容を題材にしたフィクション",
    "nonfiction": "事実に基づくノンフィクション",
    "conversation": "友人同士のくだけた会話",
}
"""Style name → how the rewrite should read."""

ANSWER_SYSTEM = ("あなたは誠実で優秀なアシスタントです。質問に答える前に、まず解き方の計画を立て、"
                 "それから一歩ずつ順を追って考え、最後に結論をはっきり述べてください。日本語で答えてください。")


def rewrite_messages(text: str, style: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": (
        f"次の文章を「{STYLES[style]}」の形式で書き直してください。元の文章に含まれる情報はすべて含めてください。"
        "日本語で書き、見出しは付けず、書き直した文章だけを出力してください。\n\n"
        f"文章:\n{text}")}]


def translate_messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"次の文章を自然な英語に翻訳してください。翻訳だけを出力してください。\n\n{text}"}]


def question_messages(persona: str, personality: str, task: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"あなたは{persona}で、{personality}な性格です。"},
            {"role": "user", "content": (
                f"あなたの仕事や暮らしの中で出てきそうな、「{task}」が必要になる難しい質問を一つ考えてください。"
                "答えるのに必要な条件や数値は質問の中に書き、質問文だけを日本語で出力してください。")}]


def answer_messages(conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    """The answerer's view of a dialogue so far (its own system prompt, not recorded)."""
    return [{"role": "system", "content": ANSWER_SYSTEM}, *conversation]


def _lines(name: str) -> list[str]:
    return [line.strip() for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@functools.cache
def shipped(name: str) -> tuple[str, ...]:
    """A shipped list: ``occupations``, ``personalities``, ``tasks`` or ``followups``."""
    return tuple(_lines(f"{name}.txt"))

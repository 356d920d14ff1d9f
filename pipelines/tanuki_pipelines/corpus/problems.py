"""Arithmetic word problems with checkable answers, in Japanese and English.

Each problem kind is a row of data: the operation, the question template,
the unit of the answer and the ranges of the two operands. The generator
returns the operands and the answer alongside the text, so tests can verify
that every answer printed in the corpus is arithmetically correct.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable
from typing import NamedTuple

from .common import pick

OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.floordiv,
}
JA_SYMBOLS = {"+": "＋", "-": "－", "*": "×", "/": "÷"}
EN_SYMBOLS = {"+": "+", "-": "-", "*": "x", "/": "/"}


class WordProblem(NamedTuple):
    text: str
    a: int
    b: int
    op: str
    answer: int
    unit: str
    lang: str


class _Kind(NamedTuple):
    op: str
    template: str
    unit: str
    a_range: tuple[int, int]  # for "/" this is the range of the quotient
    b_range: tuple[int, int]
    step: int = 1  # operands are multiples of this (prices in tens of yen, ...)


JA_KINDS = (
    _Kind("+", "{name}さんは{snack}を{a}個持っています。友だちから{b}個もらいました。{snack}は全部で何個になりましたか。", "個", (3, 30), (2, 20)),
    _Kind("+", "{town}図書館には、午前中に{a}人、午後に{b}人の利用者が来ました。この日の利用者は合わせて何人ですか。", "人", (40, 300), (30, 300)),
    _Kind("+", "{name}さんの町の小学校には、男子が{a}人、女子が{b}人います。全校児童は何人ですか。", "人", (80, 400), (80, 400)),
    _Kind("-", "{name}さんは{a}円持って買い物に行き、{b}円の{good}を買いました。残りはいくらですか。", "円", (1000, 5000), (120, 990), 10),
    _Kind("-", "全部で{a}ページある本を、{name}さんはきのうまでに{b}ページ読みました。残りは何ページですか。", "ページ", (150, 480), (20, 140)),
    _Kind("-", "{town}駅から{a}mはなれた公園に向かって、{name}さんは{b}m歩きました。公園まであと何mですか。", "m", (800, 3000), (100, 790), 10),
    _Kind("*", "1個{a}円の{snack}を{b}個買うと、代金はいくらになりますか。", "円", (30, 250), (2, 12), 10),
    _Kind("*", "{name}さんは毎日{a}分ずつ{practice}の練習をします。{b}日間では合計何分練習することになりますか。", "分", (10, 45), (3, 14), 5),
    _Kind("*", "時速{a}kmで走る{vehicle}が{b}時間走ると、何km進みますか。", "km", (30, 90), (2, 6), 5),
    _Kind("/", "{snack}が{a}個あります。{b}人で同じ数ずつ分けると、1人何個になりますか。", "個", (2, 12), (2, 9)),
    _Kind("/", "長さ{a}mのロープを{b}mずつに切ると、何本できますか。", "本", (3, 15), (2, 8)),
    _Kind("/", "{name}さんのクラスの{a}人が、{b}人ずつのグループに分かれます。グループはいくつできますか。", "グループ", (3, 8), (3, 6)),
)

EN_KINDS = (
    _Kind("+", "{name} has {a} {snack}. Then a friend shares {b} more. "
               "How many {snack} does {name} have now?", "", (3, 30), (2, 20)),
    _Kind("+", "The {town} library had {a} visitors in the morning and {b} in the afternoon. "
               "How many visitors came that day?", "visitors", (40, 300), (30, 300)),
    _Kind("-", "{name} had {a} dollars and spent {b} dollars on {good}. "
               "How many dollars are left?", "dollars", (40, 200), (5, 39)),
    _Kind("-", "A book has {a} pages. {name} has already read {b} pages. "
               "How many pages are left to read?", "pages", (150, 480), (20, 140)),
    _Kind("-", "The trail to {town} Lake is {a} meters long. {name} has walked {b} meters. "
               "How many meters remain?", "meters", (800, 3000), (100, 790), 10),
    _Kind("*", "One {item} costs {a} cents. "
               "How many cents do {b} of them cost?", "cents", (20, 95), (2, 12), 5),
    _Kind("*", "{name} practices {practice} for {a} minutes every day. "
               "How many minutes is that over {b} days?", "minutes", (10, 45), (3, 14), 5),
    _Kind("*", "A {vehicle} travels at {a} kilometers per hour. "
               "How far does it go in {b} hours?", "kilometers", (30, 90), (2, 6), 5),
    _Kind("/", "There are {a} {snack} to share equally among {b} children. "
               "How many does each child get?", "", (2, 12), (2, 9)),
    _Kind("/", "A rope {a} meters long is cut into pieces {b} meters long. "
               "How many pieces are there?", "pieces", (3, 15), (2, 8)),
    _Kind("/", "A class of {a} students splits into teams of {b}. "
               "How many teams are there?", "teams", (3, 8), (3, 6)),
)

JA_FILL = {
    "name": ("さくら", "けんた", "ゆうと", "みお", "はると", "あおい", "そうた", "ひなた", "りく", "ことね"),
    "snack": ("あめ", "みかん", "クッキー", "どんぐり", "シール", "おにぎり", "りんご", "ビー玉"),
    "good": ("ノート", "えんぴつ", "絵本", "お弁当", "花の種", "ハンカチ"),
    "practice": ("ピアノ", "なわとび", "書道", "漢字", "けん玉", "水泳"),
    "vehicle": ("バス", "自動車", "トラック", "電車"),
    "town": ("みどり町", "北浦", "桜台", "川辺", "若葉台", "港町"),
}

EN_FILL = {
    "name": ("Maya", "Leo", "Hana", "Omar", "Ruby", "Theo", "Iris", "Sam", "Nina", "Jonah"),
    "snack": ("apples", "marbles", "stickers", "cookies", "acorns", "crayons", "plums"),
    "item": ("pencil", "notebook", "postcard", "sticker sheet", "bread roll", "eraser"),
    "good": ("a board game", "a pair of gloves", "a picture book", "garden seeds", "a lunch box"),
    "practice": ("the piano", "the violin", "juggling", "handwriting", "swimming"),
    "vehicle": ("bus", "truck", "car", "train"),
    "town": ("Millbrook", "Cedarford", "Ashdale", "Foxhaven", "Stonebridge"),
}


def _operands(rng: random.Random, kind: _Kind) -> tuple[int, int, int]:
    """Return (a, b, answer); division is always exact, subtraction positive."""
    step = kind.step
    if kind.op == "/":
        b = rng.randint(*kind.b_range)
        quotient = rng.randint(*kind.a_range)
        return b * quotient, b, quotient
    a = rng.randint(kind.a_range[0] // step, kind.a_range[1] // step) * step
    if kind.op == "-":  # both quantities share the unit, so both use the step
        b = rng.randint(kind.b_range[0] // step, kind.b_range[1] // step) * step
        if a <= b:
            a = b + step * rng.randint(1, 20)
    else:  # b counts things (items, days, hours, people)
        b = rng.randint(*kind.b_range)
    return a, b, OPS[kind.op](a, b)


def generate_problem(rng: random.Random, lang: str = "ja") -> WordProblem:
    """One word problem; ``answer == OPS[op](a, b)`` always holds."""
    kinds, fill = (JA_KINDS, JA_FILL) if lang == "ja" else (EN_KINDS, EN_FILL)
    kind = pick(rng, kinds)
    a, b, answer = _operands(rng, kind)
    slots = {key: pick(rng, values) for key, values in fill.items()}
    text = kind.template.format(a=a, b=b, **slots)
    unit = kind.unit or (slots.get("snack", "") if lang == "en" else "")
    return WordProblem(text, a, b, kind.op, answer, unit, lang)


def explain(problem: WordProblem) -> str:
    """Answer line plus the worked equation, in the problem's language."""
    p = problem
    if p.lang == "ja":
        sym = JA_SYMBOLS[p.op]
        return f"式：{p.a}{sym}{p.b}＝{p.answer}\n答え：{p.answer}{p.unit}"
    sym = EN_SYMBOLS[p.op]
    return f"Working: {p.a} {sym} {p.b} = {p.answer}\nAnswer: {p.answer} {p.unit}".rstrip()


def problem_set_doc(rng: random.Random, lang: str, count: int) -> tuple[str, list[WordProblem]]:
    """A worksheet-style document holding ``count`` problems with answers."""
    problems = [generate_problem(rng, lang) for _ in range(count)]
    if lang == "ja":
        head = pick(rng, ("【算数の練習問題】", "【文章題にチャレンジ】", "【今日の計算ドリル】"))
        body = [f"問{i}　{p.text}\n{explain(p)}" for i, p in enumerate(problems, 1)]
        tail = "式を書いてから計算すると、まちがいに気づきやすくなります。"
    else:
        head = pick(rng, ("Arithmetic practice", "Word problems for today", "Math warm-up"))
        body = [f"Problem {i}. {p.text}\n{explain(p)}" for i, p in enumerate(problems, 1)]
        tail = "Tip: write the number sentence first, then calculate."
    return "\n\n".join([head, *body, tail]), problems

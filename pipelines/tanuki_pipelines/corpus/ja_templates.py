"""Japanese document templates: fictional towns, recipes, timetables, dialogues...

Every function takes a ``random.Random`` and returns one document. Word
lists and sentence patterns live in module-level tuples so the code stays
short; all numbers that appear in a document (totals, differences, times,
percentages, change given back) are computed, never typed in by hand.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from fractions import Fraction

from .common import (
    fraction_text,
    halves,
    hhmm,
    ja_date,
    pick,
    pick_n,
    random_date,
    round_to,
    season_of,
)

SURNAMES = (
    "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤",
    "吉田", "山田", "佐々木", "松本", "井上", "木村", "清水", "山崎", "森", "池田",
    "橋本", "石川", "前田", "藤田", "岡田", "後藤", "長谷川", "村上", "近藤", "坂本",
)
GIVEN_NAMES = (
    "健太", "美咲", "翔", "陽菜", "大輔", "由美", "拓也", "さくら", "誠", "恵子",
    "蓮", "結衣", "隆", "直子", "悠斗", "千尋", "和也", "真由美", "康介", "あかり",
)
TOWN_HEADS = ("北", "南", "東", "西", "中", "新", "上", "下", "大", "小", "高", "若",
              "青", "白", "桜", "松", "梅", "竹", "宮", "浜", "朝日", "緑", "星", "鶴")
TOWN_TAILS = ("川", "浦", "野", "原", "山", "田", "沢", "崎", "岡", "森", "島", "谷", "里", "瀬", "見", "井")
TOWN_KINDS = ("町", "村", "市")
PREFECTURES = ("青葉", "白浜", "朝霧", "若草", "星見", "緑川", "東雲", "雲居")
STATIONS = (
    "桜台", "川辺", "中央公園", "市役所前", "港町", "北口", "若葉台", "学園前", "花見坂", "松原",
    "東浜", "西山", "緑町", "大橋", "本町", "湖畔", "新田", "宮の森", "城山", "天神橋",
)
LINES = ("青葉線", "しおかぜ鉄道", "山ノ手電鉄", "みどり川線", "ほしみ線", "はまなす線")


def person(rng: random.Random) -> str:
    return pick(rng, SURNAMES) + pick(rng, GIVEN_NAMES)


def town(rng: random.Random) -> str:
    return pick(rng, TOWN_HEADS) + pick(rng, TOWN_TAILS) + pick(rng, TOWN_KINDS)


def school(rng: random.Random) -> str:
    return pick(rng, TOWN_HEADS) + pick(rng, TOWN_TAILS) + "高校"


def mayor(place: str) -> str:
    """町長 / 村長 / 市長, matching the last character of the place name."""
    return place[-1] + "長"


def office(place: str) -> str:
    return {"町": "町役場", "村": "村役場", "市": "市役所"}[place[-1]]


# --------------------------------------------------------------------------- towns

GEOGRAPHY = ("山あいの盆地", "海沿いの平野", "大きな川の河口付近", "湖のほとり",
             "なだらかな丘陵地帯", "二つの山にはさまれた谷", "火山のふもとの高原")
SPECIALTIES = (
    ("みかん", "日当たりのよい斜面で育てられ、甘みが強いことで知られている"),
    ("緑茶", "朝霧の出やすい気候が、香りのよい茶葉を育てるといわれている"),
    ("和紙", "江戸時代から続く手すきの技法が、今も数軒の工房で受け継がれている"),
    ("地酒", "山からの湧き水を使い、冬のあいだに蔵人たちが仕込んでいる"),
    ("牡蠣", "冬になると町の食堂では「カキフライ定食」が名物になる"),
    ("りんご", "秋の収穫期には、もぎ取り体験に多くの家族連れが訪れる"),
    ("そば", "やせた土地でも育つため、昔から町の暮らしを支えてきた"),
    ("竹細工", "職人の数は減ったものの、若い作り手も少しずつ増えている"),
    ("陶器", "素朴な風合いの器が、最近は若い世代にも人気を集めている"),
    ("干し柿", "晩秋には家々の軒先にずらりと柿がつるされ、町の風物詩となっている"),
    ("わさび", "清らかな沢の水を引き込んだ畑で、一年を通して栽培されている"),
    ("ほたて", "港の朝市では、とれたてを網焼きで味わうことができる"),
)
FESTIVALS = (("桜まつり", 4), ("港まつり", 7), ("花火大会", 8), ("灯ろう流し", 8),
             ("収穫祭", 10), ("紅葉まつり", 11), ("雪まつり", 2), ("田植えまつり", 5))
POPULATION_HUNDREDS = {"村": (20, 150), "町": (60, 400), "市": (300, 3000)}
ORIGINS = ("街道の宿場として栄えた", "川舟の荷揚げ場として開けた", "鉱山の町としてにぎわった",
           "城下町の外れの市場から発展した", "漁師たちが移り住んで開いた")
ISSUES = (
    ("若い世代の流出", "そこで、空き家を改装したお試し住宅を用意し、移住を考えている人に最長1か月貸し出している。"),
    ("空き家の増加", "所有者と借りたい人をつなぐ「空き家バンク」を開設し、これまでに{n}件の契約が成立した。"),
    ("路線バスの減便", "代わりに、予約制の乗り合いタクシーが運行を始め、1日平均{n}人が利用している。"),
    ("農業の担い手不足", "地元の農業公社では、研修生を受け入れて2年間の実習を行う制度を設けており、今年は{n}人が学んでいる。"),
    ("冬場の観光客の落ち込み", "そこで、冬限定の星空観察ツアーを企画したところ、昨シーズンは{n}人が参加した。"),
)


def town_profile(rng: random.Random) -> str:
    name = town(rng)
    (sp1, fact1), (sp2, _) = pick_n(rng, SPECIALTIES, 2)
    festival, month = pick(rng, FESTIVALS)
    issue, action = pick(rng, ISSUES)
    y1 = rng.randint(1990, 2005)
    y2 = rng.randint(2018, 2024)
    p1 = rng.randint(*POPULATION_HUNDREDS[name[-1]]) * 100
    p2 = round_to(p1 * rng.uniform(0.62, 0.95), 10)
    pct = round((p1 - p2) / p1 * 100)
    founded = rng.randint(1600, 1890)
    minutes, bus = rng.randint(20, 90), rng.randint(5, 30)
    visitors = rng.randint(5, 60) * 1000
    crowd = "人口を上回る" if visitors > p2 else "県内外から"
    return "\n".join([
        f"【ふるさと紹介】{name}",
        f"{name}は、{pick(rng, PREFECTURES)}県の{pick(rng, GEOGRAPHY)}に位置する、人口約{p2:,}人のまちである。"
        f"記録に残る最も古い集落は{founded}年ごろのもので、{pick(rng, ORIGINS)}と伝えられている。",
        f"特産品は{sp1}と{sp2}で、特に{sp1}については、{fact1}。毎年{month}月には「{name}{festival}」が開かれ、"
        f"{crowd}約{visitors:,}人の見物客でにぎわう。",
        f"交通は、県の中心駅から{pick(rng, LINES)}で約{minutes}分、さらに路線バスに乗りかえて{bus}分ほど。"
        f"合わせて{minutes + bus}分あれば{name}の中心部に着く。",
        f"人口は{y1}年の{p1:,}人から{y2}年には{p2:,}人となり、この{y2 - y1}年間で約{pct}%減った。"
        f"いま{name}が最も力を入れているのは、{issue}への対策だ。" + action.format(n=rng.randint(8, 120)),
    ])


# --------------------------------------------------------------------------- recipes

# (dish, [(ingredient, amount for 2 servings, unit)], [steps], tip). Units:
# "g"/"ml" are rounded to tens, "大さじ"/"小さじ" and counters to halves
# (whole numbers for WHOLE_ONLY items), "少々"/"適量" are not scaled. A step
# is either plain text or (text with "{t}", min minutes, max minutes).
Step = str | tuple[str, int, int]
Recipe = tuple[str, list[tuple[str, float | None, str]], list[Step], str]
RECIPES: tuple[Recipe, ...] = (
    ("親子丼",
     [("鶏もも肉", 200, "g"), ("玉ねぎ", 0.5, "個"), ("卵", 3, "個"), ("だし汁", 150, "ml"),
      ("しょうゆ", 2, "大さじ"), ("みりん", 2, "大さじ"), ("砂糖", 1, "小さじ"), ("ご飯", 2, "杯")],
     ["鶏肉は一口大に切り、玉ねぎは薄切りにする。",
      ("小さめのフライパンにだし汁と調味料を入れて火にかけ、煮立ったら鶏肉と玉ねぎを加えて{t}分ほど煮る。", 5, 8),
      "溶き卵を回し入れ、ふたをして卵が半熟になったら火を止める。",
      "器に盛ったご飯の上にのせ、好みで三つ葉を散らす。"],
     "卵は一度に全部入れず、2回に分けて入れるとふんわり仕上がる。"),
    ("豚汁",
     [("豚バラ肉", 120, "g"), ("大根", 150, "g"), ("にんじん", 0.5, "本"), ("ごぼう", 0.5, "本"),
      ("こんにゃく", 0.5, "枚"), ("だし汁", 600, "ml"), ("味噌", 2.5, "大さじ"), ("ごま油", 1, "小さじ")],
     ["大根とにんじんはいちょう切り、ごぼうはささがきにして水にさらす。こんにゃくは手でちぎる。",
      "鍋にごま油を熱して豚肉を炒め、色が変わったら野菜とこんにゃくを加えてさらに炒める。",
      ("だし汁を加えてアクを取りながら、野菜がやわらかくなるまで{t}分ほど煮る。", 10, 20),
      "火を弱めて味噌を溶き入れ、沸騰する直前に火を止める。"],
     "仕上げに七味唐辛子や刻みねぎを加えると、香りがよくなる。"),
    ("卵焼き",
     [("卵", 3, "個"), ("砂糖", 1, "大さじ"), ("しょうゆ", 0.5, "小さじ"), ("水", 2, "大さじ"),
      ("サラダ油", None, "適量")],
     ["ボウルに卵を割りほぐし、砂糖、しょうゆ、水を加えてよく混ぜる。",
      "卵焼き器を中火で熱して油をなじませ、卵液の3分の1を流し入れる。",
      "半熟になったら奥から手前に巻き、空いたところに油を塗って残りの卵液を流す。これを2〜3回くり返す。",
      ("巻きすで形を整え、{t}分ほど置いてから切り分ける。", 2, 5)],
     "火が強すぎると焦げやすいので、最初から最後まで中火以下を保つとよい。"),
    ("鮭のホイル焼き",
     [("生鮭", 2, "切れ"), ("玉ねぎ", 0.5, "個"), ("しめじ", 100, "g"), ("バター", 20, "g"),
      ("塩こしょう", None, "少々"), ("ポン酢", None, "適量")],
     ["鮭に塩こしょうをふって10分ほど置き、出てきた水分をキッチンペーパーでふき取る。",
      "アルミホイルに薄切りにした玉ねぎを敷き、鮭をのせ、ほぐしたしめじとバターをのせて包む。",
      ("フライパンに並べて水を1cmほど注ぎ、ふたをして中火で{t}分ほど蒸し焼きにする。", 10, 15),
      "ホイルを開いてポン酢をかけ、熱いうちにいただく。"],
     "しめじの代わりにえのきやまいたけを使ってもおいしい。"),
    ("カレーライス",
     [("豚こま切れ肉", 150, "g"), ("玉ねぎ", 1, "個"), ("にんじん", 0.5, "本"), ("じゃがいも", 1, "個"),
      ("水", 350, "ml"), ("カレールウ", 2, "皿分"), ("サラダ油", 1, "大さじ"), ("ご飯", 2, "皿")],
     ["野菜は食べやすい大きさに切る。玉ねぎはくし形、にんじんとじゃがいもは乱切りにする。",
      "鍋に油を熱して肉を炒め、続けて野菜を加えて玉ねぎがしんなりするまで炒める。",
      ("水を加えて沸騰したらアクを取り、ふたをして弱火で{t}分ほど煮込む。", 15, 25),
      "いったん火を止めてルウを割り入れて溶かし、再び弱火でとろみがつくまで煮る。"],
     "一晩置くと味がなじむが、夏場は冷蔵庫で保存し、翌日はしっかり温め直すこと。"),
    ("鶏の照り焼き",
     [("鶏もも肉", 300, "g"), ("しょうゆ", 2, "大さじ"), ("みりん", 2, "大さじ"), ("酒", 1, "大さじ"),
      ("砂糖", 1, "小さじ"), ("サラダ油", 1, "小さじ")],
     ["鶏肉は余分な脂を取り除き、フォークで皮に数か所穴をあける。調味料は合わせておく。",
      "フライパンに油をひき、鶏肉を皮目から入れて中火で焼く。",
      ("皮がこんがりしたら裏返し、ふたをして弱火で{t}分ほど蒸し焼きにする。", 5, 8),
      "余分な油をふき取り、合わせた調味料を加えて、煮からめながら照りを出す。"],
     "皮目をしっかり焼くことで、パリッとした食感になる。"),
    ("ホットケーキ",
     [("薄力粉", 150, "g"), ("ベーキングパウダー", 2, "小さじ"), ("砂糖", 2, "大さじ"), ("卵", 1, "個"),
      ("牛乳", 120, "ml"), ("バター", None, "適量")],
     ["薄力粉とベーキングパウダーを合わせてふるっておく。",
      "ボウルに卵と砂糖を入れて泡立て器で混ぜ、牛乳を加えてさらに混ぜる。",
      ("粉を加えてさっくり混ぜ、ぬれぶきんをかけて{t}分ほど休ませる。", 10, 30),
      "弱めの中火で熱したフライパンに生地を流し、表面にぷつぷつと穴があいたら裏返して焼く。"],
     "混ぜすぎると膨らみにくくなるので、粉っぽさが少し残る程度でやめるのがコツ。"),
    ("ポテトサラダ",
     [("じゃがいも", 2, "個"), ("きゅうり", 0.5, "本"), ("ハム", 2, "枚"), ("マヨネーズ", 3, "大さじ"),
      ("酢", 1, "小さじ"), ("塩こしょう", None, "少々")],
     [("じゃがいもは皮をむいて一口大に切り、水からゆでて竹串がすっと通るまで{t}分ほど加熱する。", 10, 15),
      "湯を捨てて鍋をゆすり、水分を飛ばしてから熱いうちにつぶし、酢をふる。",
      "きゅうりは薄い輪切りにして塩もみし、水気をしぼる。ハムは細切りにする。",
      "じゃがいもが冷めたら、きゅうり、ハム、マヨネーズを加えて混ぜ、塩こしょうで味を調える。"],
     "じゃがいもが熱いうちに酢をふっておくと、味がぼやけずに仕上がる。"),
)
COOK_INTROS = (
    "忙しい日でも手軽に作れる{dish}を紹介します。",
    "{name}さんの家で昔から作られている{dish}のレシピです。",
    "冷蔵庫にある材料で作れる、定番の{dish}です。",
    "料理教室の{name}先生に教わった{dish}を、家庭向けに少しアレンジしました。",
)


WHOLE_ONLY = ("卵", "生鮭", "ハム", "ご飯")


def _ja_amount(name: str, amount: float | None, unit: str, scale: float) -> str:
    if amount is None:
        return unit
    value = amount * scale
    if unit in ("g", "ml"):
        return f"{round_to(value, 10)}{unit}"
    count = Fraction(math.ceil(value)) if name in WHOLE_ONLY else halves(value)
    text = fraction_text(count, "と")
    return f"{unit}{text}" if unit in ("大さじ", "小さじ") else f"{text}{unit}"


def timed_steps(rng: random.Random, steps: Sequence[Step]) -> tuple[list[str], int]:
    """Fill each timed step's "{t}" with minutes from its range; return (texts, total minutes)."""
    texts, total = [], 0
    for step in steps:
        if isinstance(step, tuple):
            text, lo, hi = step
            minutes = rng.randint(lo, hi)
            texts.append(text.format(t=minutes))
            total += minutes
        else:
            texts.append(step)
    return texts, total


def recipe(rng: random.Random) -> str:
    dish, ingredients, steps, tip = pick(rng, RECIPES)
    servings = rng.randint(1, 6)
    scale = servings / 2
    lines = [f"【{dish}の作り方（{servings}人分）】",
             pick(rng, COOK_INTROS).format(dish=dish, name=pick(rng, SURNAMES)), "材料："]
    lines += [f"・{name}　{_ja_amount(name, amount, unit, scale)}" for name, amount, unit in ingredients]
    texts, cook = timed_steps(rng, steps)
    lines.append("作り方：")
    lines += [f"{i}. {text}" for i, text in enumerate(texts, 1)]
    prep = rng.randint(5, 20)
    lines.append(f"時間の目安：下ごしらえ{prep}分、調理{cook}分、合計およそ{prep + cook}分。")
    lines.append(f"ポイント：{tip}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- timetables

TRAIN_KINDS = (("普通", "各駅に停車します。"), ("快速", "一部の駅を通過しますので、ご注意ください。"),
               ("区間急行", "途中の一部区間では各駅に停車します。"))


def timetable(rng: random.Random) -> str:
    line = pick(rng, LINES)
    stops = pick_n(rng, STATIONS, rng.randint(5, 8))
    kind, note = pick(rng, TRAIN_KINDS)
    start = rng.randint(5 * 60 + 30, 21 * 60)
    interval = pick(rng, (8, 10, 12, 15, 20, 30))
    t = start
    rows = [f"{stops[0]}駅　{hhmm(t)}発"]
    for stop in stops[1:]:
        t += rng.randint(2, 7)
        rows.append(f"{stop}駅　{hhmm(t)}着")
    total = t - start
    following = "、".join(hhmm(start + interval * k) for k in range(1, 4))
    return "\n".join([
        f"【{line}　{stops[-1]}方面　時刻表（平日）】",
        f"{stops[0]}駅を{hhmm(start)}に出発する{kind}列車の停車駅と到着時刻は、次のとおりです。{note}",
        *rows,
        f"{stops[0]}駅から終点の{stops[-1]}駅までの所要時間は{total}分です。",
        f"この時間帯は約{interval}分おきに運転しており、次の列車は{following}に発車します。",
        "ダイヤは天候や混雑により乱れることがあります。最新の運行情報は駅の掲示板でご確認ください。",
    ])


# --------------------------------------------------------------------------- dialogues


def _dialogue_shop(rng: random.Random, a: str, b: str) -> list[str]:
    item = pick(rng, ("折りたたみ傘", "マグカップ", "手帳", "エプロン", "水筒", "スリッパ"))
    c1, c2 = pick_n(rng, ("紺", "白", "グレー", "緑", "赤", "黄色"), 2)
    price = rng.randint(8, 45) * 100 - pick(rng, (0, 20, 80))
    pay = next(x for x in (1000, 2000, 5000, 10000) if x > price)
    return [
        "店員：いらっしゃいませ。何かお探しですか。",
        f"{a}：{item}を探しているんですが、ありますか。",
        f"店員：はい、こちらにございます。{c1}と{c2}の2色がございます。",
        f"{a}：じゃあ、{c1}のほうをください。おいくらですか。",
        f"店員：税込みで{price:,}円です。袋はご利用になりますか。",
        f"{a}：いえ、エコバッグがあるので大丈夫です。",
        f"店員：かしこまりました。{pay:,}円お預かりします。{pay - price:,}円のお返しです。ありがとうございました。",
    ]


def _dialogue_station(rng: random.Random, a: str, b: str) -> list[str]:
    dest, transfer = pick_n(rng, STATIONS, 2)
    now = rng.randint(6 * 60, 22 * 60)
    wait, ride1, ride2 = rng.randint(2, 9), rng.randint(5, 25), rng.randint(5, 25)
    return [
        f"{a}：すみません、{dest}まで行きたいんですが、どの電車に乗ればいいですか。",
        f"駅員：{dest}でしたら、{rng.randint(1, 6)}番線の{pick(rng, LINES)}にお乗りください。{transfer}で乗り換えです。",
        f"{a}：次の電車は何時ですか。",
        f"駅員：{hhmm(now + wait)}発です。あと{wait}分ほどですね。",
        f"{a}：{dest}まではどのくらいかかりますか。",
        f"駅員：{transfer}まで{ride1}分、乗り換えてから{ride2}分ですので、合わせて{ride1 + ride2}分ほどです。",
        f"{a}：ありがとうございます。助かりました。",
    ]


def _dialogue_work(rng: random.Random, a: str, b: str) -> list[str]:
    topic = pick(rng, ("予算", "スケジュール", "アンケート結果", "新商品の企画", "来期の目標"))
    return [
        f"{a}：{b}さん、明日の会議の資料、もう見ました？",
        f"{b}：まだなんです。何ページくらいありますか。",
        f"{a}：{rng.randint(8, 40)}ページです。特に{topic}のところは、事前に読んでおいたほうがいいと思います。",
        f"{b}：わかりました。今日中に目を通しておきます。会議は何時からでしたっけ。",
        f"{a}：{rng.randint(9, 16)}時からです。場所は{rng.randint(2, 9)}階の第{rng.randint(1, 4)}会議室です。",
        f"{b}：了解です。質問があったら、先にチャットで送っておきますね。",
        f"{a}：助かります。よろしくお願いします。",
    ]


def _dialogue_clinic(rng: random.Random, a: str, b: str) -> list[str]:
    symptom = pick(rng, ("せき", "のどの痛み", "頭痛", "鼻水", "微熱"))
    days, per_day = rng.randint(3, 7), pick(rng, (2, 3))
    return [
        "受付：こんにちは。今日はどうされましたか。",
        f"{a}：{rng.randint(1, 4)}日前から{symptom}があって、なかなか治らないんです。",
        "受付：わかりました。保険証をお願いします。こちらの問診票にご記入ください。",
        f"医師：{a}さん、どうぞ。熱は{rng.randint(365, 379) / 10:.1f}度ですね。のどを見せてください。",
        "医師：少し赤くなっていますが、心配はいりません。軽い風邪でしょう。",
        f"医師：お薬を{days}日分出しておきます。1日{per_day}回、食後に飲んでください。全部で{days * per_day}回分です。",
        f"{a}：ありがとうございました。",
        "医師：お大事に。水分をしっかりとって、今夜は早めに休んでくださいね。",
    ]


def _dialogue_directions(rng: random.Random, a: str, b: str) -> list[str]:
    place = pick(rng, ("市立図書館", "郵便局", "中央病院", "市民プール", "観光案内所", "美術館"))
    mark = pick(rng, ("コンビニ", "銀行", "パン屋", "小さな神社", "ガソリンスタンド"))
    return [
        f"{a}：すみません、{place}はどこにあるかご存じですか。",
        f"{b}：{place}なら、この道をまっすぐ行って、{rng.randint(2, 4)}つ目の信号を"
        f"{pick(rng, ('右', '左'))}に曲がってください。{mark}の隣にありますよ。",
        f"{a}：歩いてどのくらいかかりますか。",
        f"{b}：{rng.randint(5, 15)}分くらいですね。坂道なので、少し疲れるかもしれません。",
        f"{a}：ご親切にありがとうございます。",
        f"{b}：いえいえ。気をつけて。",
    ]


DIALOGUES = (
    ("買い物", _dialogue_shop), ("駅で", _dialogue_station), ("職場で", _dialogue_work),
    ("診療所で", _dialogue_clinic), ("道をたずねる", _dialogue_directions),
)


def dialogue(rng: random.Random) -> str:
    title, make = pick(rng, DIALOGUES)
    a, b = pick_n(rng, SURNAMES, 2)
    return "\n".join([f"【会話練習：{title}】", *make(rng, a, b)])


# --------------------------------------------------------------------------- diaries

# Skies by season, each with the range of the chance of rain (in tens of percent).
SKIES = {
    "spring": (("晴れ", 0, 2), ("晴れ時々くもり", 1, 3), ("くもり", 2, 4), ("くもり一時雨", 4, 6), ("雨", 7, 9)),
    "summer": (("快晴", 0, 1), ("晴れ", 0, 2), ("晴れ夕方から雷雨", 4, 6), ("くもり時々雨", 5, 7), ("雨", 7, 10)),
    "autumn": (("晴れ", 0, 2), ("くもりのち晴れ", 1, 3), ("くもり", 2, 4), ("雨", 7, 9)),
    "winter": (("晴れ", 0, 1), ("くもり", 2, 4), ("雪", 6, 9), ("くもり時々雪", 4, 6), ("晴れ時々くもり", 1, 2)),
}
# Diary events are (time of day, text): 0 morning, 1 daytime, 2 evening, 3 night.
# The chosen events are sorted by that slot so the day reads in order.
DIARY_SEASONAL = {
    "spring": ((0, "近所の公園の桜が、ようやく五分咲きになっていた。"), (1, "衣替えをして、冬物のコートをクリーニングに出した。"),
               (2, "スーパーで新玉ねぎが安かったので、スライスしてサラダにした。"), (1, "花粉がひどく、一日中くしゃみが止まらなかった。")),
    "summer": ((0, "朝から蝉の声がにぎやかだった。"), (2, "冷やし中華を作って、家族でベランダで食べた。"),
               (1, "夕立のあと、空にうっすらと虹がかかった。"), (3, "エアコンの設定温度を28℃にして、扇風機を併用した。")),
    "autumn": ((2, "帰り道、どこからか金木犀の香りがした。"), (2, "スーパーでさんまが1尾{p}円だったので、塩焼きにした。"),
               (2, "日が短くなり、5時過ぎにはもう暗くなっていた。"), (3, "図書館で借りた推理小説を一気に読み終えた。")),
    "winter": ((0, "朝、ベランダの植木鉢に薄く氷が張っていた。"), (2, "夕食は寄せ鍋にして、しめは雑炊にした。"),
               (3, "年賀状の準備を少しずつ始めた。"), (0, "手袋を忘れて出かけてしまい、指先がかじかんだ。")),
}
DIARY_COMMON = (
    (0, "午前中に部屋の掃除をして、たまっていた洗濯物を片付けた。"), (1, "昼休みに同僚と駅前の新しい定食屋に行った。"),
    (2, "久しぶりに実家の母と{m}分ほど電話で話した。"), (2, "夜は録画しておいたドキュメンタリー番組を見た。"),
    (3, "寝る前に英単語を{n}個だけ覚えた。"), (3, "歩数計を見ると、今日は{s:,}歩も歩いていた。"),
    (1, "仕事の資料づくりが思ったより進まず、少し焦っている。"), (1, "近所の人に家庭菜園でとれたきゅうりをもらった。"),
    (0, "いつもより30分早く起きて、近くの川沿いを散歩した。"), (1, "午後は図書館で調べものをした。"),
)
DIARY_ENDINGS = ("明日は早起きしたい。", "今日も一日、おつかれさまでした。", "来週の予定を手帳に書き込んでから寝る。",
                 "小さなことでも、記録しておくと後で読み返すのが楽しい。", "おやすみなさい。")
DIARY_TEMPS = {"winter": (3, 12), "spring": (12, 23), "summer": (26, 36), "autumn": (14, 25)}


def diary(rng: random.Random) -> str:
    d = random_date(rng)
    season = season_of(d.month)
    high = rng.randint(*DIARY_TEMPS[season])
    low = high - rng.randint(4, 10)
    events = pick_n(rng, DIARY_SEASONAL[season], 2) + pick_n(rng, DIARY_COMMON, 3)
    events.sort(key=lambda event: event[0])  # stable: ties keep their random order
    body = "".join(text.format(p=rng.randint(9, 25) * 10, m=rng.randint(10, 60), n=rng.randint(5, 20),
                               s=rng.randint(3000, 15000)) for _, text in events)
    sky = pick(rng, SKIES[season])[0]
    return f"{ja_date(d)}　{sky}　最高{high}℃／最低{low}℃\n{body}\n{pick(rng, DIARY_ENDINGS)}"


# --------------------------------------------------------------------------- news, notices, weather

# (facility, feature with {n}, range of n)
FACILITIES = (("図書館", "閲覧席は約{n}席あり、子ども向けの読み聞かせスペースも設けられた", 60, 300),
              ("子育て支援センター", "屋内の遊び場と一時預かりの部屋があり、定員は{n}人", 20, 60),
              ("道の駅", "地元の農家約{n}軒が野菜や加工品を出品している", 40, 250),
              ("市民体育館", "観客席は約{n}席で、災害時には避難所としても使われる", 300, 1500))
# (club, range of the losing score, range of the winning margin)
CLUBS = (("サッカー", (0, 2), (1, 3)), ("バスケットボール", (45, 75), (1, 15)),
         ("ハンドボール", (18, 28), (1, 6)), ("ソフトボール", (0, 5), (1, 4)))


def _opening_news(rng: random.Random, name: str) -> str:
    fac, feature, lo, hi = pick(rng, FACILITIES)
    d = random_date(rng)
    return (f"【{name}】新しい{fac}がオープン\n{name}の中心部に{ja_date(d, False)}、新しい{fac}が開館した。"
            f"総工費は約{rng.randint(3, 40)}億円。{feature.format(n=rng.randint(lo, hi))}。"
            f"開館初日には{rng.randint(300, 3000):,}人が訪れ、テープカットには{mayor(name)}や地元の小学生が参加した。"
            f"{pick(rng, SURNAMES)}{mayor(name)}は「長く愛される施設にしていきたい」とあいさつした。")


def _festival_news(rng: random.Random, name: str) -> str:
    fest, month = pick(rng, FESTIVALS)
    d = random_date(rng).replace(month=month, day=rng.randint(1, 28))
    n1 = rng.randint(80, 600) * 100
    n2 = n1 + rng.randint(-30, 40) * 100 or n1 + 100  # never exactly equal
    verb = "上回った" if n2 > n1 else "下回った"
    return (f"【{name}】{fest}、来場者{n2:,}人\n{ja_date(d)}までの{rng.randint(2, 4)}日間にわたって開かれた"
            f"「{name}{fest}」の来場者数がまとまり、延べ{n2:,}人と、昨年の{n1:,}人を{abs(n2 - n1):,}人{verb}。"
            f"実行委員会の{person(rng)}さんは「天候にも左右されたが、多くの方に楽しんでいただけた。"
            f"来年はさらに内容を充実させたい」と話している。")


def _sports_news(rng: random.Random, name: str) -> str:
    club, losing, margin = pick(rng, CLUBS)
    ours, theirs = school(rng), school(rng)
    low = rng.randint(*losing)
    high = low + rng.randint(*margin)
    d = random_date(rng)
    return (f"【{name}】{ours}{club}部、県大会で優勝\n{ja_date(d)}に行われた県大会の決勝で、"
            f"{name}の{ours}は{theirs}と対戦し、{high}対{low}で勝利した。同校の優勝は{rng.randint(3, 30)}年ぶり。"
            f"主将の{person(rng)}さんは「最後まで声をかけ合ったことが勝因だと思う。次の地方大会でも全力を尽くしたい」"
            "と喜びを語った。")


def news(rng: random.Random) -> str:
    make = pick(rng, (_opening_news, _festival_news, _sports_news))
    return make(rng, town(rng))


NOTICES = (
    ("断水のお知らせ", "水道管の工事のため、下記の日時に断水します。",
     "断水の前に、飲み水や生活用水をくみ置きしてください。作業の進み具合によって、時間が前後することがあります。"),
    ("健康診断のご案内", "40歳以上の方を対象に、健康診断を実施します。",
     "当日は朝食をとらずにお越しください。持ち物：受診券、保険証、問診票。"),
    ("避難訓練の実施について", "地震と火災を想定した地域の避難訓練を行います。",
     "訓練開始の合図としてサイレンを鳴らしますが、実際の災害ではありませんので、あわてずに行動してください。"),
    ("粗大ごみの回収について", "家具や自転車などの粗大ごみを、予約制で回収します。",
     "回収には事前の申し込みが必要です。1点につき{fee}円の処理券を購入し、よく見える場所に貼ってください。"),
)
VENUES = ("公民館", "小学校の体育館", "市民センター", "第二集会所", "中央公園")


def notice(rng: random.Random) -> str:
    title, lead, detail = pick(rng, NOTICES)
    place, d = town(rng), random_date(rng)
    start = rng.randint(8, 14)
    hours = rng.randint(2, 5)
    return "\n".join([
        f"【{title}】", f"{place}にお住まいの皆さまへ。{lead}",
        f"日時：{ja_date(d)}　{start}時〜{start + hours}時（{hours}時間）",
        f"場所：{pick(rng, VENUES)}および周辺地域",
        detail.format(fee=rng.randint(2, 8) * 100),
        f"お問い合わせ：{office(place)}　生活環境課（担当：{pick(rng, SURNAMES)}）",
    ])


CITIES = ("札幌", "仙台", "新潟", "東京", "名古屋", "金沢", "大阪", "広島", "高知", "福岡", "鹿児島", "那覇")
WEATHER_TEMPS = {"winter": 8, "spring": 18, "summer": 31, "autumn": 21}
CITY_OFFSETS = {"札幌": -6, "仙台": -3, "新潟": -2, "金沢": -1}
WARM_CITIES = {"鹿児島": {"winter": 3, "spring": 2, "autumn": 2},
               "那覇": {"winter": 11, "spring": 6, "autumn": 6}}
WEATHER_ADVICE = {
    "spring": "朝晩の気温差が大きくなりますので、上着で調節してください。",
    "summer": "熱中症に注意し、こまめな水分補給を心がけましょう。",
    "autumn": "空気が乾燥してきました。火の取り扱いに注意しましょう。",
    "winter": "路面の凍結に注意して、時間に余裕をもってお出かけください。",
}


def weather(rng: random.Random) -> str:
    d = random_date(rng)
    season = season_of(d.month)
    rows = []
    for city in pick_n(rng, CITIES, 6):
        sky, lo, hi = pick(rng, SKIES[season])
        if city in WARM_CITIES and "雪" in sky:
            sky, lo, hi = "くもり", 2, 4
        offset = CITY_OFFSETS.get(city, 0) + (WARM_CITIES.get(city, {}).get(season, 0))
        high = min(37, WEATHER_TEMPS[season] + rng.randint(-4, 3) + offset)
        low = high - rng.randint(4, 10)
        rows.append(f"{city}：{sky}　最高{high}℃　最低{low}℃　降水確率{rng.randint(lo, hi) * 10}%")
    return "\n".join([f"【{ja_date(d)}の全国の天気】", *rows, WEATHER_ADVICE[season]])


# (generator, how many documents per corpus)
GENERATORS = (
    ("town", town_profile, 36),
    ("recipe", recipe, 36),
    ("timetable", timetable, 26),
    ("dialogue", dialogue, 40),
    ("diary", diary, 40),
    ("news", news, 40),
    ("notice", notice, 22),
    ("weather", weather, 22),
)

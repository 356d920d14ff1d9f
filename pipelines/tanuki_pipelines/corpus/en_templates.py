"""English document templates, mirroring the Japanese ones in ``ja_templates``.

Same rules: word lists and patterns are data, every number a reader could
check (totals, change, travel times, percentages) is computed.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from fractions import Fraction

from .common import (
    EN_MONTHS,
    en_date,
    fraction_text,
    halves,
    hhmm,
    pick,
    pick_n,
    random_date,
    round_to,
    season_of,
)
from .ja_templates import Recipe, timed_steps

FIRST_NAMES = (
    "Alice", "Ben", "Clara", "Daniel", "Elena", "Felix", "Grace", "Hugo", "Isla", "Jack",
    "Keiko", "Liam", "Maya", "Noah", "Olive", "Priya", "Quinn", "Rosa", "Simon", "Tara",
)
LAST_NAMES = (
    "Abbott", "Bishop", "Carter", "Dalton", "Ellis", "Fletcher", "Garcia", "Hayes", "Ingram",
    "Jensen", "Kowalski", "Lopez", "Morgan", "Nakamura", "Osei", "Patel", "Reed", "Sato", "Turner", "Walsh",
)
TOWN_HEADS = ("Oak", "Maple", "Stone", "River", "Mill", "Fox", "Cedar", "Hazel", "Ash", "Brook",
              "Elm", "Willow", "Raven", "Clay", "Pine", "North", "West", "Green", "High", "Salt")
TOWN_TAILS = ("field", "ford", "bridge", "wood", "haven", "ton", "ridge", "dale", "stead",
              "bury", "mouth", "wick", "vale", "port", "moor")
STATIONS = ("Central", "Market Street", "Riverside", "University", "Old Town", "Harbor",
            "Parkside", "Hill Road", "North Gate", "Museum", "Airport Road", "Station Square",
            "Westfield", "Elm Park", "Canal Street", "Victoria Bridge")
LINES = ("Blue Line", "Coastal Line", "Valley Railway", "Northern Line", "Lakeshore Line")


def person(rng: random.Random) -> str:
    return f"{pick(rng, FIRST_NAMES)} {pick(rng, LAST_NAMES)}"


def town(rng: random.Random) -> str:
    return pick(rng, TOWN_HEADS) + pick(rng, TOWN_TAILS)


# --------------------------------------------------------------------------- towns

SETTINGS = ("in a narrow river valley", "on a windy stretch of coast", "at the foot of a low mountain range",
            "beside a large freshwater lake", "in rolling farmland", "at the mouth of a tidal estuary")
INDUSTRIES = (
    ("cider apples", "the orchards on the south slope supply three local cider makers"),
    ("wool", "the weekly sheep market has been held in the same square since the 1800s"),
    ("pottery", "a dozen small studios sell plates and bowls glazed in a distinctive green"),
    ("oysters", "the harbor restaurants serve them fresh from October to March"),
    ("cheese", "a cooperative dairy still ages its wheels in a cave above the town"),
    ("timber", "the old sawmill has been turned into a museum of woodworking"),
    ("honey", "beekeepers bring their jars to a market stall every Saturday morning"),
)
EVENTS = (("spring flower show", 4), ("summer regatta", 7), ("harvest fair", 9),
          ("lantern walk", 11), ("winter market", 12), ("kite festival", 5))
CHALLENGES = (
    ("young people moving away for work",
     "The council now offers small grants to people who open a business on the high street."),
    ("a shortage of affordable housing",
     "A community land trust has built {n} rental homes on the site of the old bus depot."),
    ("fewer bus services",
     "A volunteer car scheme now carries about {n} passengers a week to appointments and shops."),
    ("quiet winters for local businesses", "A new winter walking festival drew {n} visitors last year."),
)


def town_profile(rng: random.Random) -> str:
    name = town(rng)
    (ind, fact), (ind2, _) = pick_n(rng, INDUSTRIES, 2)
    event, month = pick(rng, EVENTS)
    challenge, action = pick(rng, CHALLENGES)
    y1, y2 = rng.randint(1985, 2005), rng.randint(2018, 2024)
    p1 = rng.randint(20, 600) * 100
    p2 = round_to(p1 * rng.uniform(0.7, 1.25), 10)
    change = round(abs(p2 - p1) / p1 * 100)
    trend = "grew" if p2 >= p1 else "shrank"
    minutes, walk = rng.randint(25, 95), rng.randint(5, 20)
    visitors = rng.randint(3, 40) * 1000
    crowd = ", more than the town's own population" if visitors > p2 else " from across the region"
    return "\n".join([
        f"Town profile: {name}",
        f"{name} is a town of about {p2:,} people {pick(rng, SETTINGS)}. It began as a small settlement "
        f"around {rng.randint(1650, 1880)}, when a bridge was built across the river "
        "and a market grew up beside it.",
        f"The town is known for {ind} and {ind2}; {fact}. Every {EN_MONTHS[month - 1]} the {event} "
        f"brings around {visitors:,} visitors{crowd}.",
        f"Trains on the {pick(rng, LINES)} reach {name} in about {minutes} minutes from the regional capital, "
        f"and the station is a {walk}-minute walk from the main square, "
        f"so the whole trip takes about {minutes + walk} minutes.",
        f"Between {y1} and {y2} the population {trend} from {p1:,} to {p2:,}, "
        f"a change of roughly {change} percent. "
        f"Residents say the biggest challenge today is {challenge}. " + action.format(n=rng.randint(12, 90)),
    ])


# --------------------------------------------------------------------------- recipes

# (dish, [(ingredient, amount for 2 servings, unit)], [steps], tip). "g"/"ml"
# round to tens; spoons and counts round to halves and get an "s" above one;
# an amount of None keeps the unit text as a note ("to taste"). A step is plain
# text or (text with "{t}", min minutes, max minutes), as in ja_templates.
RECIPES: tuple[Recipe, ...] = (
    ("vegetable fried rice",
     [("cooked rice", 400, "g"), ("egg", 2, ""), ("frozen peas", 80, "g"), ("carrot", 1, ""),
      ("spring onion", 2, ""), ("soy sauce", 2, "tablespoon"), ("vegetable oil", 1, "tablespoon")],
     ["Dice the carrot finely and slice the spring onions.",
      ("Heat the oil in a large pan, add the carrot and cook for {t} minutes.", 3, 5),
      "Push the vegetables to one side, scramble the eggs in the empty space, then add the rice and peas.",
      ("Stir-fry for another {t} minutes, add the soy sauce, and finish with the spring onions.", 3, 5)],
     "Day-old rice works best because it is drier and does not clump."),
    ("lentil soup",
     [("red lentils", 150, "g"), ("onion", 1, ""), ("garlic clove", 2, ""), ("canned tomatoes", 200, "g"),
      ("vegetable stock", 700, "ml"), ("ground cumin", 1, "teaspoon"), ("olive oil", 1, "tablespoon")],
     [("Chop the onion and garlic and soften them in the oil for {t} minutes.", 5, 8),
      "Add the cumin and stir for one minute until fragrant.",
      ("Add the lentils, tomatoes and stock, bring to the boil, then simmer for {t} minutes.", 15, 25),
      "Blend half of the soup for a creamier texture, and season with salt and lemon juice."],
     "The soup thickens as it cools, so add a splash of water when reheating."),
    ("banana pancakes",
     [("ripe banana", 1, ""), ("flour", 120, "g"), ("milk", 150, "ml"), ("egg", 1, ""),
      ("baking powder", 1, "teaspoon"), ("butter", None, "for the pan")],
     ["Mash the banana in a bowl until smooth.",
      "Whisk in the egg and milk, then fold in the flour and baking powder.",
      ("Let the batter rest for {t} minutes while the pan heats.", 5, 15),
      ("Cook small ladlefuls in a little butter for about {t} minutes per side.", 2, 3)],
     "The riper the banana, the sweeter the pancakes, so no sugar is needed."),
    ("baked salmon with potatoes",
     [("salmon fillet", 2, ""), ("small potatoes", 400, "g"), ("lemon", 0.5, ""),
      ("olive oil", 2, "tablespoon"), ("dried dill", 1, "teaspoon"), ("salt and pepper", None, "to taste")],
     ["Heat the oven to 200 degrees Celsius. Halve the potatoes and toss them in half the oil.",
      ("Roast the potatoes for {t} minutes.", 20, 30),
      "Place the salmon on top, drizzle with the rest of the oil, and sprinkle with dill, salt and pepper.",
      ("Bake for another {t} minutes and serve with lemon wedges.", 12, 15)],
     "The salmon is done when it flakes easily with a fork."),
    ("chickpea curry",
     [("canned chickpeas", 400, "g"), ("onion", 1, ""), ("coconut milk", 200, "ml"), ("spinach", 100, "g"),
      ("curry powder", 2, "teaspoon"), ("vegetable oil", 1, "tablespoon")],
     [("Slice the onion and fry it in the oil for {t} minutes until golden.", 6, 10),
      "Stir in the curry powder and cook for one more minute.",
      ("Add the drained chickpeas and the coconut milk and simmer for {t} minutes.", 10, 20),
      "Stir in the spinach until it wilts, then serve with rice or flatbread."],
     "A squeeze of lime at the end brightens the flavor."),
)
INTROS = ("A quick weeknight dish that uses mostly pantry ingredients.",
          "This is how {name} makes it every Sunday.",
          "A simple recipe that is easy to double for guests.",
          "Adapted from a community cooking class run by {name}.")


WHOLE_ONLY = ("egg", "salmon fillet")


def _ingredient_line(name: str, amount: float | None, unit: str, scale: float) -> str:
    """"- 300 g flour", "- 1 and 1/2 tablespoons oil", "- 3 eggs", "- butter, for the pan"."""
    if amount is None:
        return f"- {name}, {unit}"
    value = amount * scale
    if unit in ("g", "ml"):
        return f"- {round_to(value, 10)} {unit} {name}"
    count = Fraction(math.ceil(value)) if name in WHOLE_ONLY else halves(value)
    plural = "s" if count > 1 else ""
    text = fraction_text(count, " and ")
    if unit:  # spoons: "tablespoon(s)"
        return f"- {text} {unit}{plural} {name}"
    return f"- {text} {name}{plural}"


def recipe(rng: random.Random) -> str:
    dish, ingredients, steps, tip = pick(rng, RECIPES)
    servings = rng.randint(1, 6)
    scale = servings / 2
    lines = [f"Recipe: {dish} (serves {servings})",
             pick(rng, INTROS).format(name=pick(rng, FIRST_NAMES)), "Ingredients:"]
    lines += [_ingredient_line(name, amount, unit, scale) for name, amount, unit in ingredients]
    texts, cook = timed_steps(rng, steps)
    lines.append("Method:")
    lines += [f"{i}. {text}" for i, text in enumerate(texts, 1)]
    prep = rng.randint(5, 20)
    lines.append(f"Time: about {prep} minutes of preparation and {cook} minutes of cooking and resting, "
                 f"{prep + cook} minutes in total.")
    lines.append(f"Tip: {tip}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- timetables


def timetable(rng: random.Random) -> str:
    line = pick(rng, LINES)
    stops = pick_n(rng, STATIONS, rng.randint(5, 8))
    start = rng.randint(5 * 60 + 30, 21 * 60)
    interval = pick(rng, (10, 12, 15, 20, 30))
    t = start
    rows = [f"{stops[0]}: departs {hhmm(t)}"]
    for stop in stops[1:]:
        t += rng.randint(2, 8)
        rows.append(f"{stop}: arrives {hhmm(t)}")
    following = ", ".join(hhmm(start + interval * k) for k in range(1, 4))
    return "\n".join([
        f"{line} timetable, weekdays, towards {stops[-1]}",
        f"The {hhmm(start)} service from {stops[0]} calls at the following stations:",
        *rows,
        f"The journey from {stops[0]} to {stops[-1]} takes {t - start} minutes.",
        f"Trains run every {interval} minutes at this time of day; the next departures are at {following}.",
        "Please check the departure boards for delays, especially in bad weather.",
    ])


# --------------------------------------------------------------------------- dialogues


def _dialogue_cafe(rng: random.Random, a: str, b: str) -> list[str]:
    drink = pick(rng, ("a large latte", "a pot of green tea", "a hot chocolate", "a flat white"))
    cake = pick(rng, ("a slice of carrot cake", "a blueberry muffin", "a cinnamon roll"))
    p1, p2 = rng.randint(250, 480), rng.randint(220, 450)
    total = p1 + p2
    paid = next(x for x in (1000, 2000) if x > total)
    return [
        f"{b}: Hi there, what can I get you?",
        f"{a}: Could I have {drink} and {cake}, please?",
        f"{b}: Of course. That's {p1 / 100:.2f} for the drink and {p2 / 100:.2f} for the cake, "
        f"so {total / 100:.2f} altogether.",
        f"{a}: Here's {paid // 100} dollars.",
        f"{b}: Thanks. Your change is {(paid - total) / 100:.2f}. I'll bring it over to your table.",
        f"{a}: Great, thank you.",
    ]


def _dialogue_station(rng: random.Random, a: str, b: str) -> list[str]:
    dest, change = pick_n(rng, STATIONS, 2)
    now = rng.randint(6 * 60, 22 * 60)
    wait, r1, r2 = rng.randint(2, 9), rng.randint(5, 25), rng.randint(5, 25)
    return [
        f"{a}: Excuse me, how do I get to {dest}?",
        f"{b}: Take the {pick(rng, LINES)} from platform {rng.randint(1, 6)} and change at {change}.",
        f"{a}: When is the next train?",
        f"{b}: At {hhmm(now + wait)}, so in about {wait} minutes.",
        f"{a}: And how long does the whole trip take?",
        f"{b}: {r1} minutes to {change}, then {r2} minutes from there. About {r1 + r2} minutes, plus the change.",
        f"{a}: Thanks so much.",
    ]


def _dialogue_work(rng: random.Random, a: str, b: str) -> list[str]:
    topic = pick(rng, ("budget", "project schedule", "customer survey", "hiring plan"))
    return [
        f"{a}: Have you had a chance to look at the slides for tomorrow?",
        f"{b}: Not yet. How long is the deck?",
        f"{a}: {rng.randint(8, 40)} slides. The {topic} section is the one people will ask about.",
        f"{b}: Okay, I'll read it tonight. What time does the meeting start again?",
        f"{a}: {rng.randint(9, 11)} o'clock, in room {rng.randint(2, 9)}{rng.randint(0, 2)}{rng.randint(1, 9)}.",
        f"{b}: Got it. I'll send you any questions beforehand.",
    ]


def _dialogue_directions(rng: random.Random, a: str, b: str) -> list[str]:
    place = pick(rng, ("the library", "the post office", "the swimming pool", "the town hall", "the museum"))
    return [
        f"{a}: Sorry to bother you, do you know where {place} is?",
        f"{b}: Sure. Go straight down this road and take the {pick(rng, ('second', 'third', 'fourth'))} "
        f"turn on the {pick(rng, ('left', 'right'))}. "
        f"It's next to {pick(rng, ('a bakery', 'the bank', 'a small park'))}.",
        f"{a}: Is it far to walk?",
        f"{b}: About {rng.randint(5, 15)} minutes. It's uphill, though.",
        f"{a}: That's fine. Thank you!",
        f"{b}: No problem. Have a good day.",
    ]


DIALOGUES = (("At a cafe", _dialogue_cafe), ("At the station", _dialogue_station),
             ("At work", _dialogue_work), ("Asking for directions", _dialogue_directions))


def dialogue(rng: random.Random) -> str:
    title, make = pick(rng, DIALOGUES)
    a, b = pick_n(rng, FIRST_NAMES, 2)
    return "\n".join([f"Conversation practice: {title}", *make(rng, a, b)])


# --------------------------------------------------------------------------- diaries

# (time of day, text): 0 morning, 1 daytime, 2 evening, 3 night; sorted per entry.
DIARY_SEASONAL = {
    "spring": ((0, "The magnolia on the corner finally opened today."),
               (0, "I swapped my winter coat for a light jacket."),
               (1, "Planted tomato seedlings on the balcony."),
               (1, "It rained on and off all afternoon.")),
    "summer": ((2, "Ate dinner outside on the steps because the flat was too hot."),
               (0, "Swam at the lake before breakfast."),
               (2, "A thunderstorm cooled everything down in the evening."),
               (3, "The fan ran all night.")),
    "autumn": ((1, "The leaves on our street are turning orange."),
               (2, "Made apple crumble with apples from the market."),
               (2, "It was dark by six."),
               (0, "Found my gloves in last year's coat pocket.")),
    "winter": ((0, "Frost on the car windows this morning."),
               (2, "Made a big pot of soup that should last three days."),
               (1, "The heating broke again and the landlord promised to fix it."),
               (1, "Snow in the afternoon, gone by dinner.")),
}
DIARY_COMMON = (
    (0, "Spent the morning cleaning the kitchen."),
    (2, "Called Mum and talked for {m} minutes."),
    (3, "Read {p} pages of the novel I borrowed from the library."),
    (3, "Walked {s:,} steps according to my phone."),
    (1, "Work was slow, so I finally sorted out my email."),
    (1, "Had lunch with an old friend from school."),
    (2, "Practiced Japanese vocabulary for {m} minutes."),
    (3, "Went to bed earlier than usual."),
    (0, "Caught the early bus and got a seat for once."),
    (1, "Spent the afternoon at the library."),
)
DIARY_TEMPS = {"winter": (-2, 8), "spring": (10, 20), "summer": (22, 33), "autumn": (9, 19)}


def diary(rng: random.Random) -> str:
    d = random_date(rng)
    season = season_of(d.month)
    high = rng.randint(*DIARY_TEMPS[season])
    low = high - rng.randint(4, 9)
    events = pick_n(rng, DIARY_SEASONAL[season], 2) + pick_n(rng, DIARY_COMMON, 3)
    events.sort(key=lambda event: event[0])
    body = " ".join(text.format(m=rng.randint(10, 60), p=rng.randint(10, 80), s=rng.randint(3000, 15000))
                    for _, text in events)
    ending = pick(rng, ("Tomorrow should be quieter.", "A good day, all things considered.", "Bed now."))
    sky = pick(rng, SKIES[season])[0].capitalize()
    return f"Diary, {en_date(d)}. {sky}, high {high} C, low {low} C.\n{body}\n{ending}"


# --------------------------------------------------------------------------- news, notices, weather


def _library_news(rng: random.Random, name: str) -> str:
    before = rng.randint(40, 400) * 10
    after = round_to(before * rng.uniform(1.05, 1.6), 10)
    pct = round((after - before) / before * 100)
    librarian = person(rng)
    return (f"{name} library reports record visits\n"
            f"{name}, {en_date(random_date(rng))}. The public library welcomed {after:,} visitors last month, "
            f"up from {before:,} in the same month last year, an increase of about {pct} percent. "
            f"Head librarian {librarian} credited the new evening opening hours and a popular series of "
            "children's workshops. \"People are using the library as a place to meet, not just to borrow "
            f"books,\" said {librarian.split()[-1]}.")


# (sport, range of the losing score, range of the winning margin)
SPORTS = (("football", (0, 2), (1, 3)), ("hockey", (0, 3), (1, 3)),
          ("netball", (25, 45), (1, 12)), ("basketball", (45, 75), (1, 15)))


def _sports_news(rng: random.Random, name: str) -> str:
    sport, losing, margin = pick(rng, SPORTS)
    low = rng.randint(*losing)
    high = low + rng.randint(*margin)
    match = random_date(rng)
    match -= dt.timedelta(days=(match.weekday() - 5) % 7)  # the Saturday on or before
    report = match + dt.timedelta(days=rng.randint(1, 3))
    return (f"{name} wins regional {sport} final\n"
            f"{en_date(report)}. The {name} under-16 {sport} team won the regional final {high}-{low} "
            f"against {town(rng)} on {en_date(match, False)}, the club's first title in {rng.randint(3, 25)} years. "
            f"Captain {person(rng)} said the team had trained twice a week through the winter. "
            f"About {rng.randint(2, 15) * 100} supporters traveled to watch the match.")


def news(rng: random.Random) -> str:
    make = pick(rng, (_library_news, _sports_news))
    return make(rng, town(rng))


NOTICES = (
    ("Planned water interruption", "Water will be switched off while a main pipe is replaced.",
     "Please store drinking water in advance. Work may finish earlier or later than planned."),
    ("Community clean-up day", "Volunteers are invited to help clear litter from the riverbank and park.",
     "Gloves, bags and litter pickers will be provided. Please wear sturdy shoes."),
    ("Free health check", "Residents aged 40 and over can have a free basic health check.",
     "Please do not eat breakfast on the day, and bring your appointment letter."),
)


def notice(rng: random.Random) -> str:
    title, lead, detail = pick(rng, NOTICES)
    d = random_date(rng)
    start, hours = rng.randint(8, 14), rng.randint(2, 5)
    return "\n".join([
        f"NOTICE: {title}", f"To all residents of {town(rng)}. {lead}",
        f"When: {en_date(d)}, {hhmm(start * 60)} to {hhmm((start + hours) * 60)} ({hours} hours)",
        f"Where: {pick(rng, ('the community hall', 'the primary school', 'Riverside Park', 'the library'))}",
        detail, f"Questions: contact {person(rng)} at the town office.",
    ])


CITIES = ("Northport", "Lakeside", "Eastbridge", "Hillcrest", "Southam", "Kingsford", "Bayview", "Greystone")
# Skies by season with the range of the chance of rain (in tens of percent).
SKIES = {
    "spring": (("sunny", 0, 1), ("sunny spells", 1, 3), ("cloudy", 2, 4), ("showers", 5, 7), ("light rain", 6, 8)),
    "summer": (("sunny", 0, 1), ("hot and sunny", 0, 1), ("thunderstorms later", 4, 6), ("cloudy", 2, 3)),
    "autumn": (("fog clearing later", 1, 2), ("cloudy", 2, 4), ("showers", 5, 7), ("heavy rain", 8, 10)),
    "winter": (("frosty and clear", 0, 1), ("cloudy", 2, 4), ("sleet", 6, 8), ("snow", 6, 9)),
}
FORECAST_TEMPS = {"winter": 4, "spring": 15, "summer": 26, "autumn": 14}


def weather(rng: random.Random) -> str:
    d = random_date(rng)
    season = season_of(d.month)
    rows = []
    for city in pick_n(rng, CITIES, 5):
        sky, lo, hi = pick(rng, SKIES[season])
        high = FORECAST_TEMPS[season] + rng.randint(-4, 4)
        rows.append(f"{city}: {sky}, high {high} C, low {high - rng.randint(4, 9)} C, "
                    f"{rng.randint(lo, hi) * 10} percent chance of rain")
    return "\n".join([f"Regional forecast for {en_date(d)}", *rows,
                      pick(rng, ("Winds will be light for most of the day.",
                                 "Expect strong gusts along the coast in the evening.",
                                 "Temperatures will fall quickly after sunset."))])


# (generator, how many documents per corpus)
GENERATORS = (
    ("town", town_profile, 28),
    ("recipe", recipe, 28),
    ("timetable", timetable, 20),
    ("dialogue", dialogue, 28),
    ("diary", diary, 28),
    ("news", news, 28),
    ("notice", notice, 14),
    ("weather", weather, 14),
)

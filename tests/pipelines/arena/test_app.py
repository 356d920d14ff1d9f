"""The arena end to end through its HTTP API on SQLite: ask, two streamed answers, follow-ups,
vote, names revealed, ratings live, exports that ``tanuki eval ratings`` reads back; and what it
refuses (no identity, cross-site posts, a second vote, bad questions, a failed model)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import MODELS, Models, Voter
from tanuki_common.errors import BadInputError
from tanuki_pipelines.cli import main as tanuki
from tanuki_pipelines.votes.schema import Battle, Vote


def count(client: TestClient, table: type) -> int:
    arena = client.app.state.arena  # type: ignore[attr-defined]
    arena.settle()  # new battles are written in the background
    with arena.session() as session:
        return session.scalar(select(func.count()).select_from(table))


def test_a_battle_streams_two_answers_takes_one_vote_and_then_reveals_the_names(
        make_client: Callable[..., TestClient], models: Models) -> None:
    client = make_client(answers_at_start=False)  # the scripted models would be done before the page asks
    voter = Voter(client, "hanako")
    battle = voter.battle()
    events = voter.stream(battle, "a")
    assert len(events) > 2 and events[-1] == {"done": True}  # several pieces, as they came
    assert "".join(e.get("delta", "") for e in events) == "1通目への回答です。よろしくお願いします。"
    voter.stream(battle, "b")
    asked = [request["model"] for request in models.requests]
    assert len(set(asked)) == 2 and set(asked) <= set(MODELS)  # two different models answered
    vote = voter.post(f"/api/battles/{battle}/vote", {"evaluation": "A", "corrected_answer": "東京です。"})
    assert vote.status_code == 200, vote.text
    result = vote.json()
    assert result["recorded"] is True and {result["model_a"], result["model_b"]} == set(asked)
    again = voter.post(f"/api/battles/{battle}/vote", {"evaluation": "B"})
    assert again.status_code == 409 and "already voted" in again.json()["error"]
    assert count(client, Vote) == 1
    exported = [json.loads(line) for line in voter.get("/api/votes").text.splitlines()]
    assert exported[0]["evaluation"] == "A" and exported[0]["corrected_answer"] == "東京です。"
    assert exported[0]["model_1"] == result["model_a"] and exported[0]["question"] == "日本の首都はどこですか?"


def test_answers_stream_while_the_battle_is_written_and_what_changes_it_waits_for_the_row(
        client: TestClient, models: Models) -> None:
    arena = client.app.state.arena  # type: ignore[attr-defined]
    write, release = arena.write_battle, threading.Event()

    def slow_write(*args: object) -> None:  # a database slow to commit
        assert release.wait(30)
        write(*args)

    arena.write_battle = slow_write
    rows_when_asked: list[int] = []

    def answer(model: str, messages: list[dict[str, str]]) -> str:
        with arena.session() as session:
            rows_when_asked.append(session.scalar(select(func.count()).select_from(Battle)))
        release.set()  # the row may come now: the answer is stored once it is there
        return "東京です。"

    models.answer = answer
    voter = Voter(client, "hanako")
    battle = voter.battle()
    for side in "ab":
        assert voter.stream(battle, side)[-1] == {"done": True}
    assert rows_when_asked[0] == 0  # the first model was asked before the battle's row existed
    assert voter.post(f"/api/battles/{battle}/vote", {"evaluation": "tie"}).status_code == 200
    exported = [json.loads(line) for line in voter.get("/api/votes").text.splitlines()]
    assert exported[0]["answer_1"] == exported[0]["answer_2"] == "東京です。"


def test_follow_ups_carry_each_sides_own_conversation(client: TestClient, models: Models) -> None:
    marks = dict(zip(MODELS, "一二三", strict=True))  # not the names: an answer naming its model is flagged
    models.answer = lambda model, messages: f"{marks[model]}の {len(messages)} 通目の回答"
    voter = Voter(client, "taro")
    battle = voter.answered_battle()
    follow_up = voter.post(f"/api/battles/{battle}/turns", {"question": "理由も教えてください。"})
    assert follow_up.json() == {"battle_id": battle, "turn": 2}
    for side in "ab":
        voter.stream(battle, side, turn=2)
    second = [request for request in models.requests if len(request["messages"]) == 3]
    assert len(second) == 2
    for request in second:  # each side sees its own first answer, not the other's
        assert request["messages"][1] == {"role": "assistant", "content": f"{marks[request['model']]}の 1 通目の回答"}
        assert request["messages"][2]["content"] == "理由も教えてください。"
    assert voter.post(f"/api/battles/{battle}/vote", {"evaluation": "tie"}).status_code == 200
    record = json.loads(voter.get("/api/votes?format=fastchat").text)
    assert record["turn"] == 2 and record["winner"] == "tie" and len(record["conversation_a"]) == 4


def test_votes_are_balanced_across_pairs_and_the_leaderboard_follows_them(client: TestClient) -> None:
    voter = Voter(client, "rater")
    client.app.state.arena.config.limits.votes_per_minute = 1000  # type: ignore[attr-defined]
    client.app.state.arena.config.limits.battles_per_minute = 1000  # type: ignore[attr-defined]
    assert voter.get("/api/leaderboard").json()["models"] == []
    pairs: Counter = Counter()
    for _ in range(12):
        battle = voter.answered_battle()
        result = voter.post(f"/api/battles/{battle}/vote", {"evaluation": "A"}).json()
        pairs[tuple(sorted((result["model_a"], result["model_b"])))] += 1
    assert sorted(pairs.values()) == [4, 4, 4]  # three pairs, four battles each
    board = voter.get("/api/leaderboard").json()
    assert board["votes"] == 12 and {row["model"] for row in board["models"]} == set(MODELS)
    assert sum(row["battles"] for row in board["models"]) == 24


@pytest.mark.parametrize(("headers", "status", "why"), [
    ({}, 403, "CSRF"),
    ({"X-CSRF-Token": "forged"}, 403, "CSRF"),
    ({"Origin": "http://evil.test"}, 403, "another origin"),
    ({"Sec-Fetch-Site": "cross-site"}, 403, "cross-site"),
])
def test_cross_site_and_tokenless_posts_are_refused(client: TestClient, headers: dict[str, str], status: int,
                                                    why: str) -> None:
    voter = Voter(client, "hanako")
    sent = {"X-Forwarded-User": "hanako", "X-CSRF-Token": voter.csrf, **headers}
    if "X-CSRF-Token" not in headers and why == "CSRF":
        del sent["X-CSRF-Token"]
    refused = client.post("/api/battles", json={"question": "こんにちは"}, headers=sent)
    assert refused.status_code == status and why in refused.json()["error"]
    assert count(client, Battle) == 0


def test_no_identity_no_arena(client: TestClient) -> None:
    assert client.get("/").status_code == 401
    assert "X-Forwarded-User" in client.get("/api/leaderboard").json()["error"]
    assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


@pytest.mark.parametrize(("question", "why"), [("", "empty"), ("   \n", "empty"), ("長" * 2001, "longer than 2000")])
def test_empty_or_overlong_questions_store_nothing(client: TestClient, question: str, why: str) -> None:
    refused = Voter(client, "hanako").post("/api/battles", {"question": question})
    assert refused.status_code == 422 and why in refused.json()["error"]
    assert count(client, Battle) == 0


def test_votes_that_cannot_be_taken(make_client: Callable[..., TestClient]) -> None:
    client = make_client(answers_at_start=False)  # no answer before the page asks: a vote comes too early
    hanako, taro = Voter(client, "hanako"), Voter(client, "taro")
    assert hanako.post("/api/battles/nope/vote", {"evaluation": "A"}).status_code == 404
    battle = hanako.battle()
    early = hanako.post(f"/api/battles/{battle}/vote", {"evaluation": "A"})
    assert early.status_code == 409 and "finish answering" in early.json()["error"]
    for side in "ab":
        hanako.stream(battle, side)
    assert taro.post(f"/api/battles/{battle}/vote", {"evaluation": "A"}).status_code == 403
    assert hanako.post(f"/api/battles/{battle}/vote", {"evaluation": "maybe"}).status_code == 422
    assert count(client, Vote) == 0


def test_answers_holding_unicode_line_breaks_stay_one_line_per_event(client: TestClient, models: Models) -> None:
    answer = "一行目\u2028二行目\x85三行目\u2029おわり"  # a model may write any of these; splitlines() breaks on them
    models.answer = lambda model, messages: answer
    voter = Voter(client, "hanako")
    battle = voter.battle()
    for side in "ab":  # Voter.stream parses each of str.splitlines()'s lines as JSON, as httpx's aiter_lines splits
        events = voter.stream(battle, side)
        assert "".join(event.get("delta", "") for event in events) == answer and events[-1] == {"done": True}
    assert voter.post(f"/api/battles/{battle}/vote", {"evaluation": "tie"}).status_code == 200
    exported = [json.loads(line) for line in voter.get("/api/votes").text.splitlines()]
    assert [(record["answer_1"], record["answer_2"]) for record in exported] == [(answer, answer)]


def test_streams_that_cannot_be_given_are_refused_with_a_status(client: TestClient,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tanuki_pipelines.arena.app as app_module

    monkeypatch.setattr(app_module, "ROW_WAIT_SECONDS", 0.1)  # no other replica will write the row
    hanako, taro = Voter(client, "hanako"), Voter(client, "taro")
    unknown = hanako.get("/api/battles/nope/answer/a")
    assert unknown.status_code == 404 and "no battle nope" in unknown.json()["error"]
    battle = hanako.answered_battle()
    other = taro.get(f"/api/battles/{battle}/answer/a")
    assert other.status_code == 403 and "another voter" in other.json()["error"]
    assert hanako.get(f"/api/battles/{battle}/answer/a?turn=2").status_code == 404


def test_a_model_failing_mid_answer_fails_the_battle(client: TestClient, models: Models) -> None:
    models.broken = set(MODELS)
    voter = Voter(client, "hanako")
    battle = voter.battle()
    events = voter.stream(battle, "a")
    assert "error" in events[-1] and "before the answer ended" in events[-1]["error"]
    refused = voter.post(f"/api/battles/{battle}/vote", {"evaluation": "A"})
    # both sides were asked as the battle started: whichever broke first failed it, naming its side
    assert refused.status_code == 409 and re.search(r"the battle failed: model [AB]: ", refused.json()["error"])
    assert "error" in voter.stream(battle, "b")[-1]


def test_a_failed_answer_whose_battle_cannot_be_stored_still_tells_the_page(
        client: TestClient, models: Models, caplog: pytest.LogCaptureFixture) -> None:
    models.refusing = set(MODELS)
    models.headers_delay = 0.3  # the page's streams follow the answers before they fail
    arena = client.app.state.arena  # type: ignore[attr-defined]

    def lost_database(*_args: object) -> None:
        raise RuntimeError("the database went away")

    arena.write_battle = lost_database
    voter = Voter(client, "hanako")
    battle = voter.battle()
    events = voter.stream(battle, "a")  # (a page coming later finds no battle: 404, nothing was stored)
    assert "error" in events[-1] and "answered 503: overloaded" in events[-1]["error"]
    # the generation ends on its own terms: the failure it could not store is logged, not raised
    assert f"battle {battle}: model" in caplog.text and "the failure is not stored" in caplog.text


def test_both_answers_are_asked_for_as_the_battle_starts_and_kept_if_the_page_goes_away(
        client: TestClient, models: Models) -> None:
    voter = Voter(client, "hanako")
    battle = voter.battle()
    arena = client.app.state.arena  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while arena.generations and time.monotonic() < deadline:  # no page asked for a stream
        time.sleep(0.01)
    assert len(models.requests) == 2 and not arena.generations
    with arena.session() as session:
        turn = session.get(Battle, battle).turns[0]
        assert turn.answer_a == turn.answer_b == "1通目への回答です。よろしくお願いします。"
    for side in "ab":  # a page that comes now gets the stored answers; nothing is asked again
        assert voter.stream(battle, side) == [{"delta": "1通目への回答です。よろしくお願いします。"}, {"done": True}]
    assert len(models.requests) == 2


def test_with_answers_at_start_the_row_waits_for_both_first_pieces(make_client: Callable[..., TestClient],
                                                                   models: Models) -> None:
    models.first_piece_delay = 0.5  # the models' first tokens take this long (their replies start at once)
    client = make_client()
    arena = client.app.state.arena  # type: ignore[attr-defined]
    voter = Voter(client, "hanako")
    battle = voter.battle()
    time.sleep(0.1)
    with arena.session() as session:  # the writer is idle, yet the row waits for the first pieces
        assert session.get(Battle, battle) is None
    for side in "ab":
        assert voter.stream(battle, side)[-1] == {"done": True}
    with arena.session() as session:
        assert [turn.answer_a is not None for turn in session.get(Battle, battle).turns] == [True]


def test_with_answers_at_start_the_battle_is_returned_once_both_questions_went_out(
        make_client: Callable[..., TestClient], models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    import tanuki_pipelines.arena.app as app_module

    monkeypatch.setattr(app_module, "ASK_WAIT_SECONDS", 3.0)  # far from the ~10 ms the reply takes
    models.headers_delay = 4.0  # busy model servers: their replies start late
    voter = Voter(make_client(), "hanako")
    sent = time.monotonic()
    voter.battle()
    # the page opens its streams after this reply, so its requests never compete with the models';
    # the reply waits for the questions to be written, not for the models' replies (nor ASK_WAIT_SECONDS)
    assert time.monotonic() - sent < app_module.ASK_WAIT_SECONDS
    deadline = time.monotonic() + 3  # still before the replies: the server's thread records them as it reads them
    while len(models.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(models.requests) == 2


def test_without_answers_at_start_a_model_is_asked_when_the_page_asks(make_client: Callable[..., TestClient],
                                                                      models: Models) -> None:
    voter = Voter(make_client(answers_at_start=False), "hanako")
    battle = voter.battle()
    time.sleep(0.2)
    assert models.requests == []
    assert voter.stream(battle, "a")[-1] == {"done": True}
    assert len(models.requests) == 1


def test_an_answer_naming_a_model_is_flagged_and_left_out_of_the_ratings(client: TestClient, models: Models,
                                                                         tmp_path: Path) -> None:
    models.answer = lambda model, messages: "私は ChatGPT です。" if model == "alpha" else "こんにちは。"
    voter = Voter(client, "hanako")
    client.app.state.arena.config.limits.votes_per_minute = 1000  # type: ignore[attr-defined]
    flagged = 0
    for _ in range(6):
        battle = voter.answered_battle()
        result = voter.post(f"/api/battles/{battle}/vote", {"evaluation": "B"}).json()
        flagged += result["flagged"]
        assert result["flagged"] == ("alpha" in (result["model_a"], result["model_b"]))
    assert flagged == 4  # alpha meets beta and gamma twice each in six balanced battles
    board = voter.get("/api/leaderboard").json()
    assert board["votes"] == 6 and board["rated_votes"] == 2 and "alpha" not in {r["model"] for r in board["models"]}
    assert len(voter.get("/api/votes?format=fastchat").text.splitlines()) == 2
    export = tmp_path / "votes.jsonl"
    export.write_text(voter.get("/api/votes").text)
    assert sum(json.loads(line)["flagged"] for line in export.read_text().splitlines()) == 4
    for source in (str(export), f"sqlite:///{tmp_path / 'arena.db'}"):  # the export and the database itself
        out = tmp_path / f"ratings-{len(list(tmp_path.glob('ratings-*')))}"
        assert tanuki(["eval", "ratings", "--votes", source, "--output-dir", str(out)]) == 0
        rated = json.loads((out / "leaderboard.json").read_text())
        assert {row["model"] for row in rated["models"]} == {"beta", "gamma"}
        assert rated["dropped"] == {"an answer named a model (flagged)": 4}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_racing_votes_store_exactly_one_each(make_client: Callable[..., TestClient], request: pytest.FixtureRequest,
                                             backend: str) -> None:
    fields = {"database_url": request.getfixturevalue("postgres_url")} if backend == "postgresql" else {}
    client = make_client(**fields)
    voter = Voter(client, "hanako")
    battles = [voter.answered_battle() for _ in range(5)]
    with ThreadPoolExecutor(8) as pool:  # four tabs vote on each battle at once
        statuses = list(pool.map(lambda battle: voter.post(f"/api/battles/{battle}/vote", {"evaluation": "A"})
                                 .status_code, [battle for battle in battles for _ in range(4)]))
    assert Counter(statuses) == {200: 5, 409: 15}
    assert count(client, Vote) == 5


def test_rate_limits(make_client: Callable[..., TestClient]) -> None:
    client = make_client(limits={"votes_per_minute": 1, "battles_per_minute": 3})
    voter = Voter(client, "hanako")
    first, second = voter.answered_battle(), voter.answered_battle()
    assert voter.post(f"/api/battles/{first}/vote", {"evaluation": "A"}).status_code == 200
    assert voter.post(f"/api/battles/{second}/vote", {"evaluation": "A"}).status_code == 429
    voter.battle()
    assert voter.post("/api/battles", {"question": "もう一つ"}).status_code == 429
    assert count(client, Battle) == 3 and count(client, Vote) == 1
    # another arena process on the same database (a restart, a replica) counts the voter's battles
    # of the last minute from it before drawing from memory
    other = make_client(limits={"votes_per_minute": 1, "battles_per_minute": 3})
    assert Voter(other, "hanako").post("/api/battles", {"question": "もう一つ"}).status_code == 429
    Voter(other, "taro").battle()
    other.app.state.arena.settle()  # type: ignore[attr-defined]
    assert count(client, Battle) == 4


def test_token_voters(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("hanako:0123456789abcdef0123\n# a comment\ntaro:fedcba9876543210fedc\n")
    client = make_client(identity={"mode": "tokens", "tokens_file": str(tokens)})
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong-token-wrong-token").status_code == 401
    page = client.get("/?token=0123456789abcdef0123")  # the link a voter is sent; the cookie keeps it
    assert page.status_code == 200
    created = client.post("/api/battles", json={"question": "こんにちは"},
                          headers={"X-CSRF-Token": page.cookies["arena_csrf"]})
    assert created.status_code == 200
    arena = client.app.state.arena  # type: ignore[attr-defined]
    arena.settle()
    with arena.session() as session:
        assert session.get(Battle, created.json()["battle_id"]).voter == "hanako"
    client.cookies.clear()
    assert client.get("/api/leaderboard").status_code == 401
    bearer = client.get("/api/leaderboard", headers={"Authorization": "Bearer fedcba9876543210fedc"})
    assert bearer.status_code == 200


def test_token_voters_from_a_mounted_secret_named_by_the_environment(make_client: Callable[..., TestClient],
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = tmp_path / "tokens"  # what an Arena's identity.tokens Secret key becomes in its pod
    tokens.write_text("hanako:0123456789abcdef0123\n")
    monkeypatch.setenv("ARENA_VOTER_TOKENS_FILE", str(tokens))
    client = make_client(identity={"mode": "tokens", "tokens_env": "ARENA_VOTER_TOKENS"})
    assert client.get("/", headers={"Authorization": "Bearer 0123456789abcdef0123"}).status_code == 200
    assert client.get("/", headers={"Authorization": "Bearer fedcba9876543210fedc"}).status_code == 401
    monkeypatch.delenv("ARENA_VOTER_TOKENS_FILE")
    with pytest.raises(BadInputError, match="ARENA_VOTER_TOKENS_FILE is not set"):
        make_client(identity={"mode": "tokens", "tokens_env": "ARENA_VOTER_TOKENS"})
    tokens.write_text("hanako:short\n")
    monkeypatch.setenv("ARENA_VOTER_TOKENS_FILE", str(tokens))
    with pytest.raises(BadInputError, match=f"{tokens}:1: expected voter:token"):
        make_client(identity={"mode": "tokens", "tokens_env": "ARENA_VOTER_TOKENS"})


def test_pages_render_in_japanese_and_english_and_escape_what_they_show(
        make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    client = make_client()
    headers = {"X-Forwarded-User": "hanako"}
    japanese = client.get("/", headers=headers).text
    assert "Tanuki アリーナ" in japanese and "A の方が良い" in japanese and 'lang="ja"' in japanese
    english = client.get("/?lang=en", headers=headers).text
    assert "Tanuki Arena" in english and "A is better" in english
    assert client.get("/static/arena.js").status_code == 200  # shipped with the package, no CDN
    arena = client.app.state.arena  # type: ignore[attr-defined]
    from tanuki_pipelines.arena.app import create_app

    # the leaderboard page shows an EvalJob's judged results beside the votes, escaped
    hostile = create_app(arena.config, arena.engine, lambda: {"arena": {"models": [
        {"model": "<script>alert(1)</script>", "bt": {"rating": 1000}, "battles": 3},
        {"model": "sft", "bt": {"rating": None, "why": "never won"}, "battles": 3}]}})
    with TestClient(hostile, base_url="http://arena.test") as other:
        shown = other.get("/leaderboard", headers=headers).text
    assert "<script>alert(1)</script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "— (never won)" in shown  # a model without a rating says why

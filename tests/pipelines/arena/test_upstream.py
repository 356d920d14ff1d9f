"""Streaming one answer from an OpenAI-compatible server over a real socket: when the question
counts as sent, the answer's pieces, the connection kept for the next question (and not waited on
forever), and a server that cannot be reached."""

from __future__ import annotations

import asyncio
import json

import pytest

from tanuki_pipelines.arena.upstream import AnswerFailed, model_client, stream_answer
from tanuki_pipelines.eval.config import Contestant


def sse(pieces: list[str]) -> bytes:
    events = [{"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in pieces]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return "".join(f"data: {json.dumps(event, ensure_ascii=False)}\n\n" for event in events).encode() + \
        b"data: [DONE]\n\n"


def test_the_question_counts_as_sent_once_written_before_the_server_answers() -> None:
    async def scenario() -> tuple[bool, list[str]]:
        sent = asyncio.Event()

        async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            try:  # a model still working on its first token: nothing comes back yet
                await asyncio.wait_for(sent.wait(), timeout=5)
            except TimeoutError:
                pass
            seen_before_answering.append(sent.is_set())
            body = sse(["こんに", "ちは"])
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         + f"content-length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            writer.close()

        seen_before_answering: list[bool] = []
        listening = await asyncio.start_server(server, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        contestant = Contestant(name="alpha", base_url=f"http://127.0.0.1:{port}/v1", model="served-alpha")
        async with listening, model_client() as http:
            pieces = [piece async for piece in stream_answer(http, contestant, [{"role": "user", "content": "やあ"}],
                                                            16, 0.7, sent.set)]
        return seen_before_answering == [True], pieces

    said_sent_first, pieces = asyncio.run(scenario())
    assert said_sent_first
    assert pieces == ["こんに", "ちは"]


def test_a_server_that_cannot_be_reached_fails_the_answer_saying_so() -> None:
    async def scenario() -> None:
        listening = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        listening.close()
        await listening.wait_closed()  # nothing listens on the port any more
        contestant = Contestant(name="alpha", base_url=f"http://127.0.0.1:{port}/v1", model="served-alpha")
        async with model_client() as http:
            async for _piece in stream_answer(http, contestant, [{"role": "user", "content": "やあ"}], 16, 0.7):
                pass

    with pytest.raises(AnswerFailed, match="could not be reached"):
        asyncio.run(scenario())


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def chunked_server(connections: list[int], end_after_s: float | None) -> asyncio.Server:
    """A model server streaming each answer in HTTP/1.1 chunks, as vLLM does: the events, then the
    body's end ``end_after_s`` later (None: never), answering questions on a connection one after
    another. ``connections`` counts the connections it was opened."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                         + chunk(sse(["東京", "です。"])))
            await writer.drain()
            if end_after_s is None:
                await asyncio.sleep(3600)  # the body never ends
            await asyncio.sleep(end_after_s)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def ask_twice(end_after_s: float | None) -> tuple[list[list[str]], int]:
    async def scenario() -> tuple[list[list[str]], int]:
        connections: list[int] = []
        listening = await chunked_server(connections, end_after_s)
        port = listening.sockets[0].getsockname()[1]
        contestant = Contestant(name="alpha", base_url=f"http://127.0.0.1:{port}/v1", model="served-alpha")
        answers = []
        async with model_client() as http:
            for _ in range(2):
                async with asyncio.timeout(30):
                    answers.append([piece async for piece in stream_answer(
                        http, contestant, [{"role": "user", "content": "日本の首都は?"}], 16, 0.7)])
        listening.close()
        return answers, len(connections)

    return asyncio.run(scenario())


def test_the_connection_is_kept_for_the_next_question() -> None:
    answers, connections = ask_twice(end_after_s=0.05)  # the body's end comes a moment after [DONE]
    assert answers == [["東京", "です。"]] * 2
    assert connections == 1


def test_a_response_left_open_after_done_still_ends_the_answer() -> None:
    answers, connections = ask_twice(end_after_s=None)
    assert answers == [["東京", "です。"]] * 2  # each within DRAIN_SECONDS of its [DONE]
    assert connections == 2  # the one left open is not reused

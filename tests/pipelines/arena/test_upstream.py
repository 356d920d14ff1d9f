"""Streaming one answer from an OpenAI-compatible server over a real socket: when the question
counts as sent, the answer's pieces, and a server that cannot be reached."""

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

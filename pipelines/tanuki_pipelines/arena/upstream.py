"""Streaming one answer from an OpenAI-compatible endpoint (a ModelServer's router, vLLM, any
``/v1/chat/completions``) as its text arrives.

The client is aiohttp's: the arena stands between a voter and the models, so what its client
costs is added to every first token; aiohttp gets two questions out in ~0.2 ms where httpx took
~1.3 ms on this project's CPU (``benchmarks/arena.py`` measures the whole hop)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from tanuki_pipelines.eval.client import api_key
from tanuki_pipelines.eval.config import Contestant

CONNECT_TIMEOUT_SECONDS = 10.0
"""Longest wait for a connection to a model's server (the whole answer has its own limit)."""
DRAIN_SECONDS = 1.0
"""After ``[DONE]``, the longest wait for the rest of the response (normally there already): read
to its end, the connection is kept for the next question; left mid-body, it would be closed."""


class AnswerFailed(Exception):
    """The model could not answer (refused, unreachable, cut off mid-stream); the text says why."""


@functools.cache
def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP_PROXY``/``HTTPS_PROXY`` unless ``NO_PROXY``
    covers its host), looked up once per model: aiohttp's own lookup (``trust_env``) reads the
    environment at every request, which cost ~0.3 ms a question here."""
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    if not parts.hostname or proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme)


def model_client(max_connections: int = 200) -> Any:
    """The arena's ``aiohttp.ClientSession`` to the models (open it on the event loop that uses it),
    with the hook that says when a question went out."""
    import aiohttp

    async def body_sent(_session: Any, context: SimpleNamespace, _params: Any) -> None:
        said = context.trace_request_ctx
        if isinstance(said, dict) and "sent" in said:
            said["sent"]()

    tracing = aiohttp.TraceConfig()
    tracing.on_request_chunk_sent.append(body_sent)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max_connections),
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS),
                                 trace_configs=[tracing])


async def stream_answer(http: Any, contestant: Contestant, messages: list[dict[str, str]], max_tokens: int,
                        temperature: float, sent: Callable[[], None] = lambda: None) -> AsyncIterator[str]:
    """The answer's text in pieces (``http``: a ``model_client()``); ``sent`` is called once the
    question is on its way to the model (its body written), before its answer starts."""
    import aiohttp

    body = {"model": contestant.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
            "stream": True}
    headers = {"Authorization": f"Bearer {api_key(contestant.api_key_env)}"}
    url = contestant.base_url.rstrip("/") + "/chat/completions"
    finished = False
    try:
        async with http.post(url, json=body, headers=headers, proxy=proxy_for(url),
                             trace_request_ctx={"sent": sent}) as response:
            sent()  # its answer began, so the question went out
            if response.status != 200:
                text = (await response.read()).decode("utf-8", "replace")[:300]
                raise AnswerFailed(f"the model's server answered {response.status}: {text}")
            async for raw in response.content:
                line = raw.decode("utf-8")
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    finished = True
                    break
                chunk = json.loads(data)
                if chunk.get("error"):
                    raise AnswerFailed(f"the model's server failed mid-answer: {str(chunk['error'])[:300]}")
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece
                    if choice.get("finish_reason"):
                        finished = True
            if finished:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRAIN_SECONDS):
                        await response.read()
    except aiohttp.ClientError as exc:
        raise AnswerFailed(f"the model's server could not be reached or stopped answering: {type(exc).__name__}") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AnswerFailed("the model's server sent a broken stream") from None
    if not finished:
        raise AnswerFailed("the model's server closed the stream before the answer ended")

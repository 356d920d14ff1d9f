"""Streaming one answer from an OpenAI-compatible endpoint (a ModelServer's router, vLLM, any
``/v1/chat/completions``) as its text arrives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from tanuki_pipelines.eval.client import api_key
from tanuki_pipelines.eval.config import Contestant


class AnswerFailed(Exception):
    """The model could not answer (refused, unreachable, cut off mid-stream); the text says why."""


async def stream_answer(http: Any, contestant: Contestant, messages: list[dict[str, str]], max_tokens: int,
                        temperature: float) -> AsyncIterator[str]:
    """The answer's text in pieces (``http``: an ``httpx.AsyncClient``)."""
    import httpx

    body = {"model": contestant.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
            "stream": True}
    headers = {"Authorization": f"Bearer {api_key(contestant.api_key_env)}"}
    url = contestant.base_url.rstrip("/") + "/chat/completions"
    finished = False
    try:
        async with http.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")[:300]
                raise AnswerFailed(f"the model's server answered {response.status_code}: {text}")
            async for line in response.aiter_lines():
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
    except httpx.HTTPError as exc:
        raise AnswerFailed(f"the model's server could not be reached or stopped answering: {type(exc).__name__}") \
            from None
    except json.JSONDecodeError:
        raise AnswerFailed("the model's server sent a broken stream") from None
    if not finished:
        raise AnswerFailed("the model's server closed the stream before the answer ended")

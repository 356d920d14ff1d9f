"""Talking to OpenAI-compatible endpoints (the models under test and the judge) with the official client.

API keys come from an environment variable or, when ``<VAR>_FILE`` is set, from that file (how
pods receive Secrets). The client retries transient failures itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError

RETRIES = 3
TIMEOUT_SECONDS = 300.0


def api_key(variable: str | None) -> str:
    """The key named by ``variable`` (its ``_FILE`` twin first); ``EMPTY`` when none is configured."""
    if not variable:
        return "EMPTY"
    path = os.environ.get(f"{variable}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BadInputError(f"{variable}_FILE: cannot read the API key: {exc}") from None
    return os.environ.get(variable) or "EMPTY"


def client(base_url: str, key_variable: str | None) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key(key_variable), max_retries=RETRIES, timeout=TIMEOUT_SECONDS)


def reachable_client(base_url: str, key_variable: str | None, field: str) -> Any:
    """A client for ``base_url`` once its ``/models`` answers; a wrong URL or key fails fast,
    naming ``field`` and the URL (after the client's bounded retries)."""
    from openai import APIConnectionError, APIError, APITimeoutError

    found = client(base_url, key_variable)
    try:
        found.models.list()
    except (APIConnectionError, APITimeoutError) as exc:
        raise BadInputError(f"{field}: {base_url} did not answer after retries: {type(exc).__name__}") from None
    except APIError as exc:
        raise BadInputError(f"{field}: {base_url} refused: {str(exc)[:300]}") from None
    return found


class RequestFailed(Exception):
    """The endpoint refused a request after the client's retries (e.g. 400: prompt too long)."""


def chat(openai_client: Any, model: str, messages: list[dict[str, str]], temperature: float, max_tokens: int,
         regex: str | None = None) -> str:
    """One chat completion's text ("" when the model returned nothing). ``regex``: vLLM structured
    outputs constrain the answer to it."""
    from openai import APIError

    extra = {"extra_body": {"structured_outputs": {"regex": regex}}} if regex else {}
    try:
        response = openai_client.chat.completions.create(model=model, messages=messages, temperature=temperature,
                                                         max_tokens=max_tokens, **extra)
    except APIError as exc:  # the client already retried what is worth retrying
        raise RequestFailed(f"{type(exc).__name__}: {str(exc)[:300]}") from None
    return (response.choices[0].message.content or "") if response.choices else ""


def continuation_logprob(openai_client: Any, model: str, messages: list[dict[str, str]], continuation: str) -> float:
    """log p(``continuation`` as the start of the assistant's reply | ``messages``) plus the log
    probability of the conversation itself, from a vLLM server (its ``prompt_logprobs`` and
    ``continue_final_message`` extensions; nothing is generated). Two continuations of the same
    messages compare by the difference of their values."""
    from openai import APIError

    try:
        response = openai_client.chat.completions.create(
            model=model, messages=[*messages, {"role": "assistant", "content": continuation}], max_tokens=1,
            temperature=0.0, extra_body={"add_generation_prompt": False, "continue_final_message": True,
                                         "prompt_logprobs": 0, "return_token_ids": True})
    except APIError as exc:
        raise RequestFailed(f"{type(exc).__name__}: {str(exc)[:300]}") from None
    extra = response.model_extra or {}
    ids, logprobs = extra.get("prompt_token_ids"), extra.get("prompt_logprobs")
    if not ids or not logprobs:
        raise RequestFailed("the server returned no prompt_logprobs (calibrated judging needs a vLLM judge)")
    return sum(entry[str(token)]["logprob"] for token, entry in zip(ids, logprobs, strict=False) if entry)


def calibrated_verdicts(openai_client: Any, model: str, question: str, first: str, second: str,
                        language: str = "ja") -> tuple[dict[str, float], dict[str, float]]:
    """The judge's probabilities of [[A]], [[B]], [[C]] with ``first`` shown as A, then with the
    order swapped (a vLLM judge; nothing is generated)."""
    from tanuki_pipelines.eval.judging import VERDICTS, pair_messages, verdict_probabilities

    def probabilities(shown_a: str, shown_b: str) -> dict[str, float]:
        messages = pair_messages(question, shown_a, shown_b, language)
        return verdict_probabilities({verdict: continuation_logprob(openai_client, model, messages, f"[[{verdict}]]")
                                      for verdict in VERDICTS})

    return probabilities(first, second), probabilities(second, first)

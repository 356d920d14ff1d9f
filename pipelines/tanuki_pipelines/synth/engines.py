"""The two ways ``tanuki synth`` generates: a vLLM engine in this process (what each Ray Data actor
holds) and any OpenAI-compatible endpoint (bounded concurrency; the ``openai`` client retries)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.synth.config import EndpointEngine, GeneratorModel
from tanuki_pipelines.synth.generation import Generate, Generation, Request

MIN_NEW_TOKENS = 16
"""A prompt that leaves less room than this in the context is not sent (recorded as an error)."""


def vllm_engine_args(generator: GeneratorModel, seed: int, on_gpu: bool) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for the generator (pure)."""
    if generator.path is None:
        raise BadInputError("generator.path: no checkpoint for engine vllm")
    return {"model": str(generator.path), "max_model_len": generator.max_model_len,
            "tensor_parallel_size": generator.tensor_parallel_size, "dtype": generator.dtype, "seed": seed,
            "enforce_eager": not on_gpu if generator.enforce_eager is None else generator.enforce_eager}


def chat_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The token ids of ``messages`` in the chat template with the generation prompt (what the
    engine prefills). Templated as text, then encoded: transformers 5 returns a BatchEncoding, not
    ids, from ``apply_chat_template(tokenize=True)``."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def chat_prompt_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """How many tokens the engine prefills for ``messages``."""
    return len(chat_prompt_ids(tokenizer, messages))


def vllm_generate(llm: Any, max_model_len: int) -> Generate:
    """``generate`` over a ``vllm.LLM``: one batched call per round on the prompts' token ids (each
    prompt templated and tokenized once: they are needed to fit the context anyway, and ``chat``
    would do both again). Prompts that do not leave ``MIN_NEW_TOKENS`` of context are skipped;
    others get at most the room that is left."""
    from vllm import SamplingParams

    tokenizer = llm.get_tokenizer()

    def generate(requests: list[Request]) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        batch, params, where = [], [], []
        for index, request in enumerate(requests):
            prompt = chat_prompt_ids(tokenizer, request.messages)
            room = max_model_len - len(prompt)
            if room < MIN_NEW_TOKENS:
                results[index] = Generation("", 0, f"prompt of {len(prompt)} tokens does not fit max_model_len "
                                                   f"{max_model_len}")
                continue
            batch.append({"prompt_token_ids": prompt})
            params.append(SamplingParams(temperature=request.temperature, top_p=request.top_p, top_k=request.top_k,
                                         repetition_penalty=request.repetition_penalty,
                                         max_tokens=min(request.max_tokens, room)))
            where.append(index)
        if batch:
            for index, output in zip(where, llm.generate(batch, params, use_tqdm=False), strict=True):
                completion = output.outputs[0]
                results[index] = Generation(completion.text, len(completion.token_ids))
        return [result for result in results if result is not None]

    return generate


class EndpointUnreachable(BadInputError):
    """The endpoint did not answer after the client's retries."""


def endpoint_generate(endpoint: EndpointEngine) -> Generate:
    """``generate`` over an OpenAI-compatible endpoint (vLLM's ``top_k`` and ``repetition_penalty``
    travel in the request body). Checks the endpoint answers first, so a wrong URL fails fast."""
    from openai import APIConnectionError, APIError, APITimeoutError

    from tanuki_pipelines.eval.client import reachable_client

    openai_client = reachable_client(endpoint.base_url, endpoint.api_key_env, "endpoint.base_url")

    def one(request: Request) -> Generation:
        extra = {"top_k": request.top_k, "repetition_penalty": request.repetition_penalty}
        try:
            response = openai_client.chat.completions.create(
                model=endpoint.model, messages=request.messages, temperature=request.temperature,
                top_p=request.top_p, max_tokens=request.max_tokens, extra_body=extra)
        except (APIConnectionError, APITimeoutError) as exc:
            raise EndpointUnreachable(f"endpoint.base_url: {endpoint.base_url} stopped answering: "
                                      f"{type(exc).__name__}") from None
        except APIError as exc:  # e.g. 400 for a prompt longer than the context: this request only
            return Generation("", 0, f"{type(exc).__name__}: {str(exc)[:200]}")
        text = (response.choices[0].message.content or "") if response.choices else ""
        return Generation(text, response.usage.completion_tokens if response.usage else 0)

    def generate(requests: list[Request]) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=endpoint.concurrency) as pool:
            return list(pool.map(one, requests))

    return generate

"""The official openai client against a real vLLM server on the debug checkpoint."""

from __future__ import annotations

import openai
import pytest

from serving_fixtures import API_KEY, SERVED_NAME

pytestmark = pytest.mark.slow


def client(url: str, key: str | None = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key or "wrong", max_retries=0, timeout=120)


def test_models_lists_the_served_name(vllm_url: str) -> None:
    models = client(vllm_url).models.list()
    assert [model.id for model in models.data] == [SERVED_NAME]


def test_chat_completion_through_the_chat_template(vllm_url: str) -> None:
    response = client(vllm_url).chat.completions.create(
        model=SERVED_NAME, messages=[{"role": "user", "content": "日本の首都は？"}], max_tokens=8, temperature=0)
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert response.usage.completion_tokens == 8 and choice.finish_reason == "length"


def test_streaming_chat_yields_deltas_that_add_up(vllm_url: str) -> None:
    api = client(vllm_url)
    messages = [{"role": "user", "content": "富士山について"}]
    stream = api.chat.completions.create(model=SERVED_NAME, messages=messages, max_tokens=8, temperature=0,
                                         stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([p for p in pieces if p]) >= 2
    whole = api.chat.completions.create(model=SERVED_NAME, messages=messages, max_tokens=8, temperature=0)
    assert "".join(pieces) == whole.choices[0].message.content


def test_text_completion(vllm_url: str) -> None:
    response = client(vllm_url).completions.create(model=SERVED_NAME, prompt="今日は", max_tokens=6, temperature=0)
    assert response.choices[0].text and response.usage.completion_tokens == 6


def test_request_without_the_api_key_is_401(vllm_url: str) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(vllm_url, key=None).models.list()
    assert caught.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        client(vllm_url, key=None).chat.completions.create(
            model=SERVED_NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=2)


def test_loadgen_cli_reports_streaming_latency_and_401s(vllm_url: str) -> None:
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "tanuki_pipelines.cli", "loadgen", "--base-url", vllm_url, "--model",
               SERVED_NAME, "--requests", "8", "--concurrency", "2", "--max-tokens", "6"]
    good = subprocess.run([*command, "--api-key", API_KEY], capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stderr
    report = json.loads(good.stdout)
    assert report["requests"] == 8 and report["failed"] == 0
    assert 0 < report["ttft_s"]["p50"] <= report["latency_s"]["p50"]
    assert report["output_tokens_per_s"] > 0
    bad = subprocess.run([*command, "--api-key", "wrong"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and json.loads(bad.stdout)["errors"] == {"HTTP 401": 8}


def test_smoke_probe_answers_with_the_pods_key_and_fails_without(vllm_url: str) -> None:
    import os
    import subprocess
    import sys
    from urllib.parse import urlparse

    port = str(urlparse(vllm_url).port)
    command = [sys.executable, "-m", "tanuki_serving.smoke", "--port", port, "--model", SERVED_NAME,
               "--prompt", "こんにちは", "--prompt", "Hello"]
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    assert subprocess.run(command, env={**env, "VLLM_API_KEY": API_KEY}, timeout=120).returncode == 0
    denied = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert denied.returncode == 1 and "HTTP 401" in denied.stderr
    wrong_model = subprocess.run([*command[:6], "nope", *command[7:]], env={**env, "VLLM_API_KEY": API_KEY},
                                 capture_output=True, text=True, timeout=120)
    assert wrong_model.returncode == 1 and "HTTP 404" in wrong_model.stderr

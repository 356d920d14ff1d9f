"""Smoke prompts against one vLLM replica: each must answer 200 with a non-empty message.

The check is the vLLM container's startup probe (``python3 -m tanuki_serving.smoke``), run inside
the pod with the pod's own API key (its mounted Secret file), on a cluster and on the local
kubelet alike, so a replica that loads but cannot answer never becomes ready: the canary
crash-loops and is rolled back.
"""

from __future__ import annotations

import argparse
import os
import sys


def check(base_url: str, model: str, api_key: str | None, prompts: list[str], timeout: float = 60.0) -> str | None:
    """None when every prompt got an answer, else why not (the first failure)."""
    import httpx  # here: the startup probe's import time counts

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    for prompt in prompts:
        body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": prompt}]}
        try:
            response = httpx.post(f"{base_url.rstrip('/')}/v1/chat/completions", json=body, headers=headers,
                                  timeout=timeout)
            if not response.is_success:
                return f"{prompt!r} → HTTP {response.status_code}"
            choices = response.json().get("choices") or []
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            return f"{prompt!r} → {type(exc).__name__}: {exc}"
        if not choices or not (choices[0].get("message") or {}).get("content"):
            return f"{prompt!r} → empty answer"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tanuki_serving.smoke", description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", required=True, help="served model name")
    parser.add_argument("--prompt", action="append", default=[], help="a smoke prompt (repeatable)")
    parser.add_argument("--api-key-file", default=None, help="file holding the API key (default: $VLLM_API_KEY)")
    args = parser.parse_args(argv)
    api_key = os.environ.get("VLLM_API_KEY")
    if args.api_key_file:
        try:
            api_key = open(args.api_key_file, encoding="utf-8").read().strip()
        except OSError as exc:
            print(f"--api-key-file: {exc}", file=sys.stderr)
            return 1
    failure = check(f"http://127.0.0.1:{args.port}", args.model, api_key, args.prompt)
    if failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

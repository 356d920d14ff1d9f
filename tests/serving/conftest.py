"""One real vLLM server with an API key, shared by the serving tests of the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serving_fixtures import API_KEY, SERVED_NAME
from vllm_server import vllm_server


@pytest.fixture(scope="session")
def vllm_url(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM on checkpoint ``a`` serving SERVED_NAME, requiring API_KEY; engine threads on core 0."""
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    with vllm_server(checkpoints["a"], name=SERVED_NAME, log=log, api_key=API_KEY, cpu_core=0) as url:
        yield url

"""What ``tanuki tokenize`` checks before planning shards (see ``tanuki_pipelines.preflight``)."""

from __future__ import annotations

from tanuki_pipelines.preflight import Preflight
from tanuki_pipelines.tokenize.config import TokenizeConfig


def preflight(config: TokenizeConfig, check: Preflight) -> None:
    check.tokenizer_size("tokenizer", config.tokenizer)
    check.sources("sources", config.sources)

"""What ``tanuki upcycle`` checks before it reads any weight (see ``tanuki_pipelines.preflight``)."""

from __future__ import annotations

from tanuki_common.errors import BadInputError
from tanuki_pipelines.preflight import Preflight, is_moe
from tanuki_pipelines.upcycle.config import UpcycleConfig
from tanuki_pipelines.upcycle.convert import parse_size


def preflight(config: UpcycleConfig, check: Preflight) -> None:
    try:
        parse_size(config.max_shard_size)
    except BadInputError as exc:
        check.problem(str(exc))
    model = check.checkpoint("source", config.source)
    if model is None:
        return
    if is_moe(model):
        check.problem(f"source: {config.source} is already a Mixture-of-Experts checkpoint; upcycle a dense one")
    elif model.get("model_type") != "llama":
        check.problem(f"source: expected a dense Llama checkpoint, config.json has model_type "
                      f"{model.get('model_type')!r}")

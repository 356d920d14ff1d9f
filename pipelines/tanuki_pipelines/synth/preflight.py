"""What ``tanuki synth`` checks before planning or starting vLLM (see ``tanuki_pipelines.preflight``)."""

from __future__ import annotations

from tanuki_pipelines.preflight import Preflight
from tanuki_pipelines.synth.config import SynthConfig


def preflight(config: SynthConfig, check: Preflight) -> None:
    if not config.documents and not config.dialogues.count:
        check.problem("documents: empty and dialogues.count is 0: nothing to generate; name a corpus or "
                      "set dialogues.count")
    if config.rewrites_per_document and config.documents and not config.styles:
        check.problem("styles: empty; name at least one rewriting style")
    check.sources("documents", config.documents)
    if config.dialogues.persona_file is not None:
        check.records("dialogues.persona_file", config.dialogues.persona_file, 'personas ({"persona": ...})',
                      lambda record: None if isinstance(record.get("persona"), str) else 'no string "persona"')
    if config.engine == "vllm":
        generator = config.generator
        model = check.checkpoint("generator.path", generator.path)
        check.vllm_engine("generator.path", model, "generator.", generator.max_model_len,
                          generator.tensor_parallel_size)

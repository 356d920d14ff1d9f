"""What ``tanuki quantize`` checks before it loads the model or calibrates (see
``tanuki_pipelines.preflight``)."""

from __future__ import annotations

from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.preflight import Preflight
from tanuki_pipelines.quantize.config import QuantizeConfig
from tanuki_pipelines.quantize.plan import scheme_problems
from tanuki_pipelines.quantize.texts import dataset_files


def _calibration_problem(record: dict[str, Any]) -> str | None:
    if isinstance(record.get("text"), str) or isinstance(record.get("messages"), list):
        return None
    return 'no string "text" and no "messages" list'


def preflight(config: QuantizeConfig, check: Preflight) -> None:
    if config.device == "cuda" and not check.hardware.gpus:
        check.problem("device: cuda but the pod has no GPU; use device auto or cpu, or request a GPU")
    on_gpu = config.device == "cuda" or (config.device == "auto" and check.hardware.gpus > 0)
    model = check.checkpoint("source", config.source)
    if model is not None:
        for problem in scheme_problems(config, model, on_gpu, check.hardware.cpu_flags):
            check.problem(problem)
        if config.scheme != "GGUF":
            check.served_by_vllm("source", model)
    path = config.calibration.path
    if path is not None and check.present("calibration.path", path, "a JSONL file of texts or a job's output"):
        try:
            first = dataset_files(path)[0]
        except BadInputError as exc:
            check.problem(str(exc))
        else:
            check.records("calibration.path", first, 'texts ({"text": ...} or {"messages": [...]})',
                          _calibration_problem)
    if config.scheme == "GGUF" and config.llama_cpp_dir is not None:
        check.present("llama_cpp_dir", config.llama_cpp_dir, "a llama.cpp checkout (convert_hf_to_gguf.py)")

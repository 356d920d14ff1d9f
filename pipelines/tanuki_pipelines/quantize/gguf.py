"""GGUF export with llama.cpp's own tools: ``convert_hf_to_gguf.py`` (f32/f16/bf16/q8_0) and, for the
other types, its quantizer (``llama_model_quantize``) from an f16 file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tanuki_common.errors import BadInputError
from tanuki_pipelines.quantize.config import GGUF_CONVERTER_TYPES

LLAMA_CPP_ENV = "TANUKI_LLAMA_CPP_DIR"
CONVERTER = "convert_hf_to_gguf.py"


def converter_path(configured: Path | None) -> Path:
    """``llama_cpp_dir``, ``$TANUKI_LLAMA_CPP_DIR``, or ``<venv>/share/llama.cpp`` (see the install notes)."""
    candidates = [configured] if configured else []
    if os.environ.get(LLAMA_CPP_ENV):
        candidates.append(Path(os.environ[LLAMA_CPP_ENV]))
    candidates.append(Path(sys.prefix) / "share" / "llama.cpp")
    for directory in candidates:
        if directory and (directory / CONVERTER).is_file():
            return directory / CONVERTER
    raise BadInputError(f"llama_cpp_dir: no {CONVERTER} in {', '.join(str(c) for c in candidates)}; unpack "
                        f"llama-cpp-python's sdist vendor/llama.cpp there or set ${LLAMA_CPP_ENV}")


def quantizer_ftype(gguf_type: str) -> int:
    import llama_cpp

    name = f"LLAMA_FTYPE_MOSTLY_{gguf_type.upper()}"
    if not hasattr(llama_cpp, name):
        raise BadInputError(f"gguf_type: this llama.cpp has no {gguf_type} ({name})")
    return int(getattr(llama_cpp, name))


def export_gguf(source: Path, out: Path, gguf_type: str, llama_cpp_dir: Path | None, log: Path) -> None:
    converter = converter_path(llama_cpp_dir)
    direct = gguf_type in GGUF_CONVERTER_TYPES
    converted = out if direct else out.with_name(out.stem + "-f16.gguf")
    with log.open("w") as handle:
        result = subprocess.run([sys.executable, str(converter), str(source), "--outfile", str(converted),
                                 "--outtype", gguf_type if direct else "f16"],
                                stdout=handle, stderr=subprocess.STDOUT, check=False)
    if result.returncode:
        tail = log.read_text(errors="replace")[-600:]
        raise RuntimeError(f"{converter.name} exited {result.returncode} (log {log}): {tail}")
    if direct:
        return
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = quantizer_ftype(gguf_type)
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(str(converted).encode(), str(out).encode(), ctypes.byref(params))
    converted.unlink()
    if status != 0:
        raise RuntimeError(f"llama_model_quantize {gguf_type} returned {status}")

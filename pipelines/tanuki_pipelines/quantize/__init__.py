"""``tanuki quantize``: smaller checkpoints (compressed-tensors for vLLM, GGUF for llama.cpp), gated on
measured agreement with the source model."""

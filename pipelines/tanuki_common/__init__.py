"""The bottom layer every tanuki package may import: what they must agree on and nothing else.

``errors`` (the bad-input exit the CLI, the operator's pod failure policy and the local runner
share) and ``cpu_vllm`` (the environment vLLM runs in on CPU, for servers and offline engines
alike). It imports nothing of tanuki's and nothing heavy; import-linter keeps it so.
"""

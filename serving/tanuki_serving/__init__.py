"""tanuki serving: vLLM launch, plugin and load generator (issue: Serving)."""

"""Synthetic-data stage: an LLM rewrites documents and writes dialogues (issue: SynthJob)."""

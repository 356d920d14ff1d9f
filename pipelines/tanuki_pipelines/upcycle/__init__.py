"""Upcycling stage: dense Llama checkpoint → Mixture-of-Experts checkpoint (issue: UpcycleJob)."""

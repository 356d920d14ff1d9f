"""Preference stage: pair generation, LLM judging in both orders, TRL DPO (issue: SFT/DPO)."""

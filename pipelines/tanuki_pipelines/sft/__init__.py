"""Supervised fine-tuning stage with TRL (issue: SFT/DPO)."""

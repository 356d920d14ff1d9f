"""Evaluation stage: MT-Bench-style judge grading and arena ratings (issue: EvalJob)."""

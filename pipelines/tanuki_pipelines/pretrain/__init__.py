"""Dense pretraining stage: HF Llama trained with DeepSpeed ZeRO, resumable, HF-exported."""

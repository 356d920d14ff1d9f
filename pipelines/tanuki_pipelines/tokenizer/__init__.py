"""Tokenizer stage: SentencePiece unigram trained with Tanuki's settings, exported for HF."""

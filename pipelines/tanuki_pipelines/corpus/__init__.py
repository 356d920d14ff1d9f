"""A small, self-written bilingual (Japanese/English) corpus for tests and demos.

Nothing in the test suite or the debug recipe may download data, so the
project ships hand-written seed paragraphs (``seeds/``) and a deterministic
generator (``generate``) that expands them into ``ja``/``en``/``synth`` JSONL
files. See ``tanuki_pipelines.corpus.generate`` for the entry points.
"""

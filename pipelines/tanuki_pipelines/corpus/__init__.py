"""The bilingual (Japanese/English) debug corpus for tests and demos.

Nothing in the test suite or the debug recipe may download data, so the project ships a small
self-written corpus as committed files in the debug recipe (``pipelines/recipes/debug/corpus/``:
``ja``/``en``/``synth`` JSONL and the DPO ``prompts.jsonl``); ``tanuki corpus --out DIR`` copies
them (see ``tanuki_pipelines.corpus.cli``).
"""

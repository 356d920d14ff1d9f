"""tanuki pipelines: the stages that build a Japanese-first LLM (tokenizer, pretrain, ...).

Each stage is a package with a ``config.py`` (pydantic only, importable without torch) and a
``main()`` wired into the ``tanuki`` CLI.
"""

"""What ``tanuki pretrain`` (and each torchrun rank in a pod) checks before it trains a tokenizer,
builds a token store or starts DeepSpeed (see ``tanuki_pipelines.preflight``)."""

from __future__ import annotations

from tanuki_pipelines.preflight import Preflight
from tanuki_pipelines.pretrain.config import NO_TOKENIZER, PretrainConfig
from tanuki_pipelines.pretrain.prepare import init_mismatches
from tanuki_pipelines.tokenize.store import TOKENIZER_DIR as STORE_TOKENIZER_DIR


def preflight(config: PretrainConfig, check: Preflight) -> None:
    model = config.model
    if config.tokenizer.path is not None:
        ids = check.tokenizer_size("tokenizer.path", config.tokenizer.path)
        check.vocabulary_fits("tokenizer.path", ids, "model.vocab_size", model.vocab_size)
    elif config.tokenizer.train is not None:
        trained = config.tokenizer.train
        check.sources("tokenizer.train.sources", trained.sources)
        if trained.vocab_size > model.vocab_size:
            check.problem(f"model.vocab_size: {model.vocab_size} but tokenizer.train.vocab_size is "
                          f"{trained.vocab_size}; set model.vocab_size to at least {trained.vocab_size}")
    elif config.data.store is None:
        check.problem(NO_TOKENIZER)
    if config.data.store is not None:
        if check.present("data.store", config.data.store, "a token store (what a TokenizeJob wrote)") \
                and config.tokenizer.path is None and config.tokenizer.train is None:
            ids = check.tokenizer_size("data.store", config.data.store / STORE_TOKENIZER_DIR)
            check.vocabulary_fits("data.store", ids, "model.vocab_size", model.vocab_size)
    else:
        check.sources("data.sources", config.data.sources)
    if config.init_from is not None:
        found = check.checkpoint("init_from", config.init_from)
        if found is not None and (wrong := init_mismatches(found, model)):
            check.problem(f"init_from: {config.init_from} does not match model: " + "; ".join(wrong))

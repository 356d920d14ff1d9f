"""Megatron-LM's indexed dataset (``megatron-core``), imported quietly.

``megatron.core`` warns at import that Transformer Engine and Apex are missing: they serve its
training code, not the dataset module used here, so those warnings are silenced for this import.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*(Transformer Engine|Apex).*")
    from megatron.core.datasets.indexed_dataset import DType, IndexedDataset, IndexedDatasetBuilder

optimal_dtype = DType.optimal_dtype

__all__ = ["IndexedDataset", "IndexedDatasetBuilder", "optimal_dtype"]

"""Dataset registry: real loaders -> `RealData` tensors, plus a cheap `DatasetMeta`.

Each file format is one module that registers itself with `@register_dataset(name)`; importing
this package registers the built-in ones.
"""

from __future__ import annotations

from . import cifar, digits, idx, imagefolder, tensors  # noqa: F401  (register the loaders)
from .registry import (
    ENTRY_POINT_GROUP,
    DatasetLoader,
    clear_cache,
    dataset_meta,
    dataset_names,
    list_datasets,
    load_dataset,
    register_dataset,
)
from .types import DatasetEntry, DatasetMeta, RealData

__all__ = [
    "ENTRY_POINT_GROUP",
    "DatasetEntry",
    "DatasetLoader",
    "DatasetMeta",
    "RealData",
    "clear_cache",
    "dataset_meta",
    "dataset_names",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]

"""Dataset registry: real loaders -> `RealData` (two `Split`s read on demand), plus a cheap `DatasetMeta`.

Each file format is one module that registers itself with `@register_dataset(name)`; importing
this package registers the built-in ones. Pixels stay in the stored dtype until a batch is on
its device (`PixelSpec`); whole splits are decoded once per node into the node cache (`cache`).
"""

from __future__ import annotations

from . import cifar, digits, idx, imagefolder, imagenet, tensors  # noqa: F401  (register the loaders)
from .cache import NodeCache
from .pixels import PixelSpec
from .real_data import DatasetMeta, RealData, build_real_data
from .registry import (
    ENTRY_POINT_GROUP,
    DatasetEntry,
    DatasetLoader,
    clear_cache,
    dataset_meta,
    dataset_names,
    list_datasets,
    load_dataset,
    register_dataset,
)
from .sources import ArraySource, DecodedSource, FileSource, PixelSource
from .split import Split

__all__ = [
    "ENTRY_POINT_GROUP",
    "ArraySource",
    "DatasetEntry",
    "DatasetLoader",
    "DatasetMeta",
    "DecodedSource",
    "FileSource",
    "NodeCache",
    "PixelSource",
    "PixelSpec",
    "RealData",
    "Split",
    "build_real_data",
    "clear_cache",
    "dataset_meta",
    "dataset_names",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]

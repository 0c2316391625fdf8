"""The dataset registry: `@register_dataset(name)` on a `DatasetLoader` subclass, one module per
file format, and a small per-process LRU so Ray workers reusing an actor load a dataset once.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ddray.errors import InputError, unknown

from .types import DatasetEntry, DatasetMeta, RealData

_LOADERS: dict[str, type[DatasetLoader]] = {}
_DATA_CACHE: OrderedDict[tuple, RealData] = OrderedDict()
_META_CACHE: OrderedDict[tuple, DatasetMeta] = OrderedDict()
_LOCK = threading.RLock()
_META_CACHE_SIZE = 64

L = TypeVar("L", bound="type[DatasetLoader]")


def _data_cache_size() -> int:
    """A few datasets at most: CIFAR-100 alone is ~600 MB of float32."""
    return max(0, int(os.environ.get("DDRAY_DATA_CACHE", "3")))


class DatasetLoader:
    """Base class of a format: subclasses set the class attributes and implement `load`.

    `field` is the spec path of the root (e.g. `datasets.cifar10.root`) so every error names
    what the user should fix. `meta` defaults to loading the pixels; override it when the
    format can count labels without decoding images.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_root: ClassVar[str | None] = None
    expected_files: ClassVar[tuple[str, ...]] = ()
    root_hint: ClassVar[str] = ""  # what the root should be, e.g. "the 'cifar-10-batches-py' folder"
    needs_root: ClassVar[bool] = True
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, field: str):
        self.name = name
        self.field = field

    def load(self, root: Path | None, **options: Any) -> RealData:
        raise NotImplementedError

    def meta(self, root: Path | None, **options: Any) -> DatasetMeta | None:
        """Counts without pixels, or None to fall back to `load(...).meta()`."""
        return None

    # --- helpers for subclasses -------------------------------------------------------------
    def error(self, message: str) -> InputError:
        return InputError(message, path=self.field)

    def option_error(self, option: str, message: str) -> InputError:
        return InputError(message, path=f"{_field_prefix(self.field)}.{option}")

    def expected_text(self) -> str:
        files = ", ".join(self.expected_files)
        hint = f"; {self.root_hint}" if self.root_hint else ""
        return f"(expected {files}{hint})" if files else (f"(expected {self.root_hint})" if hint else "")

    def missing(self, root: Path, names: list[str]) -> InputError:
        what = self.root_hint or ", ".join(self.expected_files)
        hint = f" (expected {what})" if what else ""
        return self.error(f"{root} does not contain {', '.join(names)}{hint}")

    def find(self, root: Path, name: str, gz: bool = False) -> Path | None:
        """`root/name`, or `root/name.gz` when the format may be gzipped."""
        for candidate in (root / name, root / f"{name}.gz") if gz else (root / name,):
            if candidate.is_file():
                return candidate
        return None

    def require(self, root: Path, names: tuple[str, ...] | list[str], gz: bool = False) -> list[Path]:
        """The paths of all `names` under `root`, or one InputError listing every missing one."""
        if not root.exists():
            raise self.error(f"{root} does not exist {self.expected_text()}".rstrip())
        if not root.is_dir():
            raise self.error(f"{root} is not a folder {self.expected_text()}".rstrip())
        found = [self.find(root, n, gz) for n in names]
        missing = [n for n, p in zip(names, found) if p is None]
        if missing:
            raise self.missing(root, missing)
        return [p for p in found if p is not None]


def register_dataset(name: str) -> Callable[[L], L]:
    """Class decorator: make a `DatasetLoader` subclass available as `name`."""

    def deco(cls: L) -> L:
        if name in _LOADERS and _LOADERS[name] is not cls:
            raise ValueError(f"dataset loader '{name}' is already registered")
        _LOADERS[name] = cls
        return cls

    return deco


def _field_prefix(field: str) -> str:
    return field[: -len(".root")] if field.endswith(".root") else field


def _loader(loader: str, field: str | None) -> DatasetLoader:
    field = field or f"datasets.{loader}.root"
    if loader not in _LOADERS:
        raise InputError(unknown("dataset loader", loader, _LOADERS), path=_field_prefix(field))
    return _LOADERS[loader](loader, field)


def _resolve(impl: DatasetLoader, root: str | os.PathLike | None, options: dict[str, Any]) -> tuple[Path | None, tuple]:
    """Check options and root; return the root path and the cache key."""
    bad = [o for o in options if o not in impl.options]
    if bad:
        prefix = _field_prefix(impl.field)
        raise InputError([(f"{prefix}.{o}", unknown("option", o, impl.options) if impl.options
                           else f"unknown option '{o}'; '{impl.name}' takes none") for o in bad])
    if root not in (None, "") and not impl.needs_root and impl.default_root is None:
        # a root such a loader silently ignored read as "my data is there" to the user
        raise impl.error(f"the '{impl.name}' loader takes no root (its data is bundled); remove `root`")
    chosen = root if root not in (None, "") else impl.default_root
    if chosen is None and impl.needs_root:
        raise impl.error(f"required: the '{impl.name}' loader has no default root {impl.expected_text()}".rstrip())
    path = Path(chosen).expanduser().resolve() if chosen is not None else None
    key = (impl.name, str(path) if path else None, json.dumps(options, sort_keys=True, default=str))
    return path, key


def _remember(cache: OrderedDict, key: tuple, value: Any, size: int) -> None:
    if size <= 0:
        return
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def load_dataset(loader: str, root: str | os.PathLike | None = None, *, field: str | None = None,
                 **options: Any) -> RealData:
    """The real train/test split of `loader` at `root` (or its default root), cached per process.

    `field` is the spec path used in error messages (default `datasets.<loader>.root`).
    The returned tensors are shared with other callers: do not modify them in place.
    """
    impl = _loader(loader, field)
    path, key = _resolve(impl, root, options)
    with _LOCK:
        if key in _DATA_CACHE:
            _DATA_CACHE.move_to_end(key)
            return _DATA_CACHE[key]
    data = impl.load(path, **options)
    with _LOCK:
        _remember(_DATA_CACHE, key, data, _data_cache_size())
        _remember(_META_CACHE, key, data.meta(), _META_CACHE_SIZE)
    return data


def dataset_meta(loader: str, root: str | os.PathLike | None = None, *, field: str | None = None,
                 **options: Any) -> DatasetMeta:
    """Class count, image shape and train class sizes, decoding pixels only when unavoidable."""
    impl = _loader(loader, field)
    path, key = _resolve(impl, root, options)
    with _LOCK:
        if key in _META_CACHE:
            return _META_CACHE[key]
        if key in _DATA_CACHE:
            return _DATA_CACHE[key].meta()
    meta = impl.meta(path, **options)
    if meta is None:
        return load_dataset(loader, root, field=field, **options).meta()
    with _LOCK:
        _remember(_META_CACHE, key, meta, _META_CACHE_SIZE)
    return meta


def list_datasets() -> list[DatasetEntry]:
    """Every registered loader with its default root and the files it expects."""
    return [
        DatasetEntry(name, cls.description, cls.default_root, cls.expected_files, cls.options)
        for name, cls in sorted(_LOADERS.items())
    ]


def dataset_names() -> list[str]:
    return sorted(_LOADERS)


def clear_cache() -> None:
    """Forget loaded datasets (tests, or a worker that must free memory)."""
    with _LOCK:
        _DATA_CACHE.clear()
        _META_CACHE.clear()

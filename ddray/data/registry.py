"""The dataset registry: `@register_dataset(name)` on a `DatasetLoader` subclass, one module per
file format, installed packages' `ddray.datasets` entry points (each a `DatasetLoader` subclass),
and a small per-process LRU so Ray workers reusing an actor load a dataset once.

The naming mechanics are `ddray.registry.Registry`; this module holds the loader contract and the
caches.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from ddray.errors import InputError, unknown
from ddray.registry import Registry, describe

from .cache import NodeCache
from .real_data import DatasetMeta, RealData
from .split import CacheSlot, Split

ENTRY_POINT_GROUP = "ddray.datasets"
_DATA_CACHE: OrderedDict[tuple, RealData] = OrderedDict()
_META_CACHE: OrderedDict[tuple, DatasetMeta] = OrderedDict()
_LOCK = threading.RLock()
_META_CACHE_SIZE = 64

L = TypeVar("L", bound="type[DatasetLoader]")


def _data_cache_size() -> int:
    """A few datasets at most (their labels, file lists and any pixels decoded without a node cache)."""
    return max(0, int(os.environ.get("DDRAY_DATA_CACHE", "3")))


class DatasetLoader:
    """Base class of a format: subclasses set the class attributes and implement `load`.

`load` returns a `RealData` whose `Split`s read pixels on demand (`ddray.data.sources`: an
`ArraySource` for arrays in memory, a `DecodedSource` for a file decoded as a whole, a
`FileSource` for one image file per row); it should decode nothing itself. The registry gives
file-backed splits their node-cache entries.

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


def _as_loader(name: str, obj: object, origin: str) -> type[DatasetLoader]:
    """The contract of a `ddray.datasets` plugin: it points at a `DatasetLoader` subclass."""
    if isinstance(obj, type) and issubclass(obj, DatasetLoader):
        return obj
    raise InputError(f"{origin}: expected a subclass of ddray.data.DatasetLoader, got {describe(obj)}")


datasets: Registry[type[DatasetLoader]] = Registry("dataset loader", ENTRY_POINT_GROUP, _as_loader)


def register_dataset(name: str) -> Callable[[L], L]:
    """Class decorator: make a `DatasetLoader` subclass available as `name`."""
    return datasets.register(name)  # type: ignore[return-value]


def _field_prefix(field: str) -> str:
    return field[: -len(".root")] if field.endswith(".root") else field


def _loader(loader: str, field: str | None) -> DatasetLoader:
    field = field or f"datasets.{loader}.root"
    return datasets.get(loader, path=_field_prefix(field))(loader, field)


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


def _checked(data: object, impl: DatasetLoader) -> RealData:
    """What every loader returns, checked once here so a plugin's mistake is named at load time,
    not discovered as a shape error deep inside a trial. Only labels and shapes are checked: no
    pixel is decoded here."""
    where = f"dataset loader '{impl.name}' ({type(impl).__module__}.{type(impl).__qualname__})"
    if not isinstance(data, RealData):
        raise InputError(f"{where}: load() returned {describe(data)}; expected a ddray.data.RealData")
    problems = []
    for name in ("train", "test"):
        split = getattr(data, name)
        if not isinstance(split, Split):
            problems.append(f"{name} must be a ddray.data.Split, got {describe(split)}")
            continue
        y = split.labels
        if y.dtype != torch.int64:
            problems.append(f"{name} labels must be int64, got {y.dtype}")
        elif y.numel() and not 0 <= int(y.min()) <= int(y.max()) < len(data.classes):
            problems.append(f"{name} labels must lie in [0, {len(data.classes)}) (one per class name)")
        if not (split.dtype == torch.uint8 or split.dtype.is_floating_point):
            problems.append(f"{name} pixels must be uint8 or float, got {split.dtype}")
    if not problems and data.train.shape != data.test.shape:
        problems.append(f"train and test images differ in shape ({data.train.shape} and {data.test.shape})")
    if problems:
        raise InputError(f"{where}: {'; '.join(problems)}")
    return data


def _bind_cache(data: RealData, cache: NodeCache, impl: DatasetLoader, path: Path | None, options: dict) -> None:
    """Give each file-backed split its place in the node cache: its identity is the loader, the
    resolved root, the options and the split (plus, when opened, the fingerprint of its files)."""
    for split in (data.train, data.test):
        if split.pixels.slot is None and split.pixels.source.files():
            describe = {"loader": impl.name, "root": str(path) if path else None,
                        "options": json.loads(json.dumps(options, sort_keys=True, default=str)), "split": split.name}
            split.pixels.slot = CacheSlot(cache, describe, path)


def _remember(cache: OrderedDict, key: tuple, value: Any, size: int) -> None:
    if size <= 0:
        return
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def load_dataset(loader: str, root: str | os.PathLike | None = None, *, field: str | None = None,
                 cache: NodeCache | None = None, **options: Any) -> RealData:
    """The real train/test split of `loader` at `root` (or its default root), cached per process.

    Nothing is decoded here: the splits read their pixels when a trial asks for them, through
    `cache` (default: this node's, `NodeCache.default()`). `field` is the spec path used in error
    messages (default `datasets.<loader>.root`). The returned data is shared with other callers.
    """
    impl = _loader(loader, field)
    path, key = _resolve(impl, root, options)
    cache = cache if cache is not None else NodeCache.default()
    key = (*key, str(cache.root), cache.budget_bytes)
    with _LOCK:
        if key in _DATA_CACHE:
            _DATA_CACHE.move_to_end(key)
            return _DATA_CACHE[key]
    data = _checked(impl.load(path, **options), impl)
    _bind_cache(data, cache, impl, path, options)
    with _LOCK:
        _remember(_DATA_CACHE, key, data, _data_cache_size())
        _remember(_META_CACHE, key[:3], data.meta(), _META_CACHE_SIZE)
    return data


def dataset_meta(loader: str, root: str | os.PathLike | None = None, *, field: str | None = None,
                 **options: Any) -> DatasetMeta:
    """Class count, image shape and train class sizes, decoding pixels only when unavoidable."""
    impl = _loader(loader, field)
    path, key = _resolve(impl, root, options)
    with _LOCK:
        if key in _META_CACHE:
            return _META_CACHE[key]
    meta = impl.meta(path, **options)
    if meta is None:
        return load_dataset(loader, root, field=field, **options).meta()
    with _LOCK:
        _remember(_META_CACHE, key, meta, _META_CACHE_SIZE)
    return meta


@dataclass(frozen=True)
class DatasetEntry:
    """One registered loader as `ddray datasets` lists it."""

    name: str
    description: str
    default_root: str | None
    expected_files: tuple[str, ...]
    options: tuple[str, ...] = ()
    needs_root: bool = True  # False: the data ships with a package (digits), no root to give

    @property
    def root_text(self) -> str:
        """Where the data comes from, as `ddray datasets` says it."""
        if not self.needs_root:
            return "bundled"
        return self.default_root or "required"


def list_datasets() -> list[DatasetEntry]:
    """Every loader (built-ins, then installed plugins) with its default root and expected files."""
    return [
        DatasetEntry(name, cls.description, cls.default_root, cls.expected_files, cls.options, cls.needs_root)
        for name, cls in datasets.items()
    ]


def dataset_names() -> list[str]:
    """Names `load_dataset` resolves: built-in loaders and installed `ddray.datasets` plugins."""
    return datasets.names()


def clear_cache() -> None:
    """Forget loaded datasets (tests, or a worker that must free memory)."""
    with _LOCK:
        _DATA_CACHE.clear()
        _META_CACHE.clear()

"""What an imported DD-Ranking config becomes: its `Imported` record and a `Note` per field.

Kept apart from the mapping code so the per-field mappers (`ddranking`, `ddranking_transforms`)
share these types without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# DD-Ranking dataset name -> (ddray loader, image size, folder under real_data_path, or None: the path itself).
DATASETS = {"CIFAR10": ("cifar10", 32, "cifar-10-batches-py"), "CIFAR100": ("cifar100", 32, "cifar-100-python"),
            "TinyImageNet": ("tinyimagenet", 64, None), "ImageNet1K": ("imagenet1k", 224, None)}
Kind = Literal["mapped", "fixed", "differs", "ignored", "error"]


@dataclass(frozen=True)
class Note:
    """What happened to one field of one config."""

    field: str
    kind: Kind
    text: str


@dataclass
class Imported:
    """One DD-Ranking config as ddray evaluates it."""

    file: str                       # METHOD/DATASET/IPCk.yaml
    method: str
    dataset: str                    # DD-Ranking's name (CIFAR10, TinyImageNet, ...)
    ipc: int
    arch: str = ""
    knobs: dict[str, Any] = field(default_factory=dict)        # protocol knobs, complete
    teachers: list[dict[str, Any]] = field(default_factory=list)
    full: dict[str, Any] = field(default_factory=dict)         # the spec's `full` section
    method_params: dict[str, Any] = field(default_factory=dict)
    seeds: int = 5
    cpu: int | None = None          # CPUs per trial (num_workers)
    root: str = ""
    notes: list[Note] = field(default_factory=list)

    @property
    def loader(self) -> str:
        return DATASETS[self.dataset][0]

    @property
    def errors(self) -> list[str]:
        return [f"{self.file}: {n.field}: {n.text}" for n in self.notes if n.kind == "error"]

    def note(self, fld: str, kind: Kind, text: str) -> None:
        self.notes.append(Note(fld, kind, text))

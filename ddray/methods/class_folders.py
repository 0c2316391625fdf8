"""Which class each folder of a distilled ImageFolder holds: matched by name or by index, never by position.

Distilled ImageNet sets are released as ImageFolders whose class folders are named in one of two
ways: by the dataset's own class names (WordNet ids such as `n01440764`, as torchvision's
ImageFolder of the real data names them), or by class index (`new000`…`new999` from SRe2L's
recover code, `00000`… from RDED's). A folder matched to the wrong class silently trains a
student on wrong labels, so the match is strict: every folder must name exactly one class, every
class must have exactly one folder, and anything else is an InputError naming the folder. The
mapping that was used is stated in one line (`describe`), so a log shows how labels were made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ddray.errors import InputError

_INDEXED = re.compile(r"^(?P<prefix>\D*)(?P<index>\d+)$")
_SHOWN = 3  # pairs shown in messages and in the log line


@dataclass(frozen=True)
class ClassMapping:
    """Folder names (in listing order), the class index each holds, and how they were matched."""

    folders: tuple[str, ...]
    ids: tuple[int, ...]
    how: str  # "class name" or "index in the folder name"

    def describe(self, classes: list[str], dataset: str) -> str:
        """One line for the worker log: how folders were matched, and the first few pairs."""
        pairs = sorted(zip(self.ids, self.folders))[:_SHOWN]
        shown = ", ".join(f"{folder} -> {cls} ({classes[cls]})" for cls, folder in pairs)
        return (f"{len(self.folders)} class folders matched to the classes of {dataset} by {self.how}: "
                f"{shown}{', ...' if len(self.folders) > _SHOWN else ''}")


def match_class_folders(names: list[str], classes: list[str], dataset: str, shown: str) -> ClassMapping:
    """Map folder `names` to class indices of `classes`; InputError naming each folder that does not fit.

    By class name when any folder is a class name (the others are then reported: wnids look like a
    prefix and a number too); else by index when every name is one shared prefix and a number
    (`new007`, `00007`, `7`: class 7). `shown` is the set's path as the user wrote it, for messages.
    """
    known = {c: i for i, c in enumerate(classes)}
    if any(n in known for n in names):
        mapping = ClassMapping(tuple(names), tuple(known.get(n, -1) for n in names), "class name")
    elif _indexed(names):
        mapping = ClassMapping(tuple(names), tuple(int(_INDEXED.match(n)["index"]) for n in names),  # type: ignore[index]
                               "index in the folder name")
    else:
        first = sorted(names)[0]
        raise InputError(f"class folder '{first}' matches no class of {dataset}: name the {len(classes)} class folders "
                         f"like its classes ({_examples(classes)}) or by class index (new000 or 00000 for class 0)",
                         path=f"{shown}/{first}")
    _check(mapping, classes, dataset, shown)
    return mapping


def _indexed(names: list[str]) -> bool:
    """Every name is one common prefix followed by digits (new000, new001, ...; 00000, ...)."""
    found = [_INDEXED.match(n) for n in names]
    return all(found) and len({m["prefix"] for m in found if m}) == 1


def _check(mapping: ClassMapping, classes: list[str], dataset: str, shown: str) -> None:
    """Every folder one class, every class one folder; each problem names its folder (or the set)."""
    k = len(classes)
    problems: list[tuple[str, str]] = []
    owner: dict[int, str] = {}
    for folder, cls in zip(mapping.folders, mapping.ids):
        where = f"{shown}/{folder}"
        if cls < 0:
            problems.append((where, f"matches no class of {dataset} (its classes are named like {_examples(classes)})"))
        elif cls >= k:
            problems.append((where, f"names class index {cls}, but {dataset} has {k} classes (0 to {k - 1})"))
        elif cls in owner:
            problems.append((where, f"names class {cls} ({classes[cls]}), as folder '{owner[cls]}' does"))
        else:
            owner[cls] = folder
    missing = [c for c in range(k) if c not in owner]
    if missing:
        listed = ", ".join(f"{c} ({classes[c]})" for c in missing[:_SHOWN]) + (", ..." if len(missing) > _SHOWN else "")
        count = (f"has {len(mapping.folders)} class folders, but {dataset} has {k} classes: "
                 if len(mapping.folders) != k else "")
        problems.append((shown, f"{count}no folder (matched by {mapping.how}) for {len(missing)} class(es): {listed}"))
    if problems:
        raise InputError(problems)


def _examples(classes: list[str]) -> str:
    return ", ".join(classes[:_SHOWN]) + (", ..." if len(classes) > _SHOWN else "")

"""Post-evaluation engine: train a student on a training set under a protocol, report test accuracy.

One module per job: `augment` (batched seeded augmentation), `losses`, `schedules`, `labels`
(soft/hybrid targets), `pools` (per-class index tables behind every class-balanced draw), `arms`
(random subsets, validation split), `validate` (training-set checks), `train` (the loop),
`teacher` (full-data arm and teachers), `checkpoint`, `evaluate`, `device`.
"""

from __future__ import annotations

ENGINE_VERSION = "1"
"""Bump whenever a change can move a trial's numbers (training loop, augmentation, losses, data
order, models, methods, defaults): every row records it, and the report never averages rows of two
engine versions in one cell. `tests/test_golden_numbers.py` fails when a fixed tiny CPU trial's
numbers change while this stays the same."""

from .arms import holdout_split, random_subset, rdm_arm, validation_split
from .augment import AugOut, build_augment
from .checkpoint import Checkpointer, MemoryCheckpointer
from .device import free_device_memory
from .evaluate import EvalScores, evaluate
from .teacher import load_teacher, save_teacher, train_teacher
from .train import TrainResult, train_student
from .validate import training_set_problems, validate_training_set

__all__ = [
    "ENGINE_VERSION",
    "AugOut",
    "Checkpointer",
    "EvalScores",
    "MemoryCheckpointer",
    "TrainResult",
    "build_augment",
    "evaluate",
    "free_device_memory",
    "holdout_split",
    "load_teacher",
    "random_subset",
    "rdm_arm",
    "save_teacher",
    "train_student",
    "train_teacher",
    "training_set_problems",
    "validate_training_set",
    "validation_split",
]

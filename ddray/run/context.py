"""What a stage handler gets (`TrialRun`) and returns (`Outcome`), and the worker's environment.

One trial's inputs are resolved here, lazily and once: the real data, its teachers, the distilled
set it evaluates and its resume checkpointer. Handlers (`run/stages.py`, `run/tuned.py`) then read
typed fields (`run.config.arm`), never config dicts, and return an `Outcome` that
`run/execute.py` turns into the stored row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from ddray.data import NodeCache, RealData, load_dataset
from ddray.data.cache import cache_dir
from ddray.digests import bytes_digest
from ddray.engine.train import EpochCallback, TrainResult
from ddray.protocols import Protocol
from ddray.store import Store, StoreCheckpointer
from ddray.store.fs import atomic_write_local
from ddray.trials import TeacherRef, Trial, TrialConfig


@dataclass(frozen=True)
class WorkerEnv:
    """What a trial needs besides its config; none of it changes the numbers, so none is in a key."""

    store: str                                                    # absolute path or URI: workers run elsewhere
    roots: dict[str, str | None] = field(default_factory=dict)    # dataset name -> data root on the nodes
    checkpoint_every: int = 0                                     # epochs; 0 = about every 10%, at least 5
    cache_gb: float | None = None                                 # node cache budget (runtime.cache_gb); None: what the disk spares


@dataclass(frozen=True)
class Outcome:
    """What a handler produced; accuracies are fractions, None where they do not apply."""

    status: str = "ok"                 # ok | diverged
    top1: float | None = None
    top5: float | None = None
    loss: float | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None      # the epoch whose accuracy is reported (checkpoint: best)
    synth_s: float | None = None       # time-to-synthesize of the set made or evaluated
    synth_device: str | None = None
    protocol_json: str | None = None   # what was trained, when it differs from the config's (tuned re-runs)

    @classmethod
    def of_training(cls, res: TrainResult, **extra: object) -> Outcome:
        return cls(status=res.status, top1=res.top1, top5=res.top5, loss=res.loss, epochs_run=res.epochs_run,
                   best_epoch=res.best_epoch,
                   **extra)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrialRun:
    """One trial being run in a worker: the planned trial, the config to train, and where things are.

    `trial.key` names the stored trial (row, checkpoint, artifacts) and stays fixed when a handler
    trains a derived `config` (a tuned re-run trains its cell's winning protocol under its own key).
    """

    trial: Trial
    config: TrialConfig
    env: WorkerEnv
    store: Store
    device: torch.device
    data: RealData
    on_epoch: EpochCallback | None = None

    @property
    def key(self) -> str:
        return self.trial.key

    def with_config(self, config: TrialConfig) -> TrialRun:
        return replace(self, config=config)

    def with_data(self, data: RealData) -> TrialRun:
        return replace(self, data=data)

    def checkpointer(self, epochs: int) -> StoreCheckpointer:
        """Resume checkpoints in the store, about every 10% of the epochs (or the spec's interval)."""
        return StoreCheckpointer(self.store, self.key, self.env.checkpoint_every or max(5, epochs // 10))

    def teachers(self) -> list[nn.Module]:
        """The config's teachers on the trial's device, in eval mode (none for hard labels)."""
        from ddray.engine import load_teacher

        refs: tuple[TeacherRef, ...] = getattr(self.config, "teachers", None) or ()
        out = []
        for ref in refs:
            path = ref.checkpoint if ref.checkpoint else teacher_file(self.store, ref.key or "")
            out.append(load_teacher(path, ref.arch, self.data).to(self.device).eval())
        return out

    def distilled_set(self):  # -> ddray.methods.DistilledSet
        """The set a syn arm evaluates: a user's files, or the one its synthesis trial stored."""
        from ddray.methods import FilesParams, load_distilled, load_files

        cfg = self.config
        method = cfg.method  # type: ignore[union-attr]
        if method.kind == "files":  # its params as the spec wrote them (normalized, lr), checked
            p = FilesParams.model_validate({**method.params, "files": method.files})  # type: ignore[union-attr]
            return load_files(p.files, self.data, cfg.ipc, p.normalized, lr=p.lr)  # type: ignore[union-attr]
        return load_distilled(self.store.loc.fs, self.store.artifact_dir("distilled", cfg.synth))  # type: ignore[union-attr]


def load_data(config: TrialConfig, env: WorkerEnv) -> RealData:
    """The real train/test split a config names, from the root the spec gave for it on this node,
    as its protocol sees it: ZCA-whitened (fitted on the whole train split, once per node) when
    the protocol says `zca`, so its arms, rdm subsets, test and validation splits all are."""
    ds = config.dataset
    data = load_dataset(ds.loader, env.roots.get(ds.name), field=f"datasets.{ds.name}.root",
                        cache=NodeCache.default(env.cache_gb), **ds.options)
    knobs = getattr(config, "protocol", None) or {}
    if knobs.get("zca"):
        data = data.whitened(float(knobs.get("zca_eps", Protocol.model_fields["zca_eps"].default)))
    return data


def teacher_file(store: Store, key: str) -> Path:
    """A local copy of a stored teacher in the node cache (`$DDRAY_CACHE_DIR/.teachers/`), named by
    the digest of its bytes.

    Why the digest and not the trial key: two stores (or a store rebuilt after a run on another
    GPU) can hold different weights under one key, and a copy named by key would hand one store's
    teacher to the other. The digest is stored beside the weights (`weights.digest`), so a warm
    node reads a few bytes; a teacher stored without one is downloaded and named by what it is.
    """
    folder = cache_dir() / ".teachers"
    known = store.get_artifact("teachers", key, "weights.digest")
    if known is not None and (folder / f"{known.decode().strip()}.pt").is_file():
        return folder / f"{known.decode().strip()}.pt"
    blob = store.get_artifact("teachers", key, "weights.pt")
    if blob is None:
        raise RuntimeError(f"teacher {key} is not in the store; its full-data trial must run first")
    path = folder / f"{bytes_digest(blob)}.pt"
    if not path.is_file():
        atomic_write_local(path, blob)
    return path

"""What a stage handler gets (`TrialRun`): the planned trial, the config it trains, and where things are.

One trial's inputs are resolved here, lazily and once: its teachers, the distilled set it
evaluates and its resume checkpointer. Handlers (`run/stages.py`, `run/tuned.py`) then read typed
fields (`run.config.arm`), never config dicts, and return an `Outcome` (`run/outcome.py`) that
`run/execute.py` turns into the stored row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

import torch
from torch import nn

from ddray.data import RealData
from ddray.engine.train import EpochCallback
from ddray.run.teacher_cache import teacher_file
from ddray.run.worker_env import WorkerEnv
from ddray.store import Store, StoreCheckpointer
from ddray.trials import EvalConfig, TeacherRef, Trial, TrialConfig

C = TypeVar("C")


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

    def config_as(self, kind: type[C]) -> C:
        """The config as the stage class its handler runs (narrowed for the type checker and checked:
        a handler given another stage's config fails here, naming both, not deep in the engine)."""
        if not isinstance(self.config, kind):
            raise TypeError(f"trial {self.key}: a {type(self.config).__name__} given to a {kind.__name__} handler")
        return self.config

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

        cfg = self.config_as(EvalConfig)
        method = cfg.method
        if method is None or (cfg.synth is None and method.kind != "files"):
            raise TypeError(f"trial {self.key}: the {cfg.arm} arm has no distilled set")
        if method.kind == "files":  # its params as the spec wrote them (normalized, lr), checked
            p = FilesParams.model_validate({**method.params, "files": method.files})
            return load_files(p.files, self.data, cfg.ipc, p.normalized, lr=p.lr)
        return load_distilled(self.store.loc.fs, self.store.artifact_dir("distilled", cfg.synth))

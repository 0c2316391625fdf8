"""What a stage handler returns (`Outcome`): its accuracies, loss and epochs, the time to
synthesize, and what it trained when that differs from its config. `run/execute.py: make_row`
turns it into the stored row; handlers never build rows themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddray.engine.train import TrainResult


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

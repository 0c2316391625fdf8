"""Execute one planned trial: load what it needs, run its stage's handler, return its typed row.

This is the only place where a plan's config meets the data, models, methods and engine. It
knows nothing of Ray: the Tune trainable and the Ray-free GPU benchmark both call `execute`.
"""

from __future__ import annotations

import platform
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch

import ddray
from ddray.digests import trial_inputs
from ddray.engine import ENGINE_VERSION
from ddray.engine.train import EpochCallback
from ddray.keys import canonical_json
from ddray.run.outcome import Outcome
from ddray.run.stages import run_eval, run_full, run_synth
from ddray.run.trial_run import TrialRun
from ddray.run.tuned import run_search, run_tuned
from ddray.run.worker_env import WorkerEnv, load_data
from ddray.store import Row, Store
from ddray.trials import Trial, identity_columns

HANDLERS: dict[str, Callable[[TrialRun], Outcome]] = {
    "full": run_full,        # full-data arm; its weights are the teacher of its key
    "synth": run_synth,      # one distilled set
    "eval": run_eval,        # a syn or rdm arm, tested on the real test split
    "search": run_search,    # tuned track: validation only, the test split is never read
    "tuned": run_tuned,      # tuned track: the cell's winning search config, tested once
}
"""Config handler name (`TrialConfig.handler`) -> the code that runs it."""


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def cpu_model() -> str:
    """The CPU's model name (what a row's numbers on CPU are reproducible on), else its architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_name(device: torch.device) -> str:
    """What computed the numbers: the GPU's name on CUDA, the CPU's model otherwise."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def execute(trial: Trial, env: WorkerEnv, device: torch.device, on_epoch: EpochCallback | None = None,
            store: Store | None = None) -> Row:
    """Run one trial and return its store row (not yet written).

    `store`: the worker's open store, so a trial opens it once (a remote open is a round trip).
    """
    t0 = time.perf_counter()
    run = TrialRun(trial=trial, config=trial.config, env=env, store=store or Store(env.store), device=device,
                   data=load_data(trial.config, env), on_epoch=on_epoch)
    inputs = trial_inputs(trial.config, run.data)  # before the run: what it reads is what it records
    outcome = HANDLERS[trial.config.handler](run)
    return make_row(trial, outcome, time.perf_counter() - t0, device_name(device), inputs, hardware_name(device))


def make_row(trial: Trial, out: Outcome, wall_s: float, device: str, inputs: dict[str, str] | None = None,
             hardware: str | None = None) -> Row:
    """The stored row of a finished trial: its config's columns, its outcome, and provenance."""
    c = trial.config
    ident = identity_columns(c, trial.key)
    if out.protocol_json:
        ident["protocol_json"] = out.protocol_json
    return Row(
        **ident,
        status=out.status, top1=out.top1, top5=out.top5, loss=out.loss, epochs_run=out.epochs_run,
        best_epoch=out.best_epoch, wall_s=wall_s,
        device=(out.synth_device or device) if c.stage == "synth" else device,
        synth_s=out.synth_s, synth_device=out.synth_device,
        ddray_version=ddray.__version__, torch_version=torch.__version__, hostname=socket.gethostname(),
        finished_at=datetime.now(timezone.utc).replace(microsecond=0),
        engine_version=ENGINE_VERSION, inputs_json=canonical_json(inputs) if inputs is not None else None,
        hardware=hardware,
    )

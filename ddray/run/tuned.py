"""The tuned-track handlers: a search trial (validation only) and a tuned re-run.

A search trial sees a *view* of the real data whose train split is the non-validation part and
whose "test" split is the held-out validation part, built without reading the real test split:
the training code reports validation accuracy as its top-1, and nothing in a search can select on
test numbers. The tuned re-run reads its cell's stored search rows, picks the winner
(`ddray.tuning.select.select_best`, pure), and trains it on the arm's set with its own seed,
tested once.
"""

from __future__ import annotations

from dataclasses import replace

from ddray.data import RealData
from ddray.engine import holdout_split
from ddray.keys import canonical_json
from ddray.run.outcome import Outcome
from ddray.run.stages import run_eval
from ddray.run.trial_run import TrialRun
from ddray.trials import EvalConfig, SearchConfig
from ddray.tuning.select import search_candidates, select_best
from ddray.tuning.space import apply_knobs


def validation_view(data: RealData, fraction: float, seed: int) -> RealData:
    """Train = the non-validation part of the real train split, test = its held-out validation part.

    Stratified and seeded (`holdout_split`): every arm of a cell validates on the same images, and
    rdm subsets drawn from this view's train split never contain a validation image. Both are
    views of the train split (no pixel is copied), normalized like the whole data.
    """
    pool, val = holdout_split(data.train.labels, fraction, seed)
    return RealData(name=f"{data.name}[val]", train=data.train.subset(pool), test=data.train.subset(val),
                    classes=list(data.classes), pixel_spec=data.pixels, scale=data.scale)


def run_search(run: TrialRun) -> Outcome:
    """One search trial: its top-1 is validation accuracy (the row's `top1`, stage `search`)."""
    cfg = run.config_as(SearchConfig)
    return run_eval(run.with_data(validation_view(run.data, cfg.val.fraction, cfg.val.seed)))


def run_tuned(run: TrialRun) -> Outcome:
    """The tuned re-run of one cell and seed: the winner's knobs, trained on the arm's set, tested once.

    Its `protocol_json` records the protocol actually trained (the chosen knobs included). When
    every searched config diverged there is nothing to re-run: the row says diverged.
    """
    cfg = run.config_as(EvalConfig)
    rows = run.store.read_stage_rows("search", run.trial.deps, ["key", "config_json", "top1", "status"])
    best = select_best(search_candidates(rows))
    if best is None:
        return Outcome(status="diverged", epochs_run=0)
    protocol = apply_knobs(cfg.protocol_dump(), best["knobs"], cfg.aug)
    trained = EvalConfig(**{**cfg.model_dump(exclude={"stage"}), "protocol": protocol})
    out = run_eval(run.with_config(trained))
    return replace(out, protocol_json=canonical_json(protocol))

"""Run the two kinds of tuned-track trials: a search trial (validation only) and a tuned re-run.

A search trial sees a *view* of the real data whose train split is the non-validation part and
whose "test" split is the held-out validation part, built without reading the real test split:
the training code reports validation accuracy as its top-1, and nothing in a search can select on
test numbers. The tuned re-run then reads its cell's stored search rows, picks the winner
(`select_best`), and trains it on the arm's full set with its own seed, tested once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyarrow.parquet as pq

from ddray.data import RealData
from ddray.keys import canonical_json
from ddray.store import Store
from ddray.tuning.select import search_candidates, select_best
from ddray.tuning.space import apply_knobs

RunEval = Callable[..., dict[str, Any]]


def validation_view(data: RealData, fraction: float, seed: int) -> RealData:
    """Train = the non-validation part of the real train split, test = its held-out validation part.

    Stratified and seeded (`holdout_split`): every arm of a cell validates on the same images, and
    rdm subsets drawn from this view's train split never contain a validation image.
    """
    from ddray.engine import holdout_split

    pool, val = holdout_split(data.train_y, fraction, seed)
    return RealData(name=f"{data.name}[val]", train_x=data.train_x[pool], train_y=data.train_y[pool],
                    test_x=data.train_x[val], test_y=data.train_y[val], classes=list(data.classes),
                    mean=data.mean, std=data.std)


def run_search(trial: dict[str, Any], data: RealData, run_eval: RunEval, **kw: Any) -> dict[str, Any]:
    """One search trial: its top-1 is validation accuracy (the row's `top1`, stage `search`)."""
    val = trial["config"]["val"]
    return run_eval(trial, validation_view(data, float(val["fraction"]), int(val["seed"])), **kw)


def read_search_rows(store: Store, keys: Iterable[str]) -> list[dict[str, Any]]:
    """The stored search rows among `keys` (a tuned trial's deps also hold synth and teacher keys)."""
    rows = []
    for k in keys:
        if store.has_row("search", k):
            with store.loc.fs.open_input_file(store.row_path("search", k)) as f:
                rows += pq.read_table(f, columns=["key", "config_json", "top1", "status"]).to_pylist()
    return rows


def run_tuned(trial: dict[str, Any], data: RealData, run_eval: RunEval, *, store: Store, **kw: Any) -> dict[str, Any]:
    """The tuned re-run of one cell and seed: the winner's knobs, trained on the arm's set, tested once.

    Its `protocol_json` records the protocol actually trained (the chosen knobs included). When
    every searched config diverged there is nothing to re-run: the row says diverged.
    """
    cfg = trial["config"]
    best = select_best(search_candidates(read_search_rows(store, trial["deps"])))
    if best is None:
        return {"status": "diverged", "top1": None, "top5": None, "loss": None, "epochs_run": 0}
    protocol = apply_knobs(cfg["protocol"], best["knobs"], cfg["aug"])
    out = run_eval({**trial, "config": {**cfg, "protocol": protocol}}, data, store=store, **kw)
    return {**out, "protocol_json": canonical_json(protocol)}

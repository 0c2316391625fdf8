"""Aggregation over store rows: joins, missing and diverged inputs, tracks, bootstrap, rankings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import kendalltau

from ddray.errors import InputError
from ddray.report import build_report, hlr, ior, lrs
from ddray.report.bootstrap import descending_ranks, nan_quantiles
from ddray.report.intervals import t_interval
from ddray.report.rankings import kendall_tau_b
from benchmarks.synthetic_rows import synthetic_rows, to_schema
from ddray.store.schema import COLUMNS

N_BOOT = 200


def make_rows(specs: list[dict]) -> pd.DataFrame:
    """Hand-written rows: defaults for every schema column, then the given fields."""
    base = {c: None for c in COLUMNS}
    base.update(track="fixed", dataset="cifar10", arch="convnet-d3", status="ok", config_json="{}", aug=True)
    rows = []
    for i, spec in enumerate(specs):
        row = dict(base, key=f"k{i}", **spec)
        if row["top1"] is None and row["stage"] != "synth":
            row["status"] = "diverged"
        rows.append(row)
    return to_schema(pd.DataFrame(rows))


def full(seed, acc, **kw):
    return dict(stage="full", arm="full", labels="hard", seed=seed, top1=acc, **kw)


def ev(arm, seed, acc, cell, method=None, labels="hard", aug=True, **kw):
    return dict(stage="eval", arm=arm, method=method, ipc=10, labels=labels, aug=aug, seed=seed, top1=acc, cell=cell,
                protocol="rd3", **kw)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    specs = []
    for s, (f, dm, sh, ss, rh, rs) in enumerate([(0.80, 0.30, 0.25, 0.50, 0.20, 0.45), (0.82, 0.32, 0.27, 0.53, 0.21, 0.46)]):
        specs += [
            full(s, f),
            ev("rdm", s, rh, f"hard-{s}"),                               # shared by both methods
            ev("rdm", s, 0.99, f"other-teacher-{s}", teacher="t2"),      # another cell: must never be used
            ev("rdm", s, rs, f"soft-{s}", labels="soft"),
            ev("syn", s, dm, f"hard-{s}", method="dm"),
            ev("syn", s, sh, f"hard-{s}", method="sre2l"),
            ev("syn", s, ss, f"soft-{s}", method="sre2l", labels="soft"),
        ]
    return make_rows(specs)


def test_joins_syn_rdm_by_cell_and_full_by_dataset_arch_seed(small):
    rep = build_report(small, n_boot=N_BOOT)
    ps = rep.per_seed.set_index(["method", "seed"])
    assert ps.loc[("dm", 0), "hlr"] == pytest.approx(0.80 - 0.30)
    assert ps.loc[("dm", 1), "ior"] == pytest.approx(0.32 - 0.21)
    assert ps.loc[("sre2l", 0), "label_setting"] == "soft"
    assert ps.loc[("sre2l", 0), "hlr"] == pytest.approx(0.80 - 0.25)
    assert ps.loc[("sre2l", 1), "ior"] == pytest.approx(0.53 - 0.46)
    sc = rep.scores.set_index("method")
    per_seed = [lrs(hlr(0.80, 0.30), ior(0.30, 0.20)), lrs(hlr(0.82, 0.32), ior(0.32, 0.21))]
    assert sc.loc["dm", "lrs_mean"] == pytest.approx(np.mean(per_seed))
    assert sc.loc["dm", "lrs_std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert sc.loc["dm", "lrs_of_mean"] == pytest.approx(lrs(hlr(0.81, 0.31), ior(0.31, 0.205)))
    assert sc.loc["dm", "lrs_reason"] == ""
    # ARS needs aug-off rows, which this store lacks: it says so instead of scoring zero
    assert np.isnan(sc.loc["dm", "ars_mean"])
    assert sc.loc["dm", "ars_reason"] == "n/a (needs syn/hard aug off)"


def test_fallback_join_without_cell_gives_the_same_scores():
    rows = synthetic_rows(seeds=(0, 1), ipcs=(10,), datasets=("cifar10",))
    a = build_report(rows, n_boot=N_BOOT).scores
    b = build_report(rows.assign(cell=None), n_boot=N_BOOT).scores
    pd.testing.assert_frame_equal(a, b)
    assert a["lrs_mean"].notna().all() and a["ars_mean"].notna().all()


def test_missing_full_rows_give_an_explicit_reason_not_zero():
    rows = synthetic_rows(archs=("convnet-d3", "resnet18"), ipcs=(10,), datasets=("cifar10",))
    rows = rows[~((rows["stage"] == "full") & (rows["arch"] == "resnet18"))]
    sc = build_report(rows, n_boot=N_BOOT).scores
    res = sc[sc["arch"] == "resnet18"]
    assert res["lrs_mean"].isna().all() and res["lrs_of_mean"].isna().all()
    assert set(res["lrs_reason"]) == {"n/a (needs full/hard for resnet18)"}
    assert res["ars_mean"].notna().all()          # ARS does not need full data
    assert sc[sc["arch"] == "convnet-d3"]["lrs_mean"].notna().all()


def test_seeds_without_a_full_arm_use_the_mean_of_those_with_one(small):
    rows = small[~((small["stage"] == "full") & (small["seed"] == 1))]   # full.seeds: [0]
    rep = build_report(rows, n_boot=N_BOOT)
    ps = rep.per_seed.set_index(["method", "seed"])
    assert ps.loc[("dm", 1), "hlr"] == pytest.approx(0.80 - 0.32)          # seed 0's full accuracy
    assert rep.scores.set_index("method").loc["dm", "lrs_n"] == 2
    assert any("use the mean of seed(s) 0" in w for w in rep.warnings)


def test_diverged_inputs_are_missing_and_reported(small):
    rows = small.copy()
    is_full1 = (rows["stage"] == "full") & (rows["seed"] == 1)
    rows.loc[is_full1, ["top1", "status"]] = [np.nan, "diverged"]
    rep = build_report(rows, n_boot=N_BOOT)
    dm = rep.scores.set_index("method").loc["dm"]
    assert dm["lrs_n"] == 1
    assert dm["lrs_mean"] == pytest.approx(lrs(hlr(0.80, 0.30), ior(0.30, 0.20)))
    assert dm["lrs_reason"] == "1/2 seeds (seed 1: full/hard diverged for convnet-d3)"
    assert np.isnan(dm["lrs_t_lo"]) and np.isnan(dm["lrs_t_hi"])  # one scored seed: no t-interval
    acc = rep.accuracy.set_index("method").loc["full"]
    assert acc["n_diverged"] == 1 and acc["n_seeds"] == 1

    rows.loc[rows["stage"] == "full", ["top1", "status"]] = [np.nan, "diverged"]
    rep = build_report(rows, n_boot=N_BOOT)
    assert set(rep.scores["lrs_reason"]) == {"n/a (full/hard diverged for convnet-d3)"}
    assert rep.scores["lrs_mean"].isna().all()


def test_t_interval_of_the_mean_over_seeds_is_students():
    """mean ± t(0.975, n−1)·s/√n over the seeds that scored, checked against scipy.stats.t (3 and 2 seeds)."""
    accs = [(0.80, 0.30, 0.20), (0.82, 0.36, 0.21), (0.79, 0.27, 0.24)]  # (full, syn, rdm) per seed
    specs = []
    for s_, (f, sy, rd) in enumerate(accs):
        specs += [full(s_, f), ev("rdm", s_, rd, f"c{s_}"), ev("syn", s_, sy, f"c{s_}", method="dm")]
    for n in (3, 2):
        rep = build_report(make_rows(specs[: 3 * n]), n_boot=N_BOOT)
        dm = rep.scores.set_index("method").loc["dm"]
        per_seed = np.array([lrs(hlr(f, sy), ior(sy, rd)) for f, sy, rd in accs[:n]])
        want = stats.t.interval(0.95, df=n - 1, loc=per_seed.mean(), scale=stats.sem(per_seed))
        assert (dm["lrs_t_lo"], dm["lrs_t_hi"]) == pytest.approx(want, rel=1e-12)
        acc = np.array([sy for _, sy, _ in accs[:n]])
        want = stats.t.interval(0.95, df=n - 1, loc=acc.mean(), scale=stats.sem(acc))
        assert (dm["acc_syn_t_lo"], dm["acc_syn_t_hi"]) == pytest.approx(want, rel=1e-12)
        assert np.isnan(dm["ars_t_lo"]) and np.isnan(dm["ars_t_hi"])  # no ARS (no aug-off rows): no interval
    assert dm["lrs_t_hi"] - dm["lrs_t_lo"] > dm["lrs_hi"] - dm["lrs_lo"]  # 2 seeds: 3 distinct resamples, t = 12.7


def test_t_interval_needs_two_seeds():
    lo, hi = t_interval(np.array([0.5, 0.5, 0.5]), np.array([np.nan, 0.1, 0.1]), np.array([1, 2, 5]), 0.9)
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    assert (lo[1], hi[1]) == pytest.approx(stats.t.interval(0.9, 1, loc=0.5, scale=0.1 / np.sqrt(2)))
    assert (lo[2], hi[2]) == pytest.approx(stats.t.interval(0.9, 4, loc=0.5, scale=0.1 / np.sqrt(5)))


def test_tracks_are_never_mixed():
    both = synthetic_rows(tracks=("fixed", "tuned"), ipcs=(10,), datasets=("cifar10",))
    fixed_only = both[both["track"] == "fixed"]
    a = build_report(both, n_boot=N_BOOT)
    b = build_report(fixed_only, n_boot=N_BOOT)
    fixed_a = a.scores[a.scores["track"] == "fixed"].reset_index(drop=True)
    pd.testing.assert_frame_equal(fixed_a, b.scores)   # incl. bootstrap intervals: seeded per group
    assert set(a.scores["track"]) == {"fixed", "tuned"}
    tuned = a.scores[a.scores["track"] == "tuned"]
    assert tuned["acc_full"].notna().all()               # full rows (fixed track) are shared
    assert len(a.tuning) == len(tuned)
    gain = a.tuning["acc_syn_gain"].to_numpy()
    assert np.allclose(gain, a.tuning["acc_syn_tuned"] - a.tuning["acc_syn_fixed"])
    assert gain.mean() > 0                               # the synthetic tuned track is ~1 point better
    assert b.tuning.empty


def test_bootstrap_is_reproducible_and_seeded():
    rows = synthetic_rows(seeds=range(5), ipcs=(10,), datasets=("cifar10",))
    a, b = build_report(rows, n_boot=N_BOOT, seed=3), build_report(rows, n_boot=N_BOOT, seed=3)
    pd.testing.assert_frame_equal(a.scores, b.scores)
    pd.testing.assert_frame_equal(a.rankings, b.rankings)
    c = build_report(rows, n_boot=N_BOOT, seed=4)
    assert not np.allclose(a.scores["lrs_lo"], c.scores["lrs_lo"])
    s = a.scores
    assert (s["lrs_lo"] <= s["lrs_mean"] + 1e-12).all() and (s["lrs_mean"] <= s["lrs_hi"] + 1e-12).all()


def test_rankings_intervals_and_kendall():
    rows = synthetic_rows(seeds=range(4), ipcs=(1, 10), datasets=("cifar10",))
    rep = build_report(rows, n_boot=N_BOOT)
    r = rep.rankings
    assert len(r) == len(rep.scores)
    for key in ("lrs", "ars", "acc"):
        assert (r[f"rank_{key}_lo"] <= r[f"rank_{key}_hi"]).all()
        assert r[f"rank_{key}"].between(1, r["n_methods"]).all()
    assert (r["rank_lrs_lambda_min"] <= r["rank_lrs"]).all() and (r["rank_lrs"] <= r["rank_lrs_lambda_max"]).all()
    assert (r["rank_ars_gamma_min"] <= r["rank_ars"]).all() and (r["rank_ars"] <= r["rank_ars_gamma_max"]).all()
    for _, k in rep.kendall.iterrows():
        sub = rep.scores[(rep.scores["ipc"] == k["ipc"]) & (rep.scores["arch"] == k["arch"])]
        assert k["kendall_tau"] == pytest.approx(kendalltau(sub["acc_syn"], sub["lrs_mean"]).statistic)
    # the best synthetic method (rded, highest quality) ranks first by accuracy everywhere
    assert set(r[r["rank_acc"] == 1]["method"]) == {"rded"}


def test_rank_and_quantile_helpers():
    x = np.array([[0.3, np.nan, 0.5, 0.3, 0.1]])
    assert np.array_equal(descending_ranks(x), np.array([[2, np.nan, 1, 2, 4]]), equal_nan=True)
    a = np.random.default_rng(0).normal(size=(7, 50))
    a[0, :10] = np.nan
    a[1] = np.nan
    lo, hi = nan_quantiles(a, (0.025, 0.975), axis=1)
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        want_lo, want_hi = np.nanquantile(a, (0.025, 0.975), axis=1)
    assert np.isnan(lo[1]) and np.isnan(hi[1])
    np.testing.assert_array_max_ulp(np.delete(lo, 1), np.delete(want_lo, 1), maxulp=1)
    np.testing.assert_array_max_ulp(np.delete(hi, 1), np.delete(want_hi, 1), maxulp=1)
    x, y = np.array([1.0, 2, 3, 4, 4]), np.array([1.0, 3, 2, 4, 5])
    tau, n = kendall_tau_b(x, y)
    assert n == 5 and tau == pytest.approx(kendalltau(x, y).statistic)


def test_bad_rows_are_input_errors(small):
    with pytest.raises(InputError, match="rows.top1.*percentages"):
        build_report(small.assign(top1=small["top1"] * 100))
    with pytest.raises(InputError, match="rows: missing column"):
        build_report(small.drop(columns=["cell"]))
    with pytest.raises(InputError, match="rows.arm: unknown value 'sny'"):
        build_report(small.assign(arm=small["arm"].replace("syn", "sny")))
    with pytest.raises(InputError, match="lambda"):
        build_report(small, lam=2)


def test_accuracy_table_has_rdm_and_full_rows(small):
    acc = build_report(small, n_boot=N_BOOT).accuracy
    assert {"full", "rdm", "dm", "sre2l"} <= set(acc["method"])
    rdm_hard = acc[(acc["method"] == "rdm") & (acc["labels"] == "hard")]
    # two rdm hard cells (teachers differ): listed, never merged into one number with the other cell
    assert len(small[(small["arm"] == "rdm") & (small["labels"] == "hard")]) == 4
    assert rdm_hard["n_rows"].sum() == 4 and len(rdm_hard) == 2
    assert rdm_hard.set_index("teacher").loc["t2", "acc_mean"] == pytest.approx(0.99)
    full_row = acc[acc["method"] == "full"].iloc[0]
    assert pd.isna(full_row["ipc"]) and full_row["acc_mean"] == pytest.approx(0.81)


def test_empty_rows_give_an_empty_report():
    rows = synthetic_rows().iloc[:0]
    rep = build_report(rows, n_boot=N_BOOT)
    assert rep.scores.empty and rep.rankings.empty and rep.accuracy.empty


def test_a_fact_two_tracks_share_is_said_once():
    """Two recipes in one store (tracks fixed:epochs=…) borrow seed 0's full-data arm: the report
    says so in one line, not once per track."""
    rows = synthetic_rows(ipcs=(10,), datasets=("cifar10",))
    rows = rows[(rows["stage"] != "full") | (rows["seed"] == 0)].copy()
    is_eval = rows["stage"] == "eval"
    rows.loc[is_eval, "config_json"] = '{"protocol": {"epochs": 1}}'
    other = rows[is_eval].assign(key=rows.loc[is_eval, "key"].str[::-1], config_json='{"protocol": {"epochs": 2}}',
                                 protocol_json=rows.loc[is_eval, "protocol_json"] + " ")  # another resolved protocol
    report = build_report(pd.concat([rows, other], ignore_index=True), n_boot=N_BOOT)
    assert len(set(report.scores["track"])) == 2
    assert [w for w in report.warnings if "Acc(full, hard)" in w] == [
        "Acc(full, hard) for cifar10/convnet-d3: seeds without their own full-data arm use the mean of seed(s) 0"]

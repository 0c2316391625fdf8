"""report.html as an explorer: its sliders recompute Python's LRS, ARS and ranks, in a real browser.

The browser tests drive Debian's `chromium` through the DevTools protocol (tests/chromium.py) and
are skipped where none is installed; the page-structure tests run everywhere.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from chromium import Browser, find_chromium
from ddray.report import build_report, write_report
from ddray.report.display import mean_std
from ddray.report.explore import SEED_INPUTS, explore_data
from benchmarks.synthetic_rows import synthetic_rows

pytestmark = pytest.mark.browser  # drives chromium: not in `make test-fast`

ODD = 'r&d</script><b>"x"'
"""A method name that would break out of the page's <script> or attributes if not escaped."""
KEY = ["track", "method", "dataset", "ipc", "arch"]
WEIGHTS = [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
"""(λ, γ): each weight at 0, 0.5 and 1, never equal, so swapped sliders would show."""

needs_browser = pytest.mark.skipif(find_chromium() is None, reason="no chromium installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Ranks that change with λ, partial seeds (diverged arms), an n/a arch, a tie, an odd name."""
    rows = synthetic_rows(methods=("random", "herding", "dm", "rded"), soft_methods=("rded",), datasets=("cifar10",),
                          ipcs=(1, 10), archs=("convnet-d3", "resnet18"), seeds=(0, 1, 2), diverged=0.1, seed=3)
    rows = rows[~((rows["stage"] == "full") & (rows["arch"] == "resnet18"))]  # LRS n/a for resnet18
    twin = rows[rows["method"] == "herding"].assign(method="kcenter")  # the same accuracies: a tie at every λ
    twin["key"] = twin["key"] + "-twin"
    rows = pd.concat([rows, twin], ignore_index=True)
    rows.loc[rows["method"] == "random", "method"] = ODD
    return rows


@pytest.fixture(scope="module")
def built(rows):
    return build_report(rows, n_boot=20)


@pytest.fixture(scope="module")
def page_file(built, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    write_report(built, out)
    return out / "report.html"


# ---- the page as a file ----------------------------------------------------------------------


def test_page_is_one_self_contained_file(page_file):
    page = page_file.read_text(encoding="utf-8")
    assert "<link" not in page and not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert not re.search(r"<script[^>]*\ssrc=", page)  # every script is inline
    assert page.count("<script") == 2 and "function applySort" in page and 'id="ddray-data"' in page
    assert '<input type="range" id="lambda"' in page and '<select data-facet="ipc">' in page
    assert "</script><b>" not in page  # the odd method name never closes a tag


def test_embedded_data_are_the_per_seed_inputs(built, page_file):
    page = page_file.read_text(encoding="utf-8")
    text = re.search(r'<script type="application/json" id="ddray-data">(.*?)</script>', page, re.S).group(1)
    data = json.loads(text)
    assert data == explore_data(built)
    assert data["settings"]["lambda"] == 0.5 and data["settings"]["ddof"] == 1
    assert len(data["cells"]) == len(built.scores) and len(data["seeds"]) == len(built.per_seed)
    ps = built.per_seed.set_index(KEY + ["seed"])
    for s in data["seeds"]:
        c = data["cells"][s["cell"]]
        want = ps.loc[(c["track"], c["method"], c["dataset"], int(c["ipc"]), c["arch"], s["seed"])]
        for col in SEED_INPUTS:
            assert (s[col] is None and np.isnan(want[col])) or s[col] == want[col]


# ---- the page in a browser ------------------------------------------------------------------

READ_LIVE = """[...document.querySelectorAll('#live tbody tr')].map(tr => ({
  key: [tr.dataset.track, tr.dataset.method, tr.dataset.dataset, tr.dataset.ipc, tr.dataset.arch], hidden: tr.hidden,
  cells: Object.fromEntries([...tr.cells].map(td => [td.dataset.col, [td.textContent, td.dataset.v]]))}))"""


def set_weights(page, lam: float, gam: float) -> None:
    for name, value in (("lambda", lam), ("gamma", gam)):
        page.evaluate(f"(() => {{const s = document.getElementById('{name}'); s.value = '{value}';"
                      "s.dispatchEvent(new Event('input', {bubbles: true}));})()")


def live(page) -> dict[tuple, dict]:
    return {tuple(r["key"]): r for r in page.evaluate(READ_LIVE)}


def expected(rows, lam: float, gam: float, compat: str | None = None) -> dict[tuple, dict]:
    """What Python says each live cell shows at (λ, γ): display strings, raw values, ranks."""
    rep = build_report(rows, lam=lam, gamma=gam, compat=compat, n_boot=1)
    s = rep.scores.merge(rep.rankings, on=KEY)
    out = {}
    for score in ("lrs", "ars"):
        text = mean_std(s[f"{score}_mean"], s[f"{score}_std"], 1.0, 4) if compat else mean_std(s[f"{score}_mean"], s[f"{score}_std"], 100.0)
        why = s[f"{score}_reason"].fillna("")
        s[f"{score}_text"] = text.where(s[f"{score}_mean"].notna(), why) + np.where((why != "") & s[f"{score}_mean"].notna(), "†", "")
    for r in s.to_dict("records"):
        out[(r["track"], r["method"], r["dataset"], str(r["ipc"]), r["arch"])] = r
    return out


def _v(cell: list) -> float:
    return float(cell[1]) if cell[1] not in (None, "") else math.nan


def assert_same(a: float, b: float) -> None:
    assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else f"{100 * x:.2f}"


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("no chromium installed (apt-get install -y chromium)")
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def page(browser, page_file):
    p = browser.open(page_file)
    yield p
    assert p.errors() == []


@needs_browser
@pytest.mark.parametrize(("lam", "gam"), WEIGHTS)
def test_sliders_recompute_pythons_scores_and_ranks(page, rows, lam, gam):
    set_weights(page, lam, gam)
    shown, want = live(page), expected(rows, lam, gam)
    assert shown.keys() == want.keys()
    assert page.evaluate("[document.getElementById('lambda-out').textContent, document.getElementById('gamma-out').textContent]") == [
        f"{lam:.2f}", f"{gam:.2f}"]
    for key, w in want.items():
        c = shown[key]["cells"]
        for score in ("lrs", "ars"):
            assert c[score][0] == w[f"{score}_text"], (key, score)
            assert_same(_v(c[score]), w[f"{score}_mean"])
            assert c[f"{score}_of_mean"][0] == _fmt(w[f"{score}_of_mean"])
            assert_same(_v(c[f"{score}_of_mean"]), w[f"{score}_of_mean"])
        for rank in ("rank_lrs", "rank_ars", "rank_acc"):
            assert_same(_v(c[rank]), w[rank])
            assert c[rank][0].split(" ")[0] == ("" if math.isnan(w[rank]) else str(int(w[rank])))
        assert (c["hlr"][0], c["ior"][0], c["acc"][0]) == (_fmt(w["hlr"]), _fmt(w["ior"]), _fmt(w["acc_syn"]))


@needs_browser
def test_moving_lambda_from_half_to_zero_moves_lrs_and_the_rank_column(page, rows):
    set_weights(page, 0.5, 0.5)
    before = live(page)
    set_weights(page, 0.0, 0.5)
    after, want = live(page), expected(rows, 0.0, 0.5)
    scored = [k for k, w in want.items() if not math.isnan(w["lrs_mean"])]
    assert scored and all(after[k]["cells"]["lrs"][0] != before[k]["cells"]["lrs"][0] for k in scored)
    assert all(after[k]["cells"]["lrs"][0] == want[k]["lrs_text"] for k in scored)
    moved = [k for k in scored if _v(after[k]["cells"]["rank_lrs"]) != _v(before[k]["cells"]["rank_lrs"])]
    assert moved, "the fixture should reorder some methods between λ = 0.5 and λ = 0"
    assert all(_v(after[k]["cells"]["rank_lrs"]) == want[k]["rank_lrs"] for k in scored)
    assert all("▲" in after[k]["cells"]["rank_lrs"][0] or "▼" in after[k]["cells"]["rank_lrs"][0] for k in moved)
    # The default order follows the ranking: within each group, rows in LRS rank order.
    order = [(k[2], int(k[3]), k[4], _v(after[k]["cells"]["rank_lrs"])) for k in after]
    ranked = [o for o in order if not math.isnan(o[3])]
    assert ranked == sorted(ranked)


@needs_browser
def test_ties_share_the_best_rank_and_unscored_cells_say_why(page):
    set_weights(page, 0.25, 0.75)
    shown = live(page)
    for ipc in ("1", "10"):
        a, b = (shown[("fixed", m, "cifar10", ipc, "convnet-d3")]["cells"] for m in ("herding", "kcenter"))
        assert _v(a["rank_lrs"]) == _v(b["rank_lrs"]) and a["lrs"][0] == b["lrs"][0]
    res = [r["cells"] for k, r in shown.items() if k[4] == "resnet18"]
    assert res and all(c["lrs"][0].startswith("n/a (needs full/hard for resnet18)") and c["rank_lrs"][1] == "" for c in res)
    assert ("fixed", ODD, "cifar10", "1", "convnet-d3") in shown


@needs_browser
def test_clicking_a_header_sorts_best_first_then_back_blanks_last(page):
    set_weights(page, 0.5, 0.5)
    click = "(() => {const th = [...document.querySelectorAll('#live thead th')].find(t => t.textContent === 'LRS'); th.click();})()"
    values = "[...document.querySelectorAll('#live tbody tr')].map(tr => tr.querySelector('[data-col=lrs]').dataset.v)"
    page.evaluate(click)  # a score column: best (highest) first on the first click
    down = page.evaluate(values)
    page.evaluate(click)
    up = page.evaluate(values)
    filled = [float(v) for v in up if v]
    assert filled == sorted(filled) and all(not v for v in up[len(filled):])
    assert [float(v) for v in down if v] == sorted(filled, reverse=True) and all(not v for v in down[len(filled):])
    # Static tables sort too: the accuracy table by method name.
    page.evaluate("document.querySelector('#accuracy_fixed thead th:nth-child(4)').click()")
    names = page.evaluate("[...document.querySelectorAll('#accuracy_fixed tbody tr td:nth-child(4)')].map(td => td.textContent)")
    assert names == sorted(names, key=str.lower)


@needs_browser
def test_filters_hide_rows_figures_and_charts_of_other_values(page):
    choose = "(v => {const s = document.querySelector('select[data-facet=ipc]'); s.value = v; s.dispatchEvent(new Event('change'));})"
    page.evaluate(f"{choose}('10')")
    try:
        shown = page.evaluate(READ_LIVE)
        assert all(r["hidden"] == (r["key"][3] != "10") for r in shown)
        figs = page.evaluate("[...document.querySelectorAll('.fig[data-ipc], .sweep')].map(f => [f.dataset.ipc, f.hidden])")
        assert figs and all(hidden == (ipc != "10") for ipc, hidden in figs)
        acc = page.evaluate("[...document.querySelectorAll('#accuracy_fixed tbody tr')].map(tr => [tr.dataset.ipc || '', tr.hidden])")
        assert ("", False) in [tuple(a) for a in acc]  # the full-data row belongs to every IPC
        assert all(hidden == (ipc not in ("", "10")) for ipc, hidden in acc)
        page.evaluate("(() => {const s = document.querySelector('select[data-facet=arch]'); s.value = 'resnet18'; s.dispatchEvent(new Event('change'));})()")
        assert {tuple(r["key"]) for r in page.evaluate(READ_LIVE) if not r["hidden"]} == {
            k for k in live(page) if k[3] == "10" and k[4] == "resnet18"}
    finally:
        page.evaluate("document.querySelectorAll('select[data-facet]').forEach(s => {s.value = ''; s.dispatchEvent(new Event('change'));})")
    assert not any(r["hidden"] for r in page.evaluate(READ_LIVE))


@needs_browser
def test_tables_at_the_built_weights_say_so_when_the_sliders_move(page):
    stale = "[...document.querySelectorAll('.at-built')].map(b => b.classList.contains('stale'))"
    set_weights(page, 0.0, 0.5)
    assert page.evaluate(stale) and all(page.evaluate(stale))
    page.evaluate("document.getElementById('reset').click()")
    assert not any(page.evaluate(stale))
    assert page.evaluate("[document.getElementById('lambda').value, document.getElementById('gamma').value]") == ["0.5", "0.5"]
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0  # nothing fetched


@needs_browser
def test_compat_page_recomputes_the_packages_raw_numbers(browser, rows, tmp_path):
    """compat ddranking-0.2: percent inputs, population std, raw scores with four decimals."""
    write_report(build_report(rows, compat="ddranking-0.2", n_boot=5), tmp_path)
    page = browser.open(tmp_path / "report.html")
    set_weights(page, 0.25, 0.75)
    shown, want = live(page), expected(rows, 0.25, 0.75, compat="ddranking-0.2")
    assert shown.keys() == want.keys()
    for key, w in want.items():
        c = shown[key]["cells"]
        assert (c["lrs"][0], c["ars"][0]) == (w["lrs_text"], w["ars_text"]), key
        assert_same(_v(c["lrs"]), w["lrs_mean"])
        assert_same(_v(c["rank_lrs"]), w["rank_lrs"])
    assert page.errors() == []


@needs_browser
def test_a_page_with_nothing_scored_has_no_sliders_and_no_errors(browser, tmp_path):
    write_report(build_report(synthetic_rows().iloc[:0], n_boot=5), tmp_path)
    page = browser.open(tmp_path / "report.html")
    assert page.evaluate("[!!document.getElementById('lambda'), document.body.innerText.includes('no rows to report')]") == [False, True]
    assert page.errors() == []


@needs_browser
@pytest.mark.parametrize(("lam", "gam"), [(0.3, 0.6), (1.0, 0.0)])
def test_downloads_equal_pythons_exports_with_odd_names_ties_and_na_cells(page, rows, lam, gam):
    """The page's CSV and LaTeX at (λ, γ) are Python's, byte for byte, escaping and n/a included."""
    from ddray.report import render
    from ddray.report.latex import HEAD, latex_robust

    set_weights(page, lam, gam)
    latex, csv = page.evaluate("ddrayExportText('latex')"), page.evaluate("ddrayExportText('csv')")
    rep = build_report(rows, lam=lam, gamma=gam, n_boot=1)
    assert latex == HEAD + latex_robust(rep)
    assert csv == render(rep, "leaderboard")
    assert r"r\&d</script><b>" in latex and "n/a" in latex and '"r&d</script><b>""x"" (convnet-d3)"' in csv

"""report.html as a researcher meets it, on the committed Fashion-MNIST store, in a real Chromium:
every section obeys the filters, the coverage grid shows the planned IPC 50 that has no rows,
one colour per method in the page and in the PNGs, tables that fit a 1400 px window, no dead
controls without JavaScript, and downloads equal to `ddray report --format latex|leaderboard`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from chromium import Browser, find_chromium
from ddray.cli import app

pytestmark = pytest.mark.browser

PNG_KEY = "ddray:legend"
"""The PNG text chunk naming a figure's legend colours (ddray/report/colors.py)."""
COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "results" / "fashion-mnist"
HARD, SOFT = "fixed:ddranking-hard", "fixed:ddranking-soft"


def section_id(name: str) -> str:
    """A table section's id in the page: its name, CSS-safe."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


SCORES_HARD, SCORES_SOFT = section_id("scores_" + HARD), section_id("scores_" + SOFT)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, ["report", str(COMMITTED), *args])
    assert result.exit_code == 0, result.output
    return result.stdout  # what `> file` holds: warnings, if any, go elsewhere


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fm-report")
    cli("--out", str(out))
    return out


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("no chromium installed (apt-get install -y chromium)")
    with Browser(width=1400, height=1000) as b:
        yield b


@pytest.fixture(scope="module")
def page(browser, out_dir):
    p = browser.open(out_dir / "report.html")
    yield p
    assert p.errors() == []


def choose(page, facet: str, value: str) -> None:
    page.evaluate(f"(() => {{const s = document.querySelector('select[data-facet={facet}]'); s.value = {json.dumps(value)};"
                  "s.dispatchEvent(new Event('change'));})()")


@pytest.fixture
def clear(page):
    yield
    page.evaluate("document.querySelectorAll('select[data-facet]').forEach(s => {s.value = ''; s.dispatchEvent(new Event('change'));})")


VISIBLE_SECTIONS = "[...document.querySelectorAll('section.block')].filter(b => !b.hidden).map(b => [b.id, b.classList.contains('emptied')])"


def test_a_track_filter_hides_the_other_tracks_static_sections(page, clear):
    choose(page, "track", SOFT)
    shown = dict(page.evaluate(VISIBLE_SECTIONS))
    assert {SCORES_SOFT, section_id("accuracy_" + SOFT), section_id("rankings_" + SOFT)} <= set(shown)
    assert not any(section_id(HARD) in s for s in shown), shown
    rows = page.evaluate("[...document.querySelectorAll('#coverage tbody tr')].map(tr => [tr.dataset.track, tr.hidden])")
    assert rows and all(hidden == (track != SOFT) for track, hidden in rows)
    figs = page.evaluate("[...document.querySelectorAll('.fig')].filter(f => !f.hidden).map(f => f.dataset.track)")
    assert figs and set(figs) == {SOFT}
    # A header line about the hard study's recipes names both tracks: it stays; one about one dataset too.
    assert page.evaluate("[...document.querySelectorAll('header li')].every(li => !li.hidden)")


def test_a_label_filter_hides_the_other_label_studys_sections(page, clear):
    choose(page, "labels", "hard")
    shown = dict(page.evaluate(VISIBLE_SECTIONS))
    assert SCORES_HARD in shown and not any(section_id(SOFT) in s for s in shown), shown


def test_an_ipc_with_no_rows_empties_sections_and_says_so(page, clear):
    choose(page, "ipc", "50")
    shown = dict(page.evaluate(VISIBLE_SECTIONS))
    assert shown[SCORES_HARD] is True and shown["leaderboard"] is True  # emptied, still there
    said = page.evaluate(f"document.getElementById('{SCORES_HARD}').querySelector('.empty').textContent")
    assert "ipc = 50" in said and "coverage" in said
    assert shown[section_id("accuracy_" + HARD)] is False  # the full-data row belongs to every IPC
    assert shown["synth"] is False             # herding, kcenter and random synthesized at IPC 50


def test_the_coverage_grid_marks_the_planned_ipc_50_as_not_run(page):
    grid = page.evaluate("""[...document.querySelectorAll('#coverage tbody tr')].map(tr => [tr.dataset.track, tr.dataset.method,
        Object.fromEntries([...tr.querySelectorAll('td[data-ipc]')].map(td => [td.dataset.ipc, [td.className, td.textContent]]))])""")
    hard = {m: cells for track, m, cells in grid if track == HARD}
    assert set(hard) == {"dm", "herding", "kcenter", "random"}
    for cells in hard.values():
        assert cells["1"] == ["cov complete", "3/3"] and cells["10"] == ["cov complete", "3/3"]
        assert cells["50"] == ["cov not-run", "not run"]
    lines = page.evaluate("[...document.querySelectorAll('header li')].map(li => li.textContent)")
    summary = [ln for ln in lines if ln.startswith("warning: incomplete:")]
    assert summary == ["warning: incomplete: 4 of 18 planned cells — 4 not run (IPC 50; dm, herding, kcenter, random) "
                       "(each cell: the coverage grid in report.html, coverage.csv)"]


def test_one_method_has_one_colour_in_the_page_and_in_the_pngs(page, out_dir):
    rgb = "c => c.startsWith('#') ? c : '#' + c.match(/\\d+/g).slice(0, 3).map(x => (+x).toString(16).padStart(2, '0')).join('')"
    swatches = page.evaluate(f"""[...document.querySelectorAll('#live tbody tr')].map(tr =>
        [tr.dataset.method, ({rgb})(getComputedStyle(tr.querySelector('.swatch')).backgroundColor)])""")
    lines = page.evaluate("[...document.querySelectorAll('#sweeps polyline')].map(p => [p.textContent, p.getAttribute('stroke')])")
    page_colors: dict[str, set[str]] = {}
    for method, color in swatches + lines:
        page_colors.setdefault(method, set()).add(color)
    assert set(page_colors) == {"dm", "herding", "kcenter", "random"}
    assert all(len(c) == 1 for c in page_colors.values()), page_colors
    pngs = sorted((out_dir / "figures").glob("*.png"))
    assert len(pngs) >= 10
    for png in pngs:
        legend = json.loads(Image.open(png).text[PNG_KEY])
        assert legend and all(page_colors[m] == {c} for m, c in legend.items()), png.name
    assert len({c for cs in page_colors.values() for c in cs}) == 4  # four methods, four colours


def test_the_tables_fit_a_1400_px_window_with_sticky_headers(page):
    assert page.evaluate("window.innerWidth") == 1400
    for sel in (f"#{SCORES_HARD} table", f"#{SCORES_SOFT} table", "#live", f"#{section_id('accuracy_' + SOFT)} table", "#coverage table"):
        right, wrap_over = page.evaluate(f"""(() => {{const t = document.querySelector('{sel}'), w = t.closest('.tablewrap');
            return [t.getBoundingClientRect().right, w.scrollWidth - w.clientWidth];}})()""")
        assert right <= 1400 and wrap_over <= 0, (sel, right, wrap_over)
    assert page.evaluate(f"getComputedStyle(document.querySelector('#{SCORES_HARD} th')).position") == "sticky"
    # The intervals are a click away, and the toggle says what it does.
    page.evaluate(f"document.querySelector('#{SCORES_HARD} button.fold').click()")
    try:
        assert page.evaluate(f"getComputedStyle(document.querySelector('#{SCORES_HARD} th.detail')).display") == "table-cell"
    finally:
        page.evaluate(f"document.querySelector('#{SCORES_HARD} button.fold').click()")
    assert page.evaluate(f"getComputedStyle(document.querySelector('#{SCORES_HARD} th.detail')).display") == "none"


def test_figures_name_their_track(out_dir):
    names = [p.name for p in (out_dir / "figures").glob("time_vs_acc_*.png")]
    assert sorted(names) == sorted(f"time_vs_acc_{t.replace(':', '-')}_fashion-mnist_ipc{i}.png" for t in (HARD, SOFT) for i in (1, 10))


@pytest.mark.parametrize(("lam", "gam"), [(0.3, 0.5), (0.75, 0.2)])
def test_downloads_equal_the_cli_at_the_sliders_weights(page, lam, gam):
    for name, value in (("lambda", lam), ("gamma", gam)):
        page.evaluate(f"(() => {{const s = document.getElementById('{name}'); s.value = '{value}'; s.dispatchEvent(new Event('input'));}})()")
    try:
        latex, csv = page.evaluate("ddrayExportText('latex')"), page.evaluate("ddrayExportText('csv')")
    finally:
        page.evaluate("document.getElementById('reset').click()")
    want = cli("--format", "latex", "--lambda", str(lam), "--gamma", str(gam))
    assert latex.count(r"\begin{table}") == 2 and want.startswith(latex)  # the robust-scores section, byte for byte
    assert want[len(latex):].startswith("\n\\begin{table}") and "Accuracy" in want[len(latex):]
    assert f"$\\lambda$ = {lam:.2f}" in latex and r"\textbf{" in latex
    assert csv == cli("--format", "leaderboard", "--lambda", str(lam), "--gamma", str(gam))


def test_buttons_download_files(page):
    page.evaluate("""(() => {window.__dl = []; const orig = HTMLAnchorElement.prototype.click;
        HTMLAnchorElement.prototype.click = function () { window.__dl.push([this.download, decodeURIComponent(this.href.split(',')[1])]); };
        document.getElementById('dl-csv').click(); document.getElementById('dl-latex').click();
        HTMLAnchorElement.prototype.click = orig;})()""")
    (csv_name, csv), (tex_name, tex) = page.evaluate("window.__dl")
    assert csv_name == "leaderboard-lambda0.50-gamma0.50.csv" and csv == page.evaluate("ddrayExportText('csv')")
    assert tex_name.endswith(".tex") and tex.startswith("% ddray benchmark tables")


def test_without_javascript_no_dead_controls_and_a_note(browser, out_dir):
    page = browser.open(out_dir / "report.html", scripts=False)
    shown = "(sel => [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null).length)"
    assert page.evaluate(f"{shown}('nav.controls, input, select, button, #leaderboard')") == 0
    note = page.evaluate("document.querySelector('noscript') && document.body.innerText")
    assert "λ = 0.5" in note and "γ = 0.5" in note and "as built" in note
    assert page.evaluate(f"{shown}('section.block table tbody tr')") > 50  # the static tables are all there
    assert page.evaluate(f"{shown}('th.detail')") > 0                      # unfolded: nothing is out of reach

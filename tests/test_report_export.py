"""Exports: DD-Ranking's leaderboard CSV and the LaTeX unified table, each parsed back."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ddray.cli import app
from ddray.report import build_report, render
from ddray.report.export import LEADERBOARD_COLUMNS
from ddray.report.latex import latex_escape
from ddray.store import Store

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "docs" / "results" / "fashion-mnist"
ODD = 'my_m&d "50%" {#1}'
"""A method name with CSV quoting and every LaTeX special that a method name can hold."""


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    from benchmarks.synthetic_rows import synthetic_rows

    rows = synthetic_rows(methods=("random", "dm", "rded"), soft_methods=("rded",), datasets=("cifar10",), ipcs=(1, 10),
                          archs=("convnet-d3", "resnet18"), seeds=(0, 1), tracks=("fixed", "tuned"))
    rows = rows[~((rows["stage"] == "full") & (rows["arch"] == "resnet18"))].reset_index(drop=True)  # no HLR there
    rows.loc[rows["method"] == "random", "method"] = ODD
    rows.loc[rows.index[-1], "finished_at"] = pd.Timestamp("2026-03-04 23:30", tz="UTC")
    return rows


@pytest.fixture(scope="module")
def report(rows):
    return build_report(rows, n_boot=10)


def parse_csv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == LEADERBOARD_COLUMNS
    return list(reader)


def test_leaderboard_csv_has_dd_rankings_columns_and_the_fixed_tracks_numbers(report):
    got = parse_csv(render(report, "leaderboard"))
    fixed = report.scores[report.scores["track"] == "fixed"]
    assert len(got) == len(fixed)
    by_name = {(r["method"], r["dataset"], int(r["ipc"])): r for r in got}
    for s in fixed.itertuples():
        r = by_name[(f"{s.method} ({s.arch})", s.dataset, int(s.ipc))]  # two archs per IPC: named in the method
        assert r["label_type"] == s.label_setting and r["verified"] == "false" and r["date"] == "2026-03-04"
        for col in ("hlr", "ior"):
            want = getattr(s, col)
            assert r[col] == ("" if pd.isna(want) else f"{100 * want:.2f}")  # percentage points
        assert r["method_reference"] == {"dm": "https://arxiv.org/abs/2110.04181", "rded": "https://arxiv.org/abs/2312.03526"}.get(s.method, "")
    assert {r["hlr"] for r in got if "resnet18" in r["method"]} == {""}  # no full-data arm: no HLR, never 0
    assert any(r["method"] == f"{ODD} (convnet-d3)" for r in got)


def test_leaderboard_keeps_plain_method_names_with_one_arch(rows):
    one = build_report(rows[rows["arch"] != "resnet18"], n_boot=5)
    got = parse_csv(render(one, "leaderboard"))
    assert sorted({r["method"] for r in got}) == sorted(["dm", "rded", ODD])
    assert {r["label_type"] for r in got if r["method"] == "rded"} == {"soft"}


def latex_tables(text: str) -> list[dict]:
    """Every tabular: its column spec, header cells and body rows (cells split on unescaped &)."""
    out = []
    for spec, body in re.findall(r"\\begin\{tabular\}\{([lrc]+)\}\n(.*?)\\end\{tabular\}", text, re.S):
        lines = body.strip().split("\n")
        assert lines[0] == r"\toprule" and lines[2] == r"\midrule" and lines[-1] == r"\bottomrule"
        cells = [[c.strip() for c in re.split(r"(?<!\\)&", ln.removesuffix(r" \\"))] for ln in lines[1:-1] if ln != r"\midrule"]
        assert all(ln.endswith(r" \\") for ln in lines[1:-1] if ln != r"\midrule")
        assert all(len(c) == len(spec) for c in cells)
        out.append({"spec": spec, "header": cells[0], "rows": cells[1:]})
    return out


def test_latex_is_a_booktabs_table_per_track_with_mean_pm_std(report):
    text = render(report, "latex")
    assert r"\usepackage{booktabs}" in text and text.count(r"\begin{table}") == text.count(r"\end{table}") == 4
    assert r"\label{tab:ddray-accuracy-fixed}" in text and r"\label{tab:ddray-accuracy-tuned}" in text
    tables = [t for t in latex_tables(text) if "LRS" not in t["header"]]  # the robust-scores tables come first
    assert len(tables) == 2
    fixed = tables[0]
    assert fixed["header"][:4] == ["dataset", "arch", "IPC", "method"] and fixed["spec"][:4] == "llll"
    assert set(fixed["spec"][4:]) == {"r"}
    assert all(all(row[:3]) for row in fixed["rows"])  # every row names its dataset, arch and IPC
    last: list[str] = [""] * 3
    parsed = {}
    for row in fixed["rows"]:
        last = [v or last[i] for i, v in enumerate(row[:3])]
        parsed[(last[0], last[1], last[2], row[3])] = dict(zip(fixed["header"][4:], row[4:]))
    acc = report.accuracy[(report.accuracy["track"] == "fixed") & (report.accuracy["method"] == "dm")]
    hits = 0
    for a in acc.itertuples():
        column = f"{a.labels} / aug {'on' if a.aug else 'off'}"
        cell = parsed[("cifar10", a.arch, str(a.ipc), "dm")][column]
        m, s = (float(x) for x in cell.split(r" $\pm$ "))
        assert m == pytest.approx(100 * a.acc_mean, abs=0.005) and s == pytest.approx(100 * a.acc_std, abs=0.005)
        hits += 1
    assert hits >= 4
    assert ("cifar10", "convnet-d3", "---", "full") in parsed  # the full-data row (no IPC)
    assert any(k[3] == latex_escape(ODD) for k in parsed)


def test_latex_escapes_every_special():
    assert latex_escape(ODD) == r'my\_m\&d "50\%" \{\#1\}'
    assert latex_escape(r"a\b~c^d$") == r"a\textbackslash{}b\textasciitilde{}c\textasciicircum{}d\$"
    assert latex_escape("70.00 ± 0.62 — λ") == r"70.00 $\pm$ 0.62 --- $\lambda$"


@pytest.mark.parametrize("fmt", ["leaderboard", "latex"])
def test_cli_exports_the_committed_fashion_mnist_store(fmt):
    result = CliRunner().invoke(app, ["report", str(COMMITTED), "--format", fmt])
    assert result.exit_code == 0, result.output
    rep = build_report(Store(str(COMMITTED)).read_rows(), n_boot=1)
    fixed = rep.scores[rep.scores["track"].str.startswith("fixed")]  # the hard- and the soft-label study
    if fmt == "leaderboard":
        got = parse_csv(result.output.strip() + "\n")
        assert len(got) == len(fixed) > 0 and {r["label_type"] for r in got} == {"hard", "soft"}
        want = {(s.method, int(s.ipc), s.label_setting): f"{100 * s.hlr:.2f}" for s in fixed.itertuples()}
        assert {(r["method"], int(r["ipc"]), r["label_type"]): r["hlr"] for r in got} == want
        assert {r["dataset"] for r in got} == {"fashion-mnist"} and all(re.fullmatch(r"\d{4}-\d\d-\d\d", r["date"]) for r in got)
    else:
        tables = [t for t in latex_tables(result.output) if "LRS" not in t["header"]]  # accuracy: one per recipe
        assert len(tables) == fixed["track"].nunique() == 2
        assert all(t["header"][:4] == ["dataset", "arch", "IPC", "method"] for t in tables)
        assert {r[3] for t in tables for r in t["rows"]} >= set(fixed["method"]) | {"rdm", "full"}


def test_one_label_type_under_two_recipes_names_the_recipe():
    """Two hard-label recipes in one store are two leaderboard rows per method, each naming its recipe."""
    from benchmarks.synthetic_rows import synthetic_rows

    rows = synthetic_rows(ipcs=(10,), datasets=("cifar10",), soft_methods=())
    is_eval = rows["stage"] == "eval"
    rows.loc[is_eval, "config_json"] = '{"protocol": {"epochs": 1}}'
    other = rows[is_eval].assign(key=rows.loc[is_eval, "key"].str[::-1], config_json='{"protocol": {"epochs": 2}}',
                                 protocol_json=rows.loc[is_eval, "protocol_json"] + " ")
    got = parse_csv(render(pd.concat([rows, other], ignore_index=True), "leaderboard", n_boot=1))
    assert {r["method"] for r in got if r["method"].startswith("dm")} == {"dm [epochs=1]", "dm [epochs=2]"}
    assert {r["label_type"] for r in got} == {"hard"}


def _tex_missing() -> str | None:
    """Why LaTeX cannot be compiled here, or None (pdflatex and booktabs.sty both installed)."""
    import shutil
    import subprocess

    if shutil.which("pdflatex") is None:
        return "no pdflatex (apt-get install texlive-latex-base texlive-latex-recommended)"
    found = subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True, text=True).stdout.strip()
    return None if found else "no booktabs.sty (apt-get install texlive-latex-recommended)"


@pytest.mark.skipif(_tex_missing() is not None, reason=str(_tex_missing()))
@pytest.mark.parametrize("lam", [0.5, 0.3])
def test_latex_tables_compile_with_pdflatex_and_booktabs(rows, tmp_path, lam):
    """The round trip a paper makes: every exported table (robust scores, accuracy) through pdflatex."""
    import subprocess

    tables = render(build_report(rows, lam=lam, n_boot=5), "latex")
    committed = CliRunner().invoke(app, ["report", str(COMMITTED), "--format", "latex", "--lambda", str(lam)]).stdout
    for name, text in (("synthetic", tables), ("committed", committed)):
        doc = tmp_path / f"{name}.tex"
        doc.write_text("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
                       "\\begin{document}\n" + text + "\\clearpage\n\\end{document}\n", encoding="utf-8")
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-2000:]
        assert (tmp_path / f"{name}.pdf").stat().st_size > 1000
        assert "Undefined control sequence" not in run.stdout and "Missing $" not in run.stdout
    assert r"\textbf{" in tables and latex_escape(ODD) in tables


@pytest.mark.parametrize("fmt", ["csv", "leaderboard"])
def test_csv_exports_name_the_rows_they_leave_out_on_stderr(tmp_path, fmt):
    """A bad row is left out of every format; the data-only ones name it on stderr, not in the data."""
    import shutil

    store = tmp_path / "store"
    shutil.copytree(COMMITTED / "rows", store / "rows")
    bad = store / "rows" / "eval" / f"{'b' * 16}.parquet"
    bad.write_bytes(b"not parquet")
    result = CliRunner().invoke(app, ["report", str(store), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert f"left out {bad}" in result.stderr and "not readable as Parquet" in result.stderr
    assert "left out" not in result.stdout

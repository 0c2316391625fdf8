"""Report outputs: every format written, a self-contained HTML page, n/a and diverged shown as such."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest

from ddray.errors import InputError
from ddray.report import build_report, render, write_report
from benchmarks.synthetic_rows import synthetic_rows


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    rows = synthetic_rows(methods=("random", "dm", "rded"), soft_methods=("rded",), datasets=("cifar10",), ipcs=(10,),
                          archs=("convnet-d3", "resnet18"), seeds=(0, 1), tracks=("fixed", "tuned"))
    # no full-data rows for resnet18, and one diverged full row for convnet-d3
    rows = rows[~((rows["stage"] == "full") & (rows["arch"] == "resnet18"))].reset_index(drop=True)
    hit = (rows["stage"] == "full") & (rows["seed"] == 1)
    rows.loc[hit, ["top1", "status"]] = [float("nan"), "diverged"]
    return rows


@pytest.fixture(scope="module")
def report(rows):
    return build_report(rows, n_boot=100)



def test_a_report_of_full_data_rows_only_shows_their_accuracy():
    """No syn rows, no scores: the accuracy table alone, never a KeyError from the empty rankings."""
    from ddray.report import build_report, render
    from benchmarks.synthetic_rows import synthetic_rows

    rows = synthetic_rows(seed=0)
    text = render(build_report(rows[rows["stage"] == "full"]), "md")
    assert "Accuracy %" in text and "Robust scores" not in text

def test_write_report_writes_every_format_and_a_self_contained_html(report, tmp_path):
    paths = write_report(report, tmp_path)
    names = {p.name for p in paths}
    assert {"report.md", "report.txt", "report.json", "report.html", "scores.csv", "accuracy.csv", "rankings.csv",
            "kendall.csv", "tuning.csv"} <= names
    pngs = [p for p in paths if p.suffix == ".png"]
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(p.exists() for p in paths)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == len(pngs)
    assert '<table class="sortable">' in page and "Robust scores — track fixed" in page and "Robust scores — track tuned" in page
    assert "Gain from tuning" in page and "Accuracy %" in page and "Rankings" in page
    assert 'src="http' not in page and "<link" not in page and not re.search(r"<script[^>]*\ssrc=", page)  # scripts inline
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == len(report.scores)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["settings"]["lambda"] == 0.5 and len(data["tables"]["scores"]) == len(report.scores)


def test_missing_and_diverged_show_as_such_never_zero(report):
    md = render(report, "md")
    assert "n/a (needs full/hard for resnet18)" in md
    assert "LRS 1/2 seeds (seed 1: full/hard diverged for convnet-d3)" in md
    assert "(1 diverged)" in md  # the full-data accuracy cell
    rec = json.loads(render(report, "json"))["tables"]["scores"]
    res = [r for r in rec if r["arch"] == "resnet18"]
    assert res and all(r["lrs_mean"] is None for r in res)
    # one scored seed: a mean, but no t-interval, and the table says why
    one = [r for r in rec if r["arch"] == "convnet-d3" and r["lrs_n"] == 1]
    assert one and all(r["lrs_mean"] is not None and r["lrs_t_lo"] is None for r in one)
    assert "| LRS 95% t | LRS seed bootstrap |" in md and "n/a (1 seed)" in md
    two = [r for r in rec if r["ars_n"] == 2]
    assert two and all(r["ars_t_lo"] <= r["ars_mean"] <= r["ars_t_hi"] for r in two)


def test_render_formats(report, rows):
    text = render(report, "table")
    assert "Robust scores — track fixed" in text and "Kendall" in text
    assert "| dataset |" in render(report, "md")
    csv = pd.read_csv(io.StringIO(render(report, "csv")))
    assert list(csv.columns[:5]) == ["track", "method", "dataset", "ipc", "arch"]
    assert len(pd.read_csv(io.StringIO(render(report, "csv", table="accuracy")))) == len(report.accuracy)
    page = render(report, "html")
    assert page.startswith("<!DOCTYPE html>") and '<img src="data:image/png;base64,' in page
    compat = render(rows, "md", compat="ddranking-0.2", n_boot=20)
    assert "compat ddranking-0.2" in compat and "-0.1565" in compat
    with pytest.raises(InputError, match="format"):
        render(report, "xml")
    with pytest.raises(InputError, match="table"):
        render(report, "csv", table="nope")


def test_empty_report_renders(tmp_path):
    rep = build_report(synthetic_rows().iloc[:0], n_boot=10)
    assert "no rows to report" in render(rep, "table")
    paths = write_report(rep, tmp_path)
    assert (tmp_path / "report.html").exists() and not [p for p in paths if p.suffix == ".png"]


def test_header_lines_about_one_dataset_carry_its_filter_facet():
    """A warning about cifar100's full-data seeds hides with cifar100's sections; a general line never does."""
    rows = synthetic_rows(methods=("random", "dm"), soft_methods=(), datasets=("cifar10", "cifar100"), ipcs=(1,), seeds=(0, 1))
    rows = rows[~((rows["stage"] == "full") & (rows["dataset"] == "cifar100") & (rows["seed"] == 1))]
    page = render(build_report(rows, n_boot=5), "html")
    lines = re.findall(r"<li class=\"([a-z]*)\"([^>]*)>([^<]*)</li>", page)
    about = [attrs for _, attrs, text in lines if "Acc(full, hard) for cifar100/convnet-d3" in text]
    assert about == [' data-dataset="cifar100"']  # one arch: no arch filter to obey
    assert all(attrs == "" for _, attrs, text in lines if text.startswith("λ = "))

"""The `ddray` command line: parse, call one module, print, exit 0 / 1 (some trials failed) / 2 (bad input)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import ddray
from ddray.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Ray-distributed evaluation of dataset distillation: DD-Ranking robust scores and the RD³ unified protocol.")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def user_errors(fn):
    """Turn InputError into its `path: message` lines and exit code 2 — never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            for line in e.problems:
                err.print(f"[red]error[/red] {line}", soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        out.print(f"ddray {ddray.__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False) -> None:
    """ddray: one command from an evaluation spec to robust-score rankings."""


SpecArg = Annotated[Path, typer.Argument(help="evaluation spec (YAML)", show_default=False)]


@app.command()
@user_errors
def validate(spec: SpecArg) -> None:
    """Check a spec: exit 0, or exit 2 with every problem as `path.to.field: message`."""
    from ddray.spec_check import load_spec

    s = load_spec(spec)
    out.print(f"[green]ok[/green] {spec}: '{s.name}' is valid")


@app.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editors)."""
    from ddray.spec import Spec

    print(json.dumps(Spec.model_json_schema(by_alias=True), indent=2))


def _only_option() -> Any:
    return typer.Option("--only", help="run a slice: FIELD=V1,V2 with FIELD in method, dataset, ipc, arch, seed (repeatable)")


@app.command()
@user_errors
def plan(spec: SpecArg,
         as_json: Annotated[bool, typer.Option("--json", help="print every trial with its key as JSON")] = False,
         store: Annotated[Optional[str], typer.Option(help="store to compare with (default: the spec's)")] = None,
         only: Annotated[Optional[list[str]], _only_option()] = None) -> None:
    """Expand a spec into its trials: counts per stage, resources, and what is already stored.

    Needs no data: the spec is checked against the registries, not against data roots or files
    (`ddray validate` and `ddray run` check those), so a run can be planned before the data is there.
    """
    from ddray.plan import make_plan, select_only
    from ddray.spec_check import load_spec
    from ddray.store import Store
    from ddray.trials import STAGES

    s = load_spec(spec, data=False)
    p = make_plan(s, select_only(s, only or []))
    uri = store or s.store
    stored: set[str] = set()
    if uri:
        st = Store(uri)
        stored = st.stored_keys()
    if as_json:
        from ddray.freshness import absent_inputs

        absent = absent_inputs(p.trials)
        print(json.dumps({"name": s.name, "counts": p.counts(),
                          "trials": [{**t.to_dict(), "done": t.key in stored, "absent_inputs": absent.get(t.label, [])}
                                     for t in p.trials]}, indent=1))
        return
    table = Table(title=f"{s.name}: {len(p.trials)} trials", title_justify="left")
    for col in ("stage", "trials", "done", "cpu", "gpu"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for stage in STAGES:
        ts = p.stage(stage)
        if not ts:
            continue
        cpus = sorted({t.cpu for t in ts})
        gpus = sorted({str(t.gpu) for t in ts})
        table.add_row(stage, str(len(ts)), str(sum(t.key in stored for t in ts)),
                      ",".join(f"{c:g}" for c in cpus), ",".join(gpus))
    out.print(table)
    _print_absent(p.trials)


def _print_absent(trials) -> None:
    """Trials whose input files are not on this machine: their keys are known, what they read is not yet."""
    from ddray.freshness import absent_inputs

    absent = absent_inputs(trials)
    if absent:
        paths = sorted({p for ps in absent.values() for p in ps})
        out.print(f"{len(absent)} trial(s) cannot be resolved yet here: their input file(s) are absent "
                  f"({', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''}); their stored rows are checked "
                  "against those files where they are (ddray run)", soft_wrap=True)


@app.command()
@user_errors
def run(spec: SpecArg,
        store: Annotated[Optional[str], typer.Option(help="store URI (local folder, s3://, gs://); default: the spec's")] = None,
        address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")] = None,
        max_failures: Annotated[Optional[int], typer.Option(help="retries of a failed trial in this run")] = None,
        retry_errored: Annotated[bool, typer.Option("--retry-errored", help="run only the trials that failed before")] = False,
        only: Annotated[Optional[list[str]], _only_option()] = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Ray's output")] = False,
        progress: Annotated[bool, typer.Option(help="show the progress bar")] = True,
        smoke: Annotated[bool, typer.Option("--smoke", help="a minutes-long scale-down (1 seed, 1 IPC, 2 epochs) into its own store")] = False,
        max_wait: Annotated[Optional[float], typer.Option("--max-wait", help="give up (exit 1) after this many seconds in which trials wait for resources and none runs (an autoscaling cluster that cannot provide them)")] = None) -> None:
    """Run every trial of a spec that is not in the store yet (idempotent; resumes after any failure).

    Exit 0: every planned trial is stored; 1: some failed or could not run; 2: bad input; 130: interrupted (Ctrl-C), 143: stopped by SIGTERM.
    """
    import os

    from ddray.plan import make_plan, select_only
    from ddray.run import run_plan
    from ddray.run.runner import check_address, check_store_compat
    from ddray.spec import load_spec_text
    from ddray.spec_check import load_spec, resolve_methods
    from ddray.store import Store

    text, _ = load_spec_text(spec)
    s = load_spec(spec)
    if smoke:
        import yaml

        from ddray.spec import smoke as smoke_spec

        s = resolve_methods(smoke_spec(s))
        text = yaml.safe_dump(s.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
    p = make_plan(s, select_only(s, only or []))
    uri = store or s.store
    if not uri:
        raise InputError("no store: set `store:` in the spec or pass --store", path="store")
    address = address or os.environ.get("RAY_ADDRESS")
    check_address(address)
    st = Store(uri)
    st.check_writable()
    scan = st.scan()  # the run's one read of every row: the recipe check and what is left to run
    check_store_compat(st, text, make_plan(s) if only else p, scan)  # the whole spec's plan, made once
    st.save_spec(text)
    summary = run_plan(s, p, st, address=address, max_failures=max_failures, retry_errored=retry_errored,
                       verbose=verbose, progress=progress, max_wait_s=max_wait, scan=scan)
    for bad, moved in summary.quarantined:
        rerun = f", trial {bad.key} reruns" if bad.key else ""
        err.print(f"[yellow]bad row[/yellow] {bad.path}: {bad.reason}; moved to {moved}{rerun}", soft_wrap=True)
    for bad, moved in summary.stale:
        err.print(f"[yellow]stale row[/yellow] {bad.path}: {bad.reason}; set aside in {moved}, trial {bad.key} reruns",
                  soft_wrap=True)
    _print_summary(s.name, summary, spec, uri)
    raise typer.Exit(summary.exit_code)


def _print_summary(name: str, summary, spec: Path, uri: str) -> None:
    """The run's last lines: what is stored now, and what a rerun would still do."""
    by_other = f" ({summary.by_other} by another driver)" if summary.by_other else ""
    out.print(f"{name}: {summary.planned} planned, {summary.already} already stored, {summary.stored} stored now{by_other}, "
              f"{len(summary.failed)} failed, {len(summary.blocked)} waiting on failed dependencies")
    done = summary.already + summary.stored
    if summary.interrupted:
        out.print(f"interrupted: {done} of {summary.planned} stored, {len(summary.not_run)} not run; "
                  f"rerun to continue: ddray run {spec} --store {uri}")
    elif summary.gave_up_after_s is not None:
        out.print(f"gave up after {summary.gave_up_after_s:g} s with trials waiting for resources and none running: "
                  f"{done} of {summary.planned} stored, {len(summary.not_run)} not run")
    elif summary.exit_code:
        out.print(f"see why: ddray status {uri}; retry: ddray run {spec} --store {uri} --retry-errored")


@app.command()
@user_errors
def status(store: Annotated[str, typer.Argument(help="store URI")],
           by_method: Annotated[bool, typer.Option("--by-method", help="one line per stage, method (or shared arm) and IPC, with mean trial wall time and the trial time left")] = False,
           format: Annotated[str, typer.Option("--format", help="table | md")] = "table") -> None:
    """Done / errored / pending per stage, and the last error of each failed trial."""
    from ddray.status import store_status

    if format not in ("table", "md"):
        raise InputError(f"must be table or md, not '{format}'", path="--format")
    st = store_status(store, by_method=by_method)
    if by_method:
        _print_cells(st.cells, format)
    else:
        _print_rows(("stage", "done", "errored", "pending"),
                    [(stage, str(c["done"]), str(c["errored"]), str(c["pending"])) for stage, c in st.counts.items()],
                    format, left=1, title=st.name or store)
    for e in st.errors:
        out.print(f"[red]failed[/red] {e['stage']} {e['label']} ({e['key']}, {e['attempts']} attempt(s)): {e['exception']}", soft_wrap=True)
    if st.errors:
        out.print(f"retry: ddray run <spec> --store {store} --retry-errored")
    for b in st.bad:
        out.print(f"[red]bad row[/red] {b.path}: {b.reason} (not counted; {b.remedy})", soft_wrap=True)
    if not st.planned:
        out.print("no spec.yaml in the store: done and errored counts are from the rows; pending is unknown")


def _print_rows(head: tuple[str, ...], lines: list[tuple[str, ...]], format: str, left: int, title: str | None = None) -> None:
    """One status table as Markdown or rich; the first `left` columns are text, the rest numbers."""
    if format == "md":
        from ddray.markdown import markdown_table

        print(markdown_table(head, lines, left=left))
        return
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(head):
        table.add_column(col, justify="left" if i < left else "right")
    for line in lines:
        table.add_row(*line)
    out.print(table)


def _print_cells(cells, format: str) -> None:
    """The --by-method breakdown and its total; 'left' is trial-seconds, not wall-clock."""
    head = ("stage", "method / arm", "IPC", "done", "errored", "pending", "mean trial wall s", "trial s left")
    lines = [(c.stage, c.who, "-" if c.ipc is None else str(c.ipc), str(c.done), str(c.errored), str(c.pending),
              "-" if c.mean_wall_s is None else f"{c.mean_wall_s:,.0f}",
              "?" if c.left_s is None else f"{c.left_s:,.0f}") for c in cells]
    stored = sum(c.done for c in cells)
    spent = sum(c.wall_s for c in cells) / 3600
    left = sum(c.left_s for c in cells if c.left_s is not None) / 3600
    untimed = [c for c in cells if c.left_s is None]
    total = f"Total: {stored} stored trials, {spent:.1f} h of trial wall time; about {left:.1f} h of trial time left"
    if untimed:
        n = sum(c.errored + c.pending for c in untimed)
        total += f" in started cells, and {n} trial(s) in {len(untimed)} cell(s) with none stored yet to time them by"
    _print_rows(head, lines, format, left=2)
    if format == "md":
        print(f"\n{total}")
    else:
        out.print(total)


@app.command()
@user_errors
def report(store: Annotated[str, typer.Argument(help="store URI")],
           format: Annotated[str, typer.Option("--format", help="table | md | csv | json | html | leaderboard (DD-Ranking's leaderboard CSV) | latex (booktabs tables: robust scores with ranks, accuracy)")] = "table",
           out_dir: Annotated[Optional[Path], typer.Option("--out", help="write every format here: report.txt/.md/.json/.tex, one CSV per table, leaderboard.csv, PNG plots and report.html")] = None,
           lam: Annotated[Optional[float], typer.Option("--lambda", help="λ of LRS (default: the spec's, 0.5)")] = None,
           gamma: Annotated[Optional[float], typer.Option("--gamma", help="γ of ARS (default: the spec's, 0.5)")] = None,
           compat: Annotated[Optional[str], typer.Option(help="none | ddranking-0.2 (the official package's percent formula)")] = None) -> None:
    """The unified benchmark table, robust scores (LRS, ARS) and rankings from a store."""
    from ddray.report_cli import report_store

    text = report_store(store, fmt=format, out_dir=out_dir, lam=lam, gamma=gamma, compat=compat)
    if text:  # `> file` gives the very bytes the page's download buttons give: no extra blank line
        print(text, end="" if text.endswith("\n") else "\n")


@app.command()
@user_errors
def audit(store: Annotated[str, typer.Argument(help="store URI (only read)")],
          sample: Annotated[int, typer.Option("--sample", help="how many stored trials to re-run")] = 3,
          only: Annotated[Optional[list[str]], _only_option()] = None,
          stage: Annotated[str, typer.Option("--stage", help="which stage's rows: eval | full")] = "eval",
          seed: Annotated[int, typer.Option("--seed", help="seed of the random choice of trials")] = 0,
          as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False) -> None:
    """Re-run N stored trials into a scratch store: exact or by how much, inputs' digests, hardware, engine."""
    from ddray.audit import audit_store, audit_text
    from ddray.plan import parse_only

    if stage not in ("eval", "full"):
        raise InputError(f"must be eval or full, not '{stage}'", path="--stage")
    try:
        picked = parse_only(only or [])
    except ValueError as e:
        raise InputError(str(e), path="--only") from None
    results = audit_store(store, sample=sample, only=picked, stage=stage, seed=seed)
    print(json.dumps([r.to_dict() for r in results], indent=1) if as_json else audit_text(results))
    raise typer.Exit(0 if all(r.reproduces for r in results) else 1)


@app.command()
def models() -> None:
    """List student/teacher architectures: built-in families, installed plugins, the tv: zoo."""
    from ddray.models import list_models, model_zoo
    from ddray.models.registry import models as registry

    for name, desc in list_models():
        out.print(f"[bold]{escape(name)}[/bold]  {escape(desc)}")
    out.print("\n[bold]torchvision zoo[/bold] (random weights; load official ones as a teacher checkpoint)")
    for name, desc in model_zoo():
        out.print(f"  [bold]{name}[/bold]  {escape(desc)}")
    _print_problems(registry.problems())


@app.command()
def datasets() -> None:
    """List dataset loaders (built-in and installed plugins), their default roots and expected files."""
    from ddray.data import list_datasets
    from ddray.data.registry import datasets as registry

    for d in list_datasets():
        out.print(f"[bold]{escape(d.name)}[/bold]  {escape(d.description)}  (root: {escape(d.root_text)})")
    _print_problems(registry.problems())


@app.command()
def methods() -> None:
    """List distillation methods: built-ins, then installed plugins."""
    from ddray.methods import list_methods
    from ddray.methods.registry import methods as registry

    for m in list_methods():
        out.print(f"[bold]{escape(m.name)}[/bold]{'  (needs a teacher)' if m.needs_teacher else ''}  {escape(m.description)}")
    _print_problems(registry.problems())


def _print_problems(problems: list[str]) -> None:
    """Installed plugins that fail to load: named on stderr, after everything that works."""
    for problem in problems:
        err.print(f"[red]broken plugin[/red] {escape(problem)}")


@app.command()
@user_errors
def submit(spec: SpecArg,
           address: Annotated[str, typer.Option(help="Ray dashboard address, e.g. http://HEAD:8265")],
           store: Annotated[Optional[str], typer.Option(help="store URI (default: the spec's)")] = None,
           wait: Annotated[bool, typer.Option(help="wait for the job to finish; exit 1 unless it succeeded")] = False) -> None:
    """Send the run to a remote cluster as a Ray Job (the spec travels in the job's working dir)."""
    from ddray.cluster.submit import submit as submit_job
    from ddray.spec import load_spec_text, parse_spec

    parse_spec(load_spec_text(spec)[1])  # shape only: the cluster, not this machine, has the data and plugins
    job_id = submit_job(str(spec), address, store=store, wait=wait)
    out.print(f"submitted {job_id}; follow with: ray job logs --address {address} --follow {job_id}")
    if wait:  # a script waiting on the job must see its outcome in the exit code
        from ddray.cluster.submit import job_status

        status = job_status(address, job_id)
        out.print(f"{job_id}: {status}")
        if status != "SUCCEEDED":
            raise typer.Exit(1)


import_app = typer.Typer(no_args_is_help=True, help="Other tools' evaluation configs as ddray specs.")
app.add_typer(import_app, name="import")


@import_app.command("ddranking")
@user_errors
def import_ddranking(paths: Annotated[list[Path], typer.Argument(help="DD-Ranking configs (METHOD/DATASET/IPCk.yaml) or folders of them, e.g. DD-Ranking's eval/", show_default=False)],
                     out_path: Annotated[Optional[Path], typer.Option("--out", help="a spec file (.yaml, when the configs make one spec) or a folder (one spec per protocol group, and ddranking-import.md); default: the specs on stdout")] = None,
                     sets: Annotated[str, typer.Option(help="folder of DD-Ranking's released sets: <sets>/<METHOD>/<DATASET>/IPC<k>/images.pt, labels.pt, lr.pt")] = "baselines",
                     verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show every field's mapping, not only fixes and differences")] = False) -> None:
    """DD-Ranking configs as ddray specs, field by field: what was mapped, fixed, or could not be (exit 2)."""
    from ddray.importers.ddranking_specs import check_specs, import_ddranking as run_import, spec_yaml, write_specs

    imports = run_import(list(paths), sets=sets)
    kinds = ("mapped", "fixed", "differs", "ignored") if verbose else ("fixed", "differs")
    for imp in imports.configs:
        for n in imp.notes:
            if n.kind in kinds:
                err.print(f"[yellow]{n.kind}[/yellow] {imp.file}: {n.field}: {escape(n.text)}", soft_wrap=True)
    problems = imports.errors or check_specs(imports.specs)
    if problems:
        raise InputError(problems)
    if out_path is None:
        print("\n---\n".join(spec_yaml(name, imports) for name in imports.specs), end="")
        return
    written = write_specs(imports, out_path)
    err.print(f"{len(imports.configs)} configs -> {len(written)} spec(s) (one per protocol group) in {out_path}", soft_wrap=True)


store_app = typer.Typer(no_args_is_help=True)


@store_app.command("compact")
@user_errors
def store_compact(store: Annotated[str, typer.Argument(help="store URI")]) -> None:
    """Fold the rows stored since the last compaction into the store's index (a few Parquet segments).

    `ddray run` does this as it goes; run it after copying rows in, or to merge the index. Safe beside
    a running driver, and safe to kill: rows stay the source of truth.
    """
    from ddray.store import Store

    st = Store(store)
    done = st.compact()  # writes nothing where there are no rows
    rows = done.scan.table.num_rows
    if not rows and not done.scan.bad and st.stored_spec() is None:
        raise InputError(f"no ddray store at '{store}' (no spec.yaml, no rows)", path="store")
    if done.wrote is None:
        out.print(f"{store}: the index is current ({rows} rows)", soft_wrap=True)
    else:
        how = "merged into one segment" if done.merged else f"{done.wrote.rows} new row(s) in {done.wrote.name}"
        out.print(f"{store}: {rows} rows indexed, {how}", soft_wrap=True)
    for b in done.scan.bad:
        err.print(f"[yellow]bad row[/yellow] {b.path}: {b.reason} (not indexed; {b.remedy})", soft_wrap=True)


@store_app.command("migrate")
@user_errors
def store_migrate(store: Annotated[str, typer.Argument(help="store URI")],
                  dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be rekeyed; write nothing")] = False) -> None:
    """Rekey rows an earlier version keyed with the paths of their files (a `files` set, a teacher or
    pretrained checkpoint), and the rows that name their keys, so `ddray run` reuses them instead of
    quarantining and recomputing them. Idempotent; stop any driver on the store first.
    """
    from ddray.store import Store
    from ddray.store.migrate import migrate_store
    from ddray.trials import STAGES

    st = Store(store)
    if st.stored_spec() is None and not st.scan().table.num_rows:
        raise InputError(f"no ddray store at '{store}' (no spec.yaml, no rows)", path="store")
    done = migrate_store(st, dry_run=dry_run)
    for rk in done:
        out.print(f"{rk.stage} {rk.old} -> {rk.new}", soft_wrap=True)
    per = ", ".join(f"{s} {n}" for s in STAGES if (n := sum(rk.stage == s for rk in done)))
    verb = "would be rekeyed (dry run: nothing written)" if dry_run else "rekeyed"
    out.print(f"{store}: {len(done)} row(s) {verb}" + (f" ({per})" if per else ""), soft_wrap=True)


app.add_typer(store_app, name="store", help="The store's rows: compact the index, migrate old keys.")


def _mount_cluster() -> None:
    try:
        from ddray.cluster.cli import cluster_app
    except ImportError:
        return
    app.add_typer(cluster_app, name="cluster", help="Cluster files and the local autoscaling cluster.")


_mount_cluster()


def _mount_cache() -> None:
    """`ddray cache ...`, its commands under this CLI's error policy (InputError: exit 2, no traceback)."""
    from ddray.data.cache_cli import cache_app

    for command in cache_app.registered_commands:
        command.callback = user_errors(command.callback)
    app.add_typer(cache_app, name="cache", help="This node's cache of decoded splits: warm, ls, rm.")


_mount_cache()

if __name__ == "__main__":
    app()

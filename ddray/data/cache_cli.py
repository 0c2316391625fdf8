"""`ddray cache warm|ls|rm|verify`: this node's cache of decoded splits (and selection embeddings).

Mounted by `ddray/cli.py` as `app.add_typer(cache_app, name="cache")`, which also gives its
commands the CLI's error policy (an InputError is exit 2 with its `path: message` lines). Thin:
parse, call `ddray.data`, print.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ddray.errors import InputError

cache_app = typer.Typer(help="This node's cache of decoded splits ($DDRAY_CACHE_DIR, default ~/.cache/ddray/data).",
                        no_args_is_help=True)
out = Console(highlight=False)


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**27 else f"{n / 2**20:.1f} MB"


@cache_app.command("warm")
def warm(spec: Annotated[Path, typer.Argument(help="evaluation spec (YAML)", show_default=False)]) -> None:
    """Decode every dataset split of SPEC into this node's cache, so its trials start warm."""
    from ddray.data import NodeCache, load_dataset
    from ddray.spec_check import load_spec

    s = load_spec(spec)
    cache = NodeCache.default(s.runtime.cache_gb)
    out.print(f"node cache: {cache.root}" + ("" if cache.enabled else " (disabled: runtime.cache_gb is 0)"))
    for name, ds in s.datasets.items():
        data = load_dataset(ds.loader or name, ds.root, field=f"datasets.{name}.root", cache=cache, **ds.options)
        for split in (data.train, data.test):
            t0 = time.perf_counter()
            with Progress(TextColumn(f"{escape(name)} {split.name}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=out, transient=True, disable=not out.is_terminal) as bar:
                task = bar.add_task("decode", total=len(split))
                cached = split.warm(progress=lambda n: bar.advance(task, n))
            where = "cached" if cached and split.cache_entry() else "in memory" if cached else \
                "not cached (over the budget or the disk's spare space): its trials stream it from the files"
            out.print(f"{name} {split.name}: {len(split):,} images {split.shape} {split.dtype}, "
                      f"{_gb(split.nbytes)}, {where} ({time.perf_counter() - t0:.1f} s)")
        mean, std = data.mean, data.std  # computed from the train pixels once, if the loader has no constants
        out.print(f"{name}: mean {tuple(round(m, 4) for m in mean)}, std {tuple(round(v, 4) for v in std)}")


@cache_app.command("ls")
def ls() -> None:
    """List the entries of this node's cache: what each is, its size, when it was built."""
    from ddray.data import NodeCache

    cache = NodeCache.default()
    entries = cache.entries()
    if not entries:
        out.print(f"{cache.root}: empty")
        return
    table = Table(title=str(cache.root))
    for col in ("entry", "kind", "what", "rows", "size", "built"):
        table.add_column(col)
    for e in entries:
        layout = e.meta.get("layout") or {}
        rows = f"{layout['count']:,}×{tuple(layout['row'])} {layout['dtype']}" if layout else "-"
        table.add_row(e.id, e.kind, escape(e.what), rows, _gb(e.bytes), str(e.meta.get("created", "-")))
    out.print(table)
    out.print(f"{len(entries)} entries, {_gb(sum(e.bytes for e in entries))}")


@cache_app.command("rm")
def rm(entry: Annotated[Optional[str], typer.Argument(help="entry id (or a unique prefix of it)", show_default=False)] = None,
       all_: Annotated[bool, typer.Option("--all", help="remove every entry")] = False) -> None:
    """Remove one entry, or all of them; trials that mapped an entry keep reading their mapping."""
    from ddray.data import NodeCache

    cache = NodeCache.default()
    if all_ == (entry is not None):
        raise InputError("give one ENTRY or --all", path="cache rm")
    busy: list[str] = []
    if all_:
        removed, busy = cache.clear()
    else:
        chosen = [e.id for e in cache.entries() if e.id.startswith(entry or "")]
        if len(chosen) != 1:
            found = "no entry" if not chosen else f"{len(chosen)} entries ({', '.join(chosen[:3])})"
            raise InputError(f"{found} of {cache.root} starts with '{entry}'; `ddray cache ls` lists them",
                             path="cache rm")
        removed = int(cache.remove(chosen[0]))
        busy = [] if removed else chosen
    out.print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {cache.root}")
    for eid in busy:
        out.print(f"kept {eid}: it is being built now (rerun `ddray cache rm` when it is done)")


@cache_app.command("verify")
def verify() -> None:
    """Read every entry of this node's cache and compare its bytes with the checksums written at
    build; name each damaged entry and exit 1 if there is one (`ddray cache rm ID` removes it, or
    the next trial that opens it rebuilds it)."""
    from ddray.data import NodeCache

    cache = NodeCache.default()
    checked = cache.verify()
    bad = [(e, why) for e, why in checked if why]
    for e, why in bad:
        out.print(f"damaged: {e.id} ({escape(e.what) or e.kind}): {escape('; '.join(why[:3]))}"
                  + (f" and {len(why) - 3} more" if len(why) > 3 else ""))
    out.print(f"{len(checked)} entr{'y' if len(checked) == 1 else 'ies'} checked in {cache.root}, {len(bad)} damaged")
    if bad:
        raise typer.Exit(1)

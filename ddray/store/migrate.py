"""Rekeying rows an earlier version keyed with the paths of their external files.

Until `trials.key_dump` left them out, a key hashed the paths of a `files` method set, of loaded
teacher checkpoints and of pretrained full-data checkpoints. Such a row's name is the hash of its
raw `config_json` text, not today's key, so `ddray run` would quarantine and recompute it, and
every trial that names its key (an eval's `synth`, a `teachers[i].key`) would change key too.
`ddray store migrate` renames them instead: the numbers are the same measurement, only the key
rule changed.

`plan_rekeys` is pure (stored records in, renames out), walking the stages in dependency order so
a dependent sees its dependencies' new keys; `migrate_store` applies them: the row under its new
name (the store's atomic, first-writer-wins writer), its artifacts folders and error file, then
the old file removed last, so a run killed half-way is finished by the next one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs
from pydantic import ValidationError

from ddray.keys import canonical_json, text_key
from ddray.store.fs import delete_dir, delete_file, list_files, read_bytes, write_bytes
from ddray.store.rows import SUFFIX, key_of_name, parse_row
from ddray.store.scan import bounded_map
from ddray.store.schema import STAGES, Row
from ddray.store.segments import read_manifest
from ddray.store.store import Store
from ddray.trials import identity_columns, json_config_key, parse_config


@dataclass(frozen=True)
class Rekey:
    """One row to rename: its stage, old and new key, and its record with the new columns."""

    stage: str
    old: str
    new: str
    record: dict[str, Any]


def _with_keys(data: dict[str, Any], renamed: dict[str, str]) -> dict[str, Any]:
    """`data` with every key of another trial it names (`synth`, `teachers[i].key`) renamed."""
    out = dict(data)
    if out.get("synth") in renamed:
        out["synth"] = renamed[out["synth"]]
    if isinstance(out.get("teachers"), list):
        out["teachers"] = [{**t, "key": renamed[t["key"]]} if isinstance(t, dict) and t.get("key") in renamed else t
                           for t in out["teachers"]]
    return out


def rekey(record: dict[str, Any], renamed: dict[str, str]) -> Rekey | None:
    """The rename of one stored row, or None when it stays: keyed by today's rule with no renamed
    dependency, or keyed by neither rule (the usual quarantine deals with it)."""
    text, key = record["config_json"], record["key"]
    try:
        data = json.loads(text)
        today = json_config_key(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or key not in (text_key(text), today):
        return None
    fixed = _with_keys(data, renamed)
    if key == today and fixed == data:
        return None
    try:
        config = parse_config(fixed)
    except ValidationError:
        return None
    new_text = canonical_json(fixed)
    new = json_config_key(new_text)
    ident = identity_columns(config, new)
    return Rekey(record["stage"], key, new,
                 {**record, "key": new, "config_json": new_text, "teacher": ident["teacher"], "cell": ident["cell"]})


def plan_rekeys(records: Iterable[dict[str, Any]]) -> list[Rekey]:
    """Every rename a store's rows need, dependencies first (stages in `STAGES` order: full → synth → search → eval)."""
    by_stage: dict[str, list[dict[str, Any]]] = {s: [] for s in STAGES}
    for r in records:
        by_stage.setdefault(r["stage"], []).append(r)
    renamed: dict[str, str] = {}
    out = []
    for stage in STAGES:
        for r in sorted(by_stage[stage], key=lambda r: r["key"]):
            rk = rekey(r, renamed)
            if rk is not None:
                renamed[rk.old] = rk.new
                out.append(rk)
    return out


def _record(st: Store, stage: str, name: str) -> dict[str, Any] | None:
    """A row file's record when its columns name its file (its hash is `rekey`'s to judge), else None."""
    key = key_of_name(name)
    data = read_bytes(st.loc, st.path("rows", stage, name))
    if key is None or data is None:
        return None
    table, problem = parse_row(data)
    if problem or table is None:
        return None
    rec = table.to_pylist()[0]
    return rec if rec["key"] == key and rec["stage"] == stage and rec["config_json"] else None


def stored_records(st: Store) -> list[dict[str, Any]]:
    """The record of every row file whose columns name it, read from the files (not the index)."""
    names = [(s, n) for s in STAGES for n in list_files(st.loc, st.path("rows", s), SUFFIX)]
    found = bounded_map(lambda sn: _record(st, *sn), names, not st.loc.is_local)
    return [r for r in found if r is not None]


def _move_tree(st: Store, src: str, dst: str) -> None:
    """Move a folder's files under `dst`, file by file (object stores have no folder rename); a
    `dst` already there is kept, and `src` with it."""
    fs = st.loc.fs
    if fs.get_file_info(src).type != pafs.FileType.Directory or fs.get_file_info(dst).type != pafs.FileType.NotFound:
        return
    for info in fs.get_file_info(pafs.FileSelector(src, recursive=True)):
        if info.type == pafs.FileType.File:
            target = dst + "/" + info.path[len(src):].lstrip("/")
            fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            fs.move(info.path, target)
    delete_dir(st.loc, src)


def _move_error(st: Store, old: str, new: str) -> None:
    """errors/<old>.json as errors/<new>.json, its `key` field renamed (`Store.errors_of` checks it)."""
    data = read_bytes(st.loc, st.path("errors", f"{old}.json"))
    if data is None:
        return
    try:
        err = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        err = None
    if isinstance(err, dict):
        write_bytes(st.loc, st.path("errors", f"{new}.json"), json.dumps({**err, "key": new}, indent=1).encode())
    delete_file(st.loc, st.path("errors", f"{old}.json"))


def apply_rekey(st: Store, rk: Rekey) -> None:
    """Write the row under its new key, move its artifacts and error, then remove the old row file."""
    st.write_row(Row(**rk.record))
    kinds = [i.base_name for i in st.loc.fs.get_file_info(pafs.FileSelector(st.path("artifacts"), allow_not_found=True))
             if i.type == pafs.FileType.Directory]
    for kind in kinds:
        _move_tree(st, st.artifact_dir(kind, rk.old), st.artifact_dir(kind, rk.new))
    _move_error(st, rk.old, rk.new)
    delete_file(st.loc, st.row_path(rk.stage, rk.old))


def migrate_store(st: Store, dry_run: bool = False) -> list[Rekey]:
    """Rekey every row keyed by the earlier rule, and every row naming one, in dependency order."""
    rekeys = plan_rekeys(stored_records(st))
    if dry_run or not rekeys:
        return rekeys
    for rk in rekeys:
        apply_rekey(st, rk)
    if read_manifest(st.loc):  # an index of the old names: merged anew, so no entry names a removed file
        st.compact()
    return rekeys

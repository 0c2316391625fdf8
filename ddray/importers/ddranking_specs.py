"""DD-Ranking configs grouped into ddray specs: one spec per protocol group.

A ddray spec evaluates methods × datasets × IPCs × archs under *one* protocol (DESIGN §1b), and
DD-Ranking's files do not share one: each method (sometimes each IPC) has its own recipe and
its random baseline is trained under that recipe. So the files are grouped by everything but
method and IPC — dataset, student, protocol knobs, teachers, full-data arm, seeds — and each group
becomes one spec whose methods × IPCs is a full cross product (files that do not fill one split
further). Each spec has its own store: two groups can hold the same random-arm trial under two
recipes, which one store would refuse as the same measurement made two ways.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddray.errors import InputError
from ddray.importers.ddranking import import_config
from ddray.importers.ddranking_types import Imported
from ddray.protocols import Augment, Protocol, resolve_protocol

# The DD-Ranking field each ddray knob comes from (for "needs knob" errors).
KNOB_SOURCE = {"zca": "use_zca", "zca_eps": "use_zca", "aug_for_hard": "use_aug_for_hard",
               "soft_labels": "soft_label_mode", "mse_weight": "loss_fn_kwargs", "test_resize": "custom_val_trans",
               "random_crop_padding": "custom_train_trans", "gaussian_noise": "custom_train_trans"}


@dataclass
class Imports:
    """Every imported config and the specs they make (name -> spec dict)."""

    configs: list[Imported]
    specs: dict[str, dict[str, Any]]
    members: dict[str, list[Imported]]     # spec name -> the configs it evaluates

    @property
    def errors(self) -> list[str]:
        return [e for imp in self.configs for e in imp.errors]


def find_configs(paths: list[Path]) -> list[Path]:
    """The YAML files named, and those under the folders named (sorted); InputError for a missing path."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise InputError("no such file or folder", path=str(p))
    if not out:
        raise InputError("no DD-Ranking config (*.yaml) found", path=" ".join(map(str, paths)))
    return out


def read_configs(paths: list[Path]) -> list[Imported]:
    """Parse and map every config (strict YAML: duplicate keys or tags are errors naming the file)."""
    from ddray.yaml_strict import read_yaml_file

    out = []
    for p in find_configs(paths):
        _, cfg = read_yaml_file(p)
        if not isinstance(cfg, dict):
            raise InputError("a DD-Ranking config must be a YAML mapping", path=str(p))
        out.append(import_config(str(p), cfg))
    return out


def plain(v: Any) -> Any:
    """Tuples as lists (YAML and comparisons), recursively."""
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


def preset_for(imp: Imported) -> str:
    return "ddranking-hard" if imp.knobs.get("labels") == "hard" else "ddranking-soft"


def overrides(preset: str, knobs: dict[str, Any]) -> dict[str, Any]:
    """The knobs that differ from `preset` (knobs ddray lacks are kept, to be reported by `missing_knobs`)."""
    base = plain(resolve_protocol(preset).model_dump())
    out: dict[str, Any] = {}
    for k, v in knobs.items():
        if k == "augment":
            aug = _augment_overrides(base["augment"], v)
            if aug:
                out["augment"] = aug
        elif k not in base or base[k] != plain(v):
            out[k] = plain(v)
    return out


def _augment_overrides(base: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """Augment knobs to set over the preset's: what the config wants, and what the preset turns on that it does not."""
    defaults = {k: plain(f.default) for k, f in Augment.model_fields.items()}
    full = {**defaults, **plain(wanted)}
    return {k: v for k, v in full.items() if k not in base or base[k] != v}


def missing_knobs(over: dict[str, Any]) -> list[str]:
    """Knobs the mapping needs that this ddray's Protocol/Augment does not have yet, as `field: message`."""
    out = [k for k in over if k not in Protocol.model_fields]
    out += [f"augment.{k}" for k in over.get("augment", {}) if k not in Augment.model_fields]
    return [f"{KNOB_SOURCE.get(k.removeprefix('augment.'), k)}: needs the protocol knob `{k}`, which this ddray "
            "does not have" for k in out]


def _group_key(imp: Imported) -> str:
    preset = preset_for(imp)
    return json.dumps([imp.dataset, imp.arch, preset, overrides(preset, imp.knobs), imp.teachers, imp.full,
                       imp.seeds, imp.root, imp.cpu], sort_keys=True)


def group(configs: list[Imported]) -> list[tuple[list[str], list[int], list[Imported]]]:
    """(methods, IPCs, configs) of each spec: per protocol group, methods sharing the same IPC set."""
    by_key: dict[str, dict[str, list[Imported]]] = defaultdict(lambda: defaultdict(list))
    for imp in configs:
        by_key[_group_key(imp)][imp.method].append(imp)
    out = []
    for methods in by_key.values():
        by_ipcs: dict[tuple[int, ...], list[str]] = defaultdict(list)
        for m, imps in methods.items():
            by_ipcs[tuple(sorted(i.ipc for i in imps))].append(m)
        for ipcs, ms in by_ipcs.items():
            out.append((sorted(ms), list(ipcs), [i for m in sorted(ms) for i in methods[m]]))
    return sorted(out, key=lambda g: (g[2][0].dataset, g[0], g[1]))


def spec_dict(methods: list[str], ipcs: list[int], imps: list[Imported], sets: str, name: str) -> dict[str, Any]:
    """One ddray spec for a group; DD-Ranking's released sets at `sets`/METHOD/DATASET/IPC<k>/."""
    first = imps[0]
    preset = preset_for(first)
    params = {i.method: i.method_params for i in imps}
    spec: dict[str, Any] = {
        "name": name, "store": f"runs/{name}",
        "datasets": {first.loader: {"root": first.root}},
        "methods": {m: {"files": f"{sets.rstrip('/')}/{m}/{first.dataset}/IPC{{ipc}}/", **params[m]} for m in methods},
        "ipc": ipcs, "archs": [first.arch], "seeds": list(range(first.seeds)),
        "protocol": preset, "overrides": overrides(preset, first.knobs)}
    if first.teachers:
        spec["teachers"] = [dict(t) for t in first.teachers]
    spec["full"] = dict(first.full)
    if first.cpu:
        spec["resources"] = {first.arch: {"cpu": first.cpu}}
    return spec


def spec_name(methods: list[str], ipcs: list[int], imp: Imported) -> str:
    ms = "-".join(m.lower() for m in methods)
    return f"ddranking-{ms}-{imp.loader}-ipc{'-'.join(map(str, ipcs))}"


def import_ddranking(paths: list[Path], sets: str = "baselines") -> Imports:
    """Every config under `paths`, mapped and grouped into specs; problems are in `.errors`."""
    configs = read_configs(paths)
    specs: dict[str, dict[str, Any]] = {}
    members: dict[str, list[Imported]] = {}
    for methods, ipcs, imps in group(configs):
        name = spec_name(methods, ipcs, imps[0])
        if name in specs:  # two recipes for the same methods, dataset and IPCs: tell them apart
            name = f"{name}-{sum(n.startswith(name) for n in specs) + 1}"
        specs[name] = spec_dict(methods, ipcs, imps, sets, name)
        members[name] = imps
        for problem in missing_knobs(specs[name]["overrides"]):
            field, msg = problem.split(": ", 1)
            for imp in imps:
                imp.note(field, "error", msg)
    return Imports(configs, specs, members)


def check_specs(specs: dict[str, dict[str, Any]]) -> list[str]:
    """Each spec through ddray's own checks without data (registries, protocol knobs): `name: problem` lines."""
    from ddray.spec import parse_spec
    from ddray.spec_check import check_spec

    problems = []
    for name, d in specs.items():
        try:
            check_spec(parse_spec(d), data=False)
        except InputError as e:
            problems += [f"{name}: {p}" for p in e.problems]
    return problems


def spec_yaml(name: str, imports: Imports) -> str:
    """A spec as YAML, headed by the DD-Ranking files it came from."""
    import yaml

    files = [i.file for i in imports.members[name]]
    head = [f"# {name}: imported from DD-Ranking's {', '.join(files)} by `ddray import ddranking`",
            "# (every field's mapping: ddranking-import.md beside it, or `ddray import ddranking --verbose`)"]
    return "\n".join(head) + "\n" + yaml.safe_dump(imports.specs[name], sort_keys=False, width=120, default_flow_style=None)


def notes_markdown(imports: Imports, kinds: tuple[str, ...] = ("mapped", "fixed", "differs", "ignored", "error")) -> str:
    """Every config's fields as a Markdown table: file, field, what happened, how."""
    from ddray.markdown import markdown_table

    rows = [(i.file, n.field, n.kind, n.text.replace("|", "/")) for i in imports.configs for n in i.notes
            if n.kind in kinds]
    return markdown_table(("file", "field", "", "ddray"), rows, left=4)


def write_specs(imports: Imports, out: Path) -> list[Path]:
    """Write the specs: `out` a .yaml file (one spec only) or a folder (one file per spec + the field report)."""
    if out.suffix in (".yaml", ".yml"):
        if len(imports.specs) != 1:
            raise InputError(f"the configs make {len(imports.specs)} specs (one per protocol group: "
                             f"{', '.join(imports.specs)}); give a folder", path="--out")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(spec_yaml(next(iter(imports.specs)), imports))
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in imports.specs:
        paths.append(out / f"{name}.yaml")
        paths[-1].write_text(spec_yaml(name, imports))
    (out / "ddranking-import.md").write_text("# DD-Ranking configs imported, field by field\n\n" + notes_markdown(imports))
    return paths

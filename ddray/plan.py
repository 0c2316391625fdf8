"""Plan: the pure expansion of a spec into keyed trials, stage by stage.

Nothing here touches files, registries or Ray; the same spec always gives the same plan. A key
hashes only what changes the numbers, so trials that do not depend on the method (random
baselines, full-data arms, teachers) appear once however many methods share them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ddray.keys import config_key
from ddray.protocols import Protocol
from ddray.spec import ArmSpec, Spec, resources_for
from ddray.tuning.space import apply_knobs, effective_knobs

STAGES = ("full", "synth", "search", "eval")
# Methods whose distilled set is produced by ddray (a synth trial); `files` sets are read directly.
_NO_SYNTH_KINDS = ("files",)


@dataclass(frozen=True)
class Trial:
    """One unit of work: a keyed, resolved config plus what it needs to run."""

    key: str
    stage: str
    config: Mapping[str, Any]          # what the key hashes
    deps: tuple[str, ...] = ()          # keys that must be stored first
    cpu: float = 1.0
    gpu: float | str = "auto"
    methods: tuple[str, ...] = ()       # methods whose scores use this trial (not in the key)

    @property
    def label(self) -> str:
        c = self.config
        parts = [c.get("method", {}).get("name") if isinstance(c.get("method"), dict) else None,
                 c["dataset"]["name"], f"ipc{c['ipc']}" if c.get("ipc") else None, c.get("arch"),
                 c.get("arm"), c.get("labels"), None if "aug" not in c else ("aug" if c["aug"] else "noaug"),
                 f"s{c['seed']}", c.get("track"),
                 ",".join(f"{k}={v}" for k, v in c["knobs"].items()) if c.get("knobs") else None]
        return "/".join(str(p) for p in parts if p is not None)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "stage": self.stage, "config": dict(self.config), "deps": list(self.deps),
                "cpu": self.cpu, "gpu": self.gpu, "methods": list(self.methods), "label": self.label}


@dataclass(frozen=True)
class Plan:
    spec_name: str
    trials: tuple[Trial, ...]
    by_key: Mapping[str, Trial] = field(repr=False, compare=False, default_factory=dict)

    def stage(self, stage: str) -> list[Trial]:
        return [t for t in self.trials if t.stage == stage]

    def keys(self) -> set[str]:
        return {t.key for t in self.trials}

    def counts(self) -> dict[str, int]:
        return {s: len(self.stage(s)) for s in STAGES}


def _dataset_ref(spec: Spec, name: str) -> dict[str, Any]:
    ds = spec.datasets[name]
    # The root is where the data lives, not what it is: moving data must not change keys.
    return {"name": name, "loader": ds.loader or name, "options": dict(ds.options)}


def arm_protocol(protocol: Protocol, labels: str, aug: bool) -> dict[str, Any]:
    """The knobs one arm trains with: hard labels train with CE, soft ones with the protocol's soft loss."""
    loss = protocol.loss
    if labels == "hard":
        loss = "ce"
    elif loss == "ce":
        loss = "kl"
    p = protocol.model_copy(update={"labels": labels, "loss": loss})
    knobs = p.model_dump(mode="json")
    if not aug:
        knobs.pop("augment")  # augmentation knobs cannot change an un-augmented trial's numbers
    return knobs


class _Builder:
    """Accumulates trials, merging the ones several methods share."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.trials: dict[str, Trial] = {}

    def add(self, stage: str, config: dict[str, Any], deps: Iterable[str], res_key: str, method: str | None) -> str:
        key = config_key(config)
        res = resources_for(self.spec, res_key)
        old = self.trials.get(key)
        methods = tuple(sorted(set((old.methods if old else ()) + ((method,) if method else ()))))
        self.trials[key] = Trial(key=key, stage=stage, config=config, deps=tuple(sorted(set(deps))),
                                 cpu=res.cpu, gpu=res.gpu, methods=methods)
        return key

    def full(self, dataset: str, arch: str, seed: int, method: str | None = None) -> str:
        recipe = self.spec.full_protocol(dataset)
        config = {"stage": "full", "dataset": _dataset_ref(self.spec, dataset), "arch": arch, "seed": seed,
                  "arm": "full", "labels": "hard", "aug": recipe.augment.active,
                  "protocol": recipe.model_dump(mode="json")}
        res = "full" if "full" in self.spec.resources else arch
        return self.add("full", config, (), res, method)

    def teachers(self, dataset: str, method: str | None) -> tuple[list[dict[str, Any]], list[str]]:
        refs, deps = [], []
        for t in self.spec.teacher_list:
            if t.checkpoint:
                refs.append({"arch": t.arch, "checkpoint": t.checkpoint})
            else:
                k = self.full(dataset, t.arch, t.seed, method)
                refs.append({"arch": t.arch, "key": k})
                deps.append(k)
        return refs, deps

    def synth(self, dataset: str, method: str, mref: dict[str, Any], ipc: int, seed: int) -> str | None:
        """The synthesis trial of a method's set (None for a user's files: nothing to make)."""
        kind = mref["kind"]
        if kind in _NO_SYNTH_KINDS:
            return None
        cfg: dict[str, Any] = {"stage": "synth", "dataset": _dataset_ref(self.spec, dataset), "method": mref,
                               "ipc": ipc, "seed": seed}
        deps: list[str] = []
        if _needs_teacher(kind, mref["params"]):
            refs, tdeps = self.teachers(dataset, method)
            cfg["teachers"], deps = refs[:1], tdeps[:1]
        return self.add("synth", cfg, deps, "synth", method)

    def eval_arm(self, dataset: str, method: str, mref: dict[str, Any], ipc: int, seed: int, arch: str,
                 arm: ArmSpec, synth_key: str | None) -> tuple[dict[str, Any], list[str]]:
        """One evaluation trial of an rdm or syn arm; returns its config and dependencies."""
        protocol = self.spec.student_protocol(arch)
        labels = arm.labels or self.spec.method_labels(method)
        aug = arm.aug and protocol.augment.active
        cfg: dict[str, Any] = {"stage": "eval", "dataset": _dataset_ref(self.spec, dataset), "ipc": ipc, "arch": arch,
                               "seed": seed, "arm": arm.arm, "labels": labels, "aug": aug,
                               "protocol": arm_protocol(protocol, labels, aug)}
        deps: list[str] = []
        if labels != "hard":
            refs, tdeps = self.teachers(dataset, method)
            cfg["teachers"] = refs if labels == "hybrid" else refs[:1]
            deps += tdeps if labels == "hybrid" else tdeps[:1]
        if arm.arm == "syn":
            cfg["method"] = mref
            if synth_key:
                cfg["synth"] = synth_key
                deps.append(synth_key)
        self.add("eval", cfg, deps, arch, method)
        return cfg, deps


def _method_ref(spec: Spec, name: str) -> dict[str, Any]:
    m = spec.methods[name]
    kind = m.resolved_kind(name)
    ref: dict[str, Any] = {"name": name, "kind": kind, "params": m.params}
    return ref


def _needs_teacher(kind: str, params: dict[str, Any]) -> bool:
    if kind in _NO_SYNTH_KINDS:
        return False
    try:
        from ddray.methods import get_method

        entry = get_method(kind)
        if entry.teacher_if is not None:
            return bool(entry.teacher_if(entry.params_model.model_validate(params)))
        return bool(entry.needs_teacher)
    except Exception:  # unknown kinds and bad params are reported by check_spec, not by the planner
        return False


def _arms(spec: Spec, method: str) -> list[ArmSpec]:
    """The arms a method needs: explicit, or those of LRS (HLR, IOR) and ARS."""
    if spec.arms != "scores":
        return list(spec.arms)
    L = spec.method_labels(method)
    arms = [ArmSpec(arm="full", labels="hard", aug=True), ArmSpec(arm="syn", labels="hard", aug=True)]
    for aug in (True, False):
        arms += [ArmSpec(arm="syn", labels=L, aug=aug), ArmSpec(arm="rdm", labels=L, aug=aug)]
    return arms


def _select(spec: Spec, only: Mapping[str, set[str]] | None, field: str, values: Iterable[Any]) -> list[Any]:
    if not only or field not in only:
        return list(values)
    return [v for v in values if str(v) in only[field]]


ONLY_FIELDS = ("method", "dataset", "ipc", "arch", "seed")


def _with_files(spec: Spec, method: str, mref: dict[str, Any], dataset: str, ipc: int) -> dict[str, Any]:
    """A `files` method's reference with its path template resolved for (dataset, IPC)."""
    if mref["kind"] not in _NO_SYNTH_KINDS:
        return mref
    return {**mref, "files": spec.methods[method].files.format(dataset=dataset, ipc=ipc)}  # type: ignore[union-attr]


def make_plan(spec: Spec, only: Mapping[str, set[str]] | None = None) -> Plan:
    """Expand a spec (optionally a slice of it, `only={"ipc": {"1"}}`) into keyed trials."""
    b = _Builder(spec)
    needs_full: set[tuple[str, str]] = set()
    for dataset in _select(spec, only, "dataset", spec.datasets):
        for method in _select(spec, only, "method", spec.methods):
            for ipc in _select(spec, only, "ipc", spec.ipc):
                mref = _with_files(spec, method, _method_ref(spec, method), dataset, ipc)
                for seed in _select(spec, only, "seed", spec.seeds):
                    synth_key = b.synth(dataset, method, mref, ipc, seed)
                    for arch in _select(spec, only, "arch", spec.archs):
                        for arm in _arms(spec, method):
                            if arm.arm == "full":
                                needs_full.add((dataset, arch))
                                continue
                            cfg, deps = b.eval_arm(dataset, method, mref, ipc, seed, arch, arm, synth_key)
                            if spec.tuning is not None:
                                synth0 = b.synth(dataset, method, mref, ipc, spec.seeds[0])
                                _add_tuned(b, spec, cfg, deps, synth_key, synth0, method)
    # Acc(full, hard) is per (dataset, arch, seed) and shared by every method.
    seeds = spec.full.seeds if spec.full.seeds is not None else _select(spec, only, "seed", spec.seeds)
    for dataset, arch in sorted(needs_full):
        for seed in seeds:
            b.full(dataset, arch, seed)
    order = {s: i for i, s in enumerate(STAGES)}
    trials = tuple(sorted(b.trials.values(), key=lambda t: (order[t.stage], t.label, t.key)))
    return Plan(spec_name=spec.name, trials=trials, by_key={t.key: t for t in trials})


def _add_tuned(b: _Builder, spec: Spec, cfg: dict[str, Any], deps: list[str], synth_key: str | None,
               synth0_key: str | None, method: str) -> str:
    """The tuned twin of a fixed eval trial: its cell's search trials, and the re-run that picks a winner.

    One search per cell, at the spec's first seed (its distilled set for syn arms): the configs
    are those of `spec.tuning`, identical for every arm, so syn and rdm get the same search. Search
    trials train on the arm's set and validate on a held-out part of the real train split; the
    tuned trial's key hashes the cell and the search (space, algorithm, budget, split), never the
    winner, which it picks at run time from the stored search rows.
    """
    assert spec.tuning is not None
    t, seed0 = spec.tuning, spec.seeds[0]
    base = {**cfg, "seed": seed0}
    base_deps = [d for d in deps if d != synth_key]
    if "synth" in cfg:
        base["synth"] = synth0_key
        base_deps.append(synth0_key)  # type: ignore[arg-type]
    search = []
    for knobs in t.configs():
        eff = effective_knobs(knobs, cfg["aug"])
        scfg = {**base, "stage": "search", "track": "tuned", "split": "val",
                "val": {"fraction": t.val_fraction, "seed": t.val_seed}, "knobs": eff,
                "protocol": apply_knobs(cfg["protocol"], eff, cfg["aug"])}
        search.append(b.add("search", scfg, base_deps, cfg["arch"], method))
    tuned = {**cfg, "track": "tuned", "tuning": t.ref(seed0)}
    return b.add("eval", tuned, [*deps, *search], cfg["arch"], method)


def comparison_cell(config: Mapping[str, Any]) -> str | None:
    """Key of what a syn and an rdm trial share when they are compared (everything but arm/method)."""
    if config.get("stage") != "eval":
        return None
    return config_key({k: v for k, v in config.items() if k not in ("arm", "method", "synth")})


def parse_only(items: Iterable[str]) -> dict[str, set[str]]:
    """`--only ipc=1,10 --only method=dm` as {field: values}; raises ValueError on a bad item."""
    out: dict[str, set[str]] = {}
    for item in items:
        fld, sep, vals = item.partition("=")
        fld = fld.strip()
        if not sep or fld not in ONLY_FIELDS or not vals.strip():
            raise ValueError(f"--only {item!r}: expected FIELD=V1,V2 with FIELD one of {', '.join(ONLY_FIELDS)}")
        out.setdefault(fld, set()).update(v.strip() for v in vals.split(",") if v.strip())
    return out

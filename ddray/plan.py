"""Plan: the pure expansion of a spec into keyed trials, stage by stage.

Nothing here touches files, registries or Ray; the same spec always gives the same plan. A key
hashes only what changes the numbers, so trials that do not depend on the method (random
baselines, full-data arms, teachers) appear once however many methods share them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ddray.errors import InputError
from ddray.keys import canonical_numbers
from ddray.protocols import Augment, Protocol
from ddray.spec import ArmSpec, Spec, resources_for
from ddray.trials import (
    STAGES,
    DatasetRef,
    EvalConfig,
    FullConfig,
    MethodRef,
    SearchConfig,
    SynthConfig,
    TeacherRef,
    Trial,
    TrialConfig,
    ValSplit,
)
from ddray.tuning.space import effective_knobs, knobbed

# Methods whose distilled set is produced by ddray (a synth trial); `files` sets are read directly.
_NO_SYNTH_KINDS = ("files",)


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


def merge_plans(plans: list[Plan]) -> Plan:
    """One plan of several specs' trials: a trial several plan is kept once, with every method using it."""
    by_key: dict[str, Trial] = {}
    for p in plans:
        for t in p.trials:
            old = by_key.get(t.key)
            by_key[t.key] = t if old is None else replace(old, methods=tuple(sorted(set(old.methods) | set(t.methods))))
    return _plan(" + ".join(dict.fromkeys(p.spec_name for p in plans)), by_key.values())


def _plan(name: str, trials: Iterable[Trial]) -> Plan:
    """Trials in stage order, then by label: the order `ddray plan` shows and the runner starts ties in."""
    order = {s: i for i, s in enumerate(STAGES)}
    ordered = tuple(sorted(trials, key=lambda t: (order[t.stage], t.label, t.key)))
    return Plan(spec_name=name, trials=ordered, by_key={t.key: t for t in ordered})


def _dataset_ref(spec: Spec, name: str) -> DatasetRef:
    ds = spec.datasets[name]
    return DatasetRef(name=name, loader=ds.loader or name, options=canonical_numbers(dict(ds.options)))


def arm_protocol(protocol: Protocol, labels: str, aug: bool) -> Protocol:
    """The protocol one arm trains with: hard labels train with CE, soft ones with the protocol's soft loss.

    Knobs the plan has already spent are reset, so they cannot split keys of equal trials:
    `aug_for_hard` is in the arm's `aug` flag (`Protocol.augments`), `real_batch_size` is
    the full-data arm's, never an eval arm's, and `soft_labels` says nothing to a hard-label arm.
    An un-augmented arm has no augmentation knobs (the defaults, left out of its config's dump by
    `EvalConfig._trim`): they cannot change its numbers. Returned as a model, not a dict: the
    config takes it without validating it again.
    """
    loss = protocol.loss
    if labels == "hard":
        loss = "ce"
    elif loss == "ce":
        loss = "kl"
    update: dict[str, Any] = {"labels": labels, "loss": loss, "aug_for_hard": None, "real_batch_size": None}
    if labels == "hard":
        update["soft_labels"] = "teacher"  # where soft targets come from cannot change a hard-label trial
    if not aug:
        update["augment"] = Augment()
    return protocol.model_copy(update=update)


class _Builder:
    """Accumulates trials, merging the ones several methods share."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.trials: dict[str, Trial] = {}
        self.protocols: dict[tuple[str, str], Protocol] = {}

    def protocol(self, kind: str, name: str) -> Protocol:
        """The spec's resolved student (per arch) or full-data (per dataset) protocol, resolved once.

        Why: resolving validates every knob, and a plan asks for the same few protocols once per
        trial; at 10,000 trials that was half of the planning time of `status` and `run`.
        """
        if (kind, name) not in self.protocols:
            resolve = self.spec.student_protocol if kind == "student" else self.spec.full_protocol
            self.protocols[(kind, name)] = resolve(name)
        return self.protocols[(kind, name)]

    def add(self, config: TrialConfig, deps: Iterable[str], res_key: str, method: str | None) -> str:
        res = resources_for(self.spec, res_key)
        trial = Trial(config=config, deps=tuple(sorted(set(deps))), cpu=res.cpu, gpu=res.gpu,
                      methods=(method,) if method else ())
        old = self.trials.get(trial.key)  # the key is hashed once per add (it is half of planning's time)
        methods = tuple(sorted(set((old.methods if old else ()) + trial.methods)))
        self.trials[trial.key] = trial if methods == trial.methods else replace(trial, methods=methods)
        return trial.key

    def pretrained(self, dataset: str, arch: str) -> str:
        """Acc(full, hard) of `arch` as its pretrained checkpoint scores it: one trial, no training."""
        config = FullConfig(dataset=_dataset_ref(self.spec, dataset), arch=arch, seed=0, aug=False,
                            protocol={"name": "pretrained"}, checkpoint=self.spec.pretrained_checkpoint(arch))
        return self.add(config, (), "full" if "full" in self.spec.resources else arch, None)

    def full(self, dataset: str, arch: str, seed: int, method: str | None = None) -> str:
        recipe = self.protocol("full", dataset)
        config = FullConfig(dataset=_dataset_ref(self.spec, dataset), arch=arch, seed=seed,
                            aug=recipe.augment.active, protocol=recipe)
        res = "full" if "full" in self.spec.resources else arch
        return self.add(config, (), res, method)

    def teachers(self, dataset: str, method: str | None) -> tuple[list[TeacherRef], list[str]]:
        refs, deps = [], []
        for t in self.spec.teacher_list:
            if t.checkpoint:
                refs.append(TeacherRef(arch=t.arch, checkpoint=t.checkpoint))
            else:
                k = self.full(dataset, t.arch, t.seed, method)
                refs.append(TeacherRef(arch=t.arch, key=k))
                deps.append(k)
        return refs, deps

    def synth(self, dataset: str, method: str, mref: MethodRef, ipc: int, seed: int) -> str | None:
        """The synthesis trial of a method's set (None for a user's files: nothing to make)."""
        if mref.kind in _NO_SYNTH_KINDS:
            return None
        teachers, deps = None, []
        trained = self.spec.methods[method].trained_arch
        if trained is not None:  # features: trained: the full-data arm of that arch is the feature net
            k = self.full(dataset, trained, self.spec.full_seed(seed), method)
            teachers, deps = (TeacherRef(arch=trained, key=k),), [k]
        elif self.spec.methods[method].needs_teacher:
            refs, tdeps = self.teachers(dataset, method)
            teachers, deps = tuple(refs[:1]), tdeps[:1]
        config = SynthConfig(dataset=_dataset_ref(self.spec, dataset), method=mref, ipc=ipc, seed=seed,
                             teachers=teachers)
        return self.add(config, deps, "synth", method)

    def eval_arm(self, dataset: str, method: str, mref: MethodRef, ipc: int, seed: int, arch: str,
                 arm: ArmSpec, synth_key: str | None) -> tuple[EvalConfig, list[str]]:
        """One evaluation trial of an rdm or syn arm; returns its config and dependencies."""
        protocol = self.protocol("student", arch)
        labels = arm.labels or self.spec.method_labels(method)
        aug = protocol.augments(labels, arm.aug)
        teachers, deps = None, []
        if labels != "hard":
            refs, tdeps = self.teachers(dataset, method)
            teachers = tuple(refs if labels == "hybrid" else refs[:1])
            deps += tdeps if labels == "hybrid" else tdeps[:1]
        syn = arm.arm == "syn"
        if syn and synth_key:
            deps.append(synth_key)
        config = EvalConfig(dataset=_dataset_ref(self.spec, dataset), ipc=ipc, arch=arch, seed=seed, arm=arm.arm,
                            labels=labels, aug=aug, protocol=arm_protocol(protocol, labels, aug), teachers=teachers,
                            method=mref if syn else None, synth=synth_key if syn else None)
        self.add(config, deps, arch, method)
        return config, deps


def _method_ref(spec: Spec, name: str, dataset: str, ipc: int) -> MethodRef:
    """A method as its trials name it; a `files` method's path template resolved for (dataset, IPC)."""
    m = spec.methods[name]
    kind = m.resolved_kind(name)
    files = m.files.format(dataset=dataset, ipc=ipc) if kind in _NO_SYNTH_KINDS else None  # type: ignore[union-attr]
    return MethodRef(name=name, kind=kind, params=m.key_params, files=files)


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


def make_plan(spec: Spec, only: Mapping[str, set[str]] | None = None) -> Plan:
    """Expand a resolved spec (optionally a slice of it, `only={"ipc": {"1"}}`) into keyed trials.

    Pure: the spec says everything, including what each method needs (`spec_check.resolve_methods`
    answered that from the registries), so the same spec gives the same plan in any process.
    """
    b = _Builder(spec)
    needs_full: set[tuple[str, str]] = set()
    for dataset in _select(spec, only, "dataset", spec.datasets):
        for method in _select(spec, only, "method", spec.methods):
            for ipc in _select(spec, only, "ipc", spec.ipc):
                mref = _method_ref(spec, method, dataset, ipc)
                for seed in _select(spec, only, "seed", spec.seeds):
                    synth_key = b.synth(dataset, method, mref, ipc, seed)
                    for arch in _select(spec, only, "arch", spec.archs):
                        for arm in _arms(spec, method):
                            if arm.arm == "full":
                                needs_full.add((dataset, arch))
                                continue
                            config, deps = b.eval_arm(dataset, method, mref, ipc, seed, arch, arm, synth_key)
                            if spec.tuning is not None:
                                synth0 = b.synth(dataset, method, mref, ipc, spec.seeds[0])
                                _add_tuned(b, spec, config, deps, synth_key, synth0, method)
    # Acc(full, hard) is per (dataset, arch, seed) and shared by every method.
    seeds = spec.full.seeds if spec.full.seeds is not None else _select(spec, only, "seed", spec.seeds)
    for dataset, arch in sorted(needs_full):
        if spec.full.from_teacher:
            b.pretrained(dataset, arch)
            continue
        for seed in seeds:
            b.full(dataset, arch, seed)
    return _plan(spec.name, b.trials.values())


def _add_tuned(b: _Builder, spec: Spec, config: EvalConfig, deps: list[str], synth_key: str | None,
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
    base_deps = [d for d in deps if d != synth_key]
    base = config.model_dump(exclude={"stage", "protocol"}) | {"seed": seed0}
    if config.synth is not None:
        base["synth"] = synth0_key
        base_deps.append(synth0_key)  # type: ignore[arg-type]
    search = []
    for knobs in t.configs():
        eff = effective_knobs(knobs, config.aug)
        scfg = SearchConfig(**base, protocol=knobbed(config.protocol_dump(), eff, config.aug),
                            val=ValSplit(fraction=t.val_fraction, seed=t.val_seed), knobs=eff)
        search.append(b.add(scfg, base_deps, config.arch, method))
    tuned = config.model_copy(update={"track": "tuned", "tuning": t.ref(seed0)})
    return b.add(tuned, [*deps, *search], config.arch, method)


def only_values(spec: Spec, fld: str) -> list[Any]:
    """The values a `--only` field can take in this spec."""
    return {"method": list(spec.methods), "dataset": list(spec.datasets), "ipc": spec.ipc, "arch": spec.archs,
            "seed": spec.seeds}[fld]


def select_only(spec: Spec, items: Iterable[str]) -> dict[str, set[str]]:
    """`--only` items parsed and checked against the spec: a value the spec does not have is an error.

    Why: a typo (`--only seed=O`) would otherwise plan nothing and exit 0 as if all were done.
    """
    try:
        only = parse_only(items)
    except ValueError as e:
        raise InputError(str(e), path="--only") from None
    problems = []
    for fld, wanted in only.items():
        known = only_values(spec, fld)
        unknown = sorted(wanted - {str(v) for v in known})
        if unknown:
            problems.append(("--only", f"{fld}={','.join(unknown)} matches nothing in '{spec.name}'; "
                                       f"its {fld} values are {', '.join(str(v) for v in known)}"))
    if problems:
        raise InputError(problems)
    return only


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

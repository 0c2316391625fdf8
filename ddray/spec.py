"""The evaluation spec: what a user writes in `specs/*.yaml`.

Two layers of checks. The pydantic models check shape and types (and power `ddray schema`);
`ddray.spec_check.check_spec` then checks the spec against the world — registries, data roots, class counts,
method parameters — and collects every problem, so one `ddray validate` lists all of them as
`path.to.field: message`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ddray.errors import InputError, did_you_mean
from ddray.plain_numbers import PlainNumbers
from ddray.protocols import PRESETS, LabelSetting, Protocol, full_recipe, resolve_protocol

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME = 100  # names become folder names (Ray Tune's experiment dir): file systems cap a name at 255 bytes
RESERVED_METHOD_NAMES = ("syn", "rdm", "full")  # arms: the report's columns for them would collide
SEED_MAX = 2**32 - 1  # numpy's seed range; torch takes 64 bits, and ddray adds stream offsets to seeds


def _seed_range(seeds: list[int]) -> list[int]:
    bad = [s for s in seeds if not 0 <= s <= SEED_MAX]
    if bad:
        raise ValueError(f"seed {bad[0]} is out of range: seeds are integers from 0 to {SEED_MAX} (2**32 - 1)")
    return seeds


def _short_names(names: dict[str, Any]) -> dict[str, Any]:
    long = [n for n in names if len(n) > MAX_NAME]
    if long:
        raise ValueError(f"the name '{long[0][:40]}...' has {len(long[0])} characters; at most {MAX_NAME}")
    return names


class _Strict(PlainNumbers):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasetSpec(_Strict):
    """One real dataset (the train/test split methods were distilled from)."""

    loader: str | None = Field(None, description="registry loader (`ddray datasets` lists them: digits, fashion-mnist, cifar10, imagenet1k, imagenette, imagefolder, ...); default: the dataset's key")
    root: str | None = Field(None, description="local folder or file with the data; default: the loader's standard location")
    options: dict[str, Any] = Field(default_factory=dict, description="loader options that change the data, e.g. image_size for imagefolder")


class MethodSpec(BaseModel):
    """A source of distilled sets: a built-in synthesizer, `files`, or a plugin. Other keys are the method's parameters."""

    model_config = ConfigDict(extra="allow")

    kind: str | None = Field(None, description="built-in method name, 'files', or 'module:function'; default: the method's key")
    files: str | None = Field(None, description="bring-your-own sets: path template with {dataset} and {ipc} (a folder with images.pt[/labels.pt/lr.pt], an .npz, or an ImageFolder)")
    labels: LabelSetting | None = Field(None, description="the method's label setting L (hard, soft, hybrid); default: the protocol's")
    # Whether synthesizing needs a teacher: a question for the method registry (a plugin may
    # decide per params), answered once by `ddray.spec_check.resolve_methods`, so the planner
    # stays pure and a plugin that fails to import is an error, never a silently dropped teacher.
    _needs_teacher: bool | None = PrivateAttr(None)
    _trained_arch: str | None = PrivateAttr(None)    # features: trained -> the arch of its full-data weights

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def _resolved(self) -> None:
        if self._needs_teacher is None:
            raise RuntimeError("method requirements are not resolved: load the spec with "
                               "ddray.spec_check.load_spec, or call resolve_methods(spec) before planning")

    @property
    def needs_teacher(self) -> bool:
        self._resolved()
        return bool(self._needs_teacher)

    @property
    def trained_arch(self) -> str | None:
        """The arch whose full-data arm this method looks through (`features: trained`)."""
        self._resolved()
        return self._trained_arch

    def resolved_kind(self, key: str) -> str:
        if self.files is not None:
            return "files"
        return self.kind or key


class TeacherSpec(_Strict):
    """A teacher for soft/hybrid labels: trained by ddray on the full train split, or loaded."""

    arch: str = Field(description="teacher architecture (model registry name)")
    checkpoint: str | None = Field(None, description="state-dict file to load instead of training (loaded with weights_only=True)")
    seed: int = Field(0, description="seed of the teacher's full-data training")

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        return _seed_range([v])[0]


class Resources(_Strict):
    """Ray resources of one trial; fractional GPUs pack several trials on one GPU."""

    cpu: float = Field(1.0, gt=0, description="CPUs (also torch's thread count)")
    gpu: float | Literal["auto"] = Field("auto", description="GPU fraction; 'auto' = the arch's default fraction when the cluster has GPUs, else 0")

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, g: float | str) -> float | str:
        if isinstance(g, str):
            return g
        if g < 0:
            raise ValueError("must be >= 0")
        if g > 1 and not float(g).is_integer():
            raise ValueError(f"{g} GPUs: a fraction must be <= 1, and more than one GPU must be a whole number")
        return g


class ArmSpec(_Strict):
    """One evaluation arm: training set (syn, rdm, full) × labels × augmentation."""

    arm: Literal["syn", "rdm", "full"] = Field(description="syn: the distilled set; rdm: random real subset of the same IPC; full: the whole train split")
    labels: LabelSetting | None = Field(None, description="labels; default: the method's label setting L")
    aug: bool = Field(True, description="apply the protocol's augmentation")


class FullSpec(_Strict):
    """Recipe of the full-data arm (and of teachers trained by ddray)."""

    seeds: list[int] | None = Field(None, description="seeds of the full-data arm; default: the spec's seeds. Seeds without one use the mean Acc(full, hard) of those that have one (one is enough for a first look)")
    from_teacher: bool = Field(False, description="take Acc(full, hard) of each student arch from the teacher checkpoint of that arch, evaluated once on the test split, instead of training the full-data arm (ImageNet: the pretrained torchvision weights; 90 epochs of ImageNet are not retrained)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="knobs over the per-dataset full recipe (epochs, batch_size, lr, ...)")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        return v if v is None else _seed_range(v)

    @model_validator(mode="before")
    @classmethod
    def _flat_overrides(cls, data: Any) -> Any:
        # `full: {epochs: 200}` reads better than `full: {overrides: {epochs: 200}}`: accept both.
        if isinstance(data, dict):
            data = dict(data)
            extra = {k: data.pop(k) for k in list(data) if k not in ("seeds", "overrides", "from_teacher")}
            if extra:
                data["overrides"] = {**data.get("overrides", {}), **extra}
        return data


class ScoreWeights(_Strict):
    """Weights of the robust scores (DD-Ranking)."""

    lambda_: float = Field(0.5, alias="lambda", ge=0, le=1, description="λ of LRS: weight of IOR against HLR")
    gamma: float = Field(0.5, ge=0, le=1, description="γ of ARS: weight of the augmented arm")
    compat: Literal["none", "ddranking-0.2"] = Field("none", description="ddranking-0.2 reproduces the official package's percent-based numbers")


class Runtime(_Strict):
    """Execution knobs: they never change the numbers, so they never enter a key."""

    checkpoint_every: int = Field(0, ge=0, description="epochs between resume checkpoints of a trial in the store (0 = auto: about every 10% of the epochs, at least 5)")
    max_failures: int = Field(2, ge=0, description="retries of a failed trial within one run (preemptions included)")
    cache_gb: float | None = Field(None, ge=0, description="most GB of decoded splits (and embeddings) the node cache ($DDRAY_CACHE_DIR, default ~/.cache/ddray/data) may hold on each node; a split that does not fit is streamed from its files; 0 disables the cache; null = what the disk can spare")


class SearchRange(_Strict):
    """A continuous (or integer) range of one knob, for random search."""

    low: float = Field(description="smallest value")
    high: float = Field(description="largest value")
    log: bool = Field(False, description="draw uniformly in log space (learning rates, weight decay)")
    integer: bool = Field(False, description="round draws to integers (batch size, epochs)")

    @model_validator(mode="after")
    def _check(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class TuningSpec(_Strict):
    """Tuned-best track: a per-cell hyperparameter search on a validation split, then a test re-run.

    Every arm compared in a score (syn and rdm, each label setting, aug on and off) is searched
    over the same configs with the same budget; see docs/tuning.md.
    """

    space: dict[str, list[Any] | SearchRange] = Field(min_length=1, description="knobs to search: a list of values, or a range {low, high, log, integer} (random search); names: lr, weight_decay, batch_size, temperature, epochs, ..., augment.<knob>")
    algorithm: Literal["grid", "random"] = Field("grid", description="grid: every combination of the lists; random: `budget` seeded draws (the same draws for every arm)")
    budget: int | None = Field(None, ge=1, description="search trials per cell; grid: default and at least the grid size; random: required")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="fraction of the real train split held out (stratified) to select on; the test split is never read by a search")
    val_seed: int = Field(0, description="seed of the validation split")
    seed: int = Field(0, description="seed of the random draws")
    max_epochs: int | None = Field(None, ge=1, description="cap on searched epochs (searching epochs without a cap always picks the longest)")

    @field_validator("seed", "val_seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        return _seed_range([v])[0]

    @field_validator("space", mode="before")
    @classmethod
    def _numbers(cls, v: Any) -> Any:
        # YAML 1.1 reads `1e-3` as a string; a knob value that looks like a number is one.
        if isinstance(v, dict):
            return {k: [float(x) if isinstance(x, str) and _NUMBER.match(x) else x for x in d] if isinstance(d, list) else d
                    for k, d in v.items()}
        return v

    @model_validator(mode="after")
    def _check(self) -> TuningSpec:
        from ddray.tuning.space import grid_size, space_problems

        problems = space_problems(self.space_dict(), self.max_epochs)
        if self.algorithm == "grid":
            ranges = [k for k, d in self.space.items() if isinstance(d, SearchRange)]
            if ranges:
                problems.append(f"grid search needs lists of values; {', '.join(ranges)} is a range (use algorithm: random)")
            elif self.budget is not None and grid_size(self.space_dict()) > self.budget:
                problems.append(f"the grid has {grid_size(self.space_dict())} configs, more than budget {self.budget}: "
                                "shrink the grid, raise the budget, or use algorithm: random")
        elif self.budget is None:
            problems.append("random search needs a budget (search trials per cell)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def space_dict(self) -> dict[str, Any]:
        return {k: d.model_dump() if isinstance(d, SearchRange) else list(d) for k, d in self.space.items()}

    def configs(self) -> list[dict[str, Any]]:
        """The knob dicts every cell searches, in order (the same list for every arm)."""
        from ddray.tuning.space import search_configs

        return search_configs(self.space_dict(), self.algorithm, self.budget, self.seed)

    def ref(self, search_seed: int) -> dict[str, Any]:
        """What a tuned trial's key hashes: the space, the algorithm, the budget, the split — never the winner."""
        return {"space": self.space_dict(), "algorithm": self.algorithm, "budget": len(self.configs()),
                "seed": self.seed if self.algorithm == "random" else None,
                "val": {"fraction": self.val_fraction, "seed": self.val_seed}, "search_seed": search_seed}


class Spec(_Strict):
    """A dataset-distillation evaluation: methods × datasets × IPC × archs × seeds under one protocol."""

    name: str = Field(description="benchmark name (letters, digits, . _ -)")
    store: str | None = Field(None, description="where rows go: a local folder, file://, s3:// or gs:// URI (ddray run --store overrides)")
    datasets: dict[str, DatasetSpec] = Field(description="real datasets by name", min_length=1)
    methods: dict[str, MethodSpec] = Field(description="methods by name", min_length=1)
    ipc: list[int] = Field(description="images per class to evaluate", min_length=1)
    archs: list[str] = Field(description="student architectures (model registry names)", min_length=1)
    seeds: list[int] = Field([0, 1, 2], description="trial seeds (model init, data order, augmentation, random subsets)", min_length=1)
    protocol: str = Field("rd3", description=f"protocol preset: {', '.join(PRESETS)}")
    overrides: dict[str, Any] = Field(default_factory=dict, description="protocol knobs this study changes")
    arch_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict, description="protocol knobs per student arch, over `overrides`")
    teachers: TeacherSpec | list[TeacherSpec] | None = Field(None, description="teacher(s) for soft/hybrid labels and teacher-based methods; default: the first arch, trained by ddray")
    full: FullSpec = Field(default_factory=FullSpec, description="full-data arm recipe")
    arms: Literal["scores"] | list[ArmSpec] = Field("scores", description="'scores' = the arms LRS and ARS need, or an explicit list")
    scores: ScoreWeights = Field(default_factory=ScoreWeights, description="robust-score weights")
    resources: dict[str, Resources] = Field(default_factory=dict, description="per-arch resources, plus 'synth' and 'default' entries")
    runtime: Runtime = Field(default_factory=Runtime, description="execution knobs (never change numbers)")
    tuning: TuningSpec | None = Field(None, description="tuned-best track: per-cell search on a validation split, re-run on test (docs/tuning.md)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use letters, digits, '.', '_' and '-' only")
        if len(v) > MAX_NAME:
            raise ValueError(f"{len(v)} characters; at most {MAX_NAME}")
        return v

    @field_validator("store")
    @classmethod
    def _store(cls, v: str | None) -> str | None:
        from ddray.store.fs import local_path_problem

        problem = None if v is None else local_path_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("datasets", "methods")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _short_names(v)

    @field_validator("methods")
    @classmethod
    def _method_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Method names are table columns, `--only` values, CSV cells and folder names: a name of
        letters, digits, '.', '_' and '-' survives all of them, and an arm's name would put the
        arm's numbers under the method's name in the accuracy table."""
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"method name {name!r}: use letters, digits, '.', '_' and '-' only "
                                 "(not empty, no spaces, commas, slashes or control characters)")
            if name in RESERVED_METHOD_NAMES:
                raise ValueError(f"method name {name!r} is an arm's name ({', '.join(RESERVED_METHOD_NAMES)}); "
                                 "choose another")
        return v

    @field_validator("ipc")
    @classmethod
    def _ipc(cls, v: list[int]) -> list[int]:
        if any(i <= 0 for i in v):
            raise ValueError("every IPC must be > 0")
        if len(set(v)) != len(v):
            raise ValueError("duplicate IPC values")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        dup = sorted({s for s in v if v.count(s) > 1})
        if dup:
            raise ValueError(f"duplicate seeds: {dup}")
        return _seed_range(v)

    @field_validator("archs")
    @classmethod
    def _archs(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("duplicate archs")
        return v

    @property
    def teacher_list(self) -> list[TeacherSpec]:
        if self.teachers is None:
            return [TeacherSpec(arch=self.archs[0])]
        return self.teachers if isinstance(self.teachers, list) else [self.teachers]

    def student_protocol(self, arch: str) -> Protocol:
        """The spec's protocol for one student arch: preset ← overrides ← arch_overrides."""
        knobs = {**self.overrides, **self.arch_overrides.get(arch, {})}
        return resolve_protocol(self.protocol, knobs)

    def full_seed(self, seed: int) -> int:
        """The seed of the full-data arm a trial of `seed` uses: its own, else the first of `full.seeds`."""
        seeds = self.full.seeds
        return seed if seeds is None or seed in seeds else seeds[0]

    def pretrained_checkpoint(self, arch: str) -> str | None:
        """With `full.from_teacher`, the teacher checkpoint of student arch `arch` (None without one)."""
        return next((t.checkpoint for t in self.teacher_list if t.arch == arch and t.checkpoint), None)

    def full_protocol(self, dataset: str) -> Protocol:
        return full_recipe(self.dataset_loader(dataset), self.full.overrides)

    def dataset_loader(self, dataset: str) -> str:
        return self.datasets[dataset].loader or dataset

    def method_labels(self, method: str) -> str:
        # Read from the knobs, not a resolved protocol: labels must be known even when other knobs are bad.
        return self.methods[method].labels or self.overrides.get("labels") or PRESETS.get(self.protocol, {}).get("labels", "hard")


def smoke(spec: Spec) -> Spec:
    """A minutes-long scale-down of a spec that exercises every stage and arm (CI, first tries).

    Its keys differ from the real run's (epochs and budgets are in the keys), so use its own store.
    """
    methods = {}
    for name, m in spec.methods.items():
        params = m.model_dump(exclude_none=True)
        if "iterations" in params:
            params["iterations"] = min(int(params["iterations"]), 5)
        methods[name] = params
    data = spec.model_dump(by_alias=True, exclude_none=True)
    data.update(name=f"{spec.name}-smoke", methods=methods, seeds=spec.seeds[:1], ipc=spec.ipc[:1],
                overrides={**spec.overrides, "epochs": min(2, spec.student_protocol(spec.archs[0]).epochs)},
                full={"seeds": spec.seeds[:1], "overrides": {**spec.full.overrides, "epochs": 1}})
    return Spec.model_validate(data)


# ---------------------------------------------------------------------------- loading


def load_spec_text(path: str | Path) -> tuple[str, dict[str, Any]]:
    """Read and parse a spec file: (text, data). Strict YAML (`ddray.yaml_strict`): duplicate keys,
    tags, alias bombs, deep nesting, non-UTF-8 or oversized files are InputErrors naming the file."""
    from ddray.yaml_strict import read_yaml_file

    text, data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise InputError("a spec must be a YAML mapping (name: ..., datasets: ..., methods: ...)", path=str(path))
    return text, data


def _loc(parts: tuple[Any, ...]) -> str:
    # pydantic inserts union-branch names ("TeacherSpec", "list[TeacherSpec]"); users never wrote those.
    keep = [str(x) for x in parts if not (isinstance(x, str) and ("[" in x or x[:1].isupper() and x.endswith("Spec")))]
    return ".".join(keep) or "(spec)"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation: X, X | None, list[X], dict[str, X], X | list[X]."""
    todo = [annotation]
    while todo:
        a = todo.pop(0)
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
        todo += list(get_args(a))
    return None


def _fields_at(model: type[BaseModel], parts: tuple[Any, ...]) -> list[str]:
    """Field names valid where the last key of `parts` sits, for did-you-mean on unknown keys."""
    cur: type[BaseModel] | None = model
    for part in parts[:-1]:
        if cur is None:
            return []
        if part in cur.model_fields:  # list indices and dict keys keep the value's model
            cur = _nested_model(cur.model_fields[part].annotation)
    return [f.alias or n for n, f in cur.model_fields.items()] if cur else []


def validation_problems(err: ValidationError, model: type[BaseModel] = Spec, prefix: str = "") -> list[str]:
    """pydantic errors as `path.to.field: message` lines, with did-you-mean for unknown keys."""
    out = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(x for x in (prefix, _loc(loc)) if x)
        if e["type"] == "extra_forbidden":
            msg = f"unknown key '{loc[-1]}'{did_you_mean(loc[-1], _fields_at(model, loc))}"
        elif e["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{path}: {msg}")
    return sorted(set(out), key=out.index)


def parse_spec(data: dict[str, Any]) -> Spec:
    """Shape/type checks only (no file system, no registries)."""
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        raise InputError(validation_problems(e)) from None


def default_gpu_fraction(arch: str) -> float:
    """Per-arch default GPU fraction ('auto'): measured packing sweet spots, see docs/benchmarks.md."""
    family = arch.split(":")[-1]
    if family.startswith("convnet"):
        return 0.25
    if family.startswith("resnet18"):
        return 0.5
    return 1.0


def resources_for(spec: Spec, key: str) -> Resources:
    """Resources of a trial of arch/stage `key`: its entry, else 'default', else 1 CPU / auto GPU."""
    return spec.resources.get(key) or spec.resources.get("default") or Resources()

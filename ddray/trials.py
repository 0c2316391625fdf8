"""Typed trials: what one trial is, stage by stage — the one shape plan, run, store and status share.

A trial's key is the hash of its config's JSON (`ddray.keys.config_key` over
`model_dump(mode="json")`), so these models are a contract: the dump of a config must be the
same dict, key for key, that earlier versions hashed, or every stored row would be orphaned.
Two rules keep it so (tests/test_keys_golden.py proves them on every shipped spec):
- an optional field left unset (None) is *absent* from the dump, as it was absent from the dict;
- the protocol is the typed `Protocol` an arm trains with, dumped as the knob dict earlier
  versions stored: an un-augmented arm's dump has no `augment` entry at all (its numbers cannot
  depend on it), and knobs added later are absent at their defaults (`protocols.ADDED_LATER`).

Configs are frozen pydantic models (HELM's run specs are the model): a stage is a class, the
union is discriminated on `stage`, and code reads `config.arm`, never `cfg["arm"]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_serializer, model_validator

from ddray.keys import canonical_json, config_key, text_key
from ddray.protocols import LabelSetting, Protocol

STAGES = ("full", "synth", "search", "eval")
"""Stages in dependency order: full-data/teachers, synthesis, tuned-track search, evaluation."""

Stage = Literal["full", "synth", "search", "eval"]


class _Frozen(BaseModel):
    """Immutable, no unknown fields, and unset optionals left out of the dump (see the module doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        return self._trim({k: v for k, v in handler(self).items() if v is not None})

    def _trim(self, data: dict[str, Any]) -> dict[str, Any]:
        """What a model leaves out of its dump beyond unset optionals (nothing, unless it says)."""
        return data


class DatasetRef(_Frozen):
    """Which real data: the spec's dataset name, its loader and the options that change pixels.

    The root is where the data lives, not what it is: moving data must not change keys.
    """

    name: str
    loader: str
    options: dict[str, Any] = Field(default_factory=dict)


class MethodRef(_Frozen):
    """Which method made a distilled set: its spec name, registry kind and raw params."""

    name: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    files: str | None = None          # a `files` method: the path of the set of this (dataset, IPC)


class TeacherRef(_Frozen):
    """A teacher: trained by ddray (the key of its full-data trial) or loaded from a checkpoint."""

    arch: str
    key: str | None = None
    checkpoint: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TeacherRef:
        if (self.key is None) == (self.checkpoint is None):
            raise ValueError("a teacher has exactly one of key (trained by ddray) and checkpoint")
        return self

    @property
    def source(self) -> str:
        """What the row's `teacher` column names: the full-data key, or the checkpoint path."""
        return self.key or self.checkpoint or ""


LOCATION = "file"
"""What a key sees of a loaded teacher's or pretrained checkpoint's path: that it is a file."""


def key_dump(data: dict[str, Any]) -> dict[str, Any]:
    """A config's JSON dict as its key hashes it: where its external files are is left out.

    Why: a path is where an input lives, not what it is (like a dataset root, which never entered
    a key). The same set under another path, relative or absolute, with or without a trailing `/`,
    is the same trial; what the files *are* is recorded in the row (`inputs_json`, digests of their
    bytes) and checked against the files before a stored row is reused (`ddray.digests`).
    A config without such paths is returned as is, so its key is byte-identical to earlier ones.
    """
    out = dict(data)
    method = out.get("method")
    if isinstance(method, dict) and "files" in method:
        out["method"] = {k: v for k, v in method.items() if k != "files"}
    if out.get("checkpoint"):
        out["checkpoint"] = LOCATION
    teachers = out.get("teachers")
    if teachers:
        out["teachers"] = [{**t, "checkpoint": LOCATION} if t.get("checkpoint") else t for t in teachers]
    return out


def json_config_key(config_json: str) -> str:
    """The key of a stored config text (a row's `config_json`): what `_Config.key` gave for it."""
    data = json.loads(config_json)
    stripped = key_dump(data) if isinstance(data, dict) else data
    if stripped == data:  # no paths: hash the stored text itself, as every earlier version did
        return text_key(config_json)
    return config_key(stripped)


class ValSplit(_Frozen):
    """The held-out part of the real train split a search validates on."""

    fraction: float
    seed: int


class _Config(_Frozen):
    dataset: DatasetRef
    seed: int

    @property
    def key(self) -> str:
        """The content key: hash of the canonical JSON of this config, paths of external files left
        out (`key_dump`; DESIGN §1, a contract).

        Computed, never cached on the model: `model_copy(update=...)` would carry a stale one.
        """
        return config_key(key_dump(self.model_dump(mode="json")))

    @property
    def handler(self) -> str:
        """The name of the code path that runs this config (`run/stages.py: HANDLERS`)."""
        return self.stage  # type: ignore[attr-defined, no-any-return]


class Pretrained(_Frozen):
    """The protocol of a pretrained checkpoint's number: nothing is trained, only its source is named."""

    name: Literal["pretrained"] = "pretrained"


_PROTOCOLS: dict[str, Protocol] = {}
_PROTOCOLS_KEPT = 256


def _known_protocol(value: Any) -> Any:
    """A protocol dict as the (frozen, shared) `Protocol` it validated to before, else as given.

    Why: a store of 10,000 rows holds a handful of distinct protocols, and `ddray run` reads every
    row's config (`stored.conflicts`); validating each protocol's knobs again tripled that read.
    """
    if not isinstance(value, dict) or value.get("name") == Pretrained.model_fields["name"].default:
        return value
    text = canonical_json(value)
    known = _PROTOCOLS.get(text)
    if known is None:
        try:
            known = Protocol.model_validate(value)
        except ValidationError:
            return value  # validated again by the field, so the error names its place in the config
        if len(_PROTOCOLS) >= _PROTOCOLS_KEPT:
            _PROTOCOLS.clear()
        _PROTOCOLS[text] = known
    return known


class _Trained(_Config):
    """A config that trains a network under a resolved protocol, typed once when the config is made."""

    arch: str
    aug: bool
    protocol: Protocol

    _protocol_once = field_validator("protocol", mode="before")(_known_protocol)

    @property
    def recipe(self) -> Protocol:
        """The protocol the engine takes (kept as a name: handlers read `config.recipe`)."""
        return self.protocol

    @property
    def epochs(self) -> int:
        return self.protocol.epochs

    def protocol_dump(self) -> dict[str, Any]:
        """The protocol as this config's key hashes it (and rows store it, `protocol_json`)."""
        return self.model_dump(mode="json")["protocol"]  # type: ignore[no-any-return]


class FullConfig(_Trained):
    """Full-data arm: the student arch on the whole train split, hard labels (Acc(full, hard)); also a teacher.

    With `checkpoint`, nothing is trained: the pretrained weights of that arch are evaluated once
    on the test split (`full.from_teacher`), and `protocol` only names where the number came from.
    """

    stage: Literal["full"] = "full"
    arm: Literal["full"] = "full"
    labels: Literal["hard"] = "hard"
    checkpoint: str | None = None
    protocol: Protocol | Pretrained  # type: ignore[assignment]  # Pretrained: a checkpoint's number

    @property
    def recipe(self) -> Protocol:
        if isinstance(self.protocol, Pretrained):
            raise ValueError("a pretrained checkpoint's trial trains nothing: it has no recipe")
        return self.protocol

    @property
    def epochs(self) -> int:
        return 1 if isinstance(self.protocol, Pretrained) else self.protocol.epochs


class SynthConfig(_Config):
    """Synthesis of one (method, dataset, IPC, seed) distilled set."""

    stage: Literal["synth"] = "synth"
    method: MethodRef
    ipc: int
    teachers: tuple[TeacherRef, ...] | None = None


class EvalConfig(_Trained):
    """One evaluation: a student trained on a syn or rdm arm, tested on the real test split."""

    stage: Literal["eval"] = "eval"
    ipc: int
    arm: Literal["syn", "rdm"]
    labels: LabelSetting
    teachers: tuple[TeacherRef, ...] | None = None
    method: MethodRef | None = None     # syn arms: whose set
    synth: str | None = None            # syn arms of built-in methods: the synthesis trial's key
    track: Literal["tuned"] | None = None
    tuning: dict[str, Any] | None = None  # tuned re-runs: the search they pick a winner from

    @property
    def handler(self) -> str:
        return "tuned" if self.tuning is not None else "eval"

    def _trim(self, data: dict[str, Any]) -> dict[str, Any]:
        """An un-augmented arm's protocol is dumped without `augment`: its numbers cannot depend on it."""
        if not self.aug and isinstance(data.get("protocol"), dict):
            data["protocol"] = {k: v for k, v in data["protocol"].items() if k != "augment"}
        return data


class SearchConfig(EvalConfig):
    """A tuned-track search trial: one searched config of a cell, validated on a held-out split."""

    stage: Literal["search"] = "search"  # type: ignore[assignment]
    track: Literal["tuned"] = "tuned"    # type: ignore[assignment]
    split: Literal["val"] = "val"
    val: ValSplit
    knobs: dict[str, Any]

    @property
    def handler(self) -> str:
        return "search"


TrialConfig = Annotated[Union[FullConfig, SynthConfig, EvalConfig, SearchConfig], Field(discriminator="stage")]
_ADAPTER: TypeAdapter[TrialConfig] = TypeAdapter(TrialConfig)


def parse_config(data: dict[str, Any]) -> TrialConfig:
    """A config from its JSON dict (a row's `config_json`, a Tune payload)."""
    return _ADAPTER.validate_python(data)


def identity(config: BaseModel) -> tuple[Any, ...]:
    """What a trial is *of*, without how it is computed: stage, data, method, IPC, arch, arm, labels,
    augmentation, seed, track and protocol preset (and a search trial's knobs) — the coordinates a
    report cell sits at. ZCA whitening counts as its own preset: whitened pixels are another input
    space, so a zca study of the same cells is a study beside the plain one, as DD-Ranking's
    `use_zca` configs are beside its others (the report shows it as its own track).

    Two trials with one identity and different keys are the same measurement made two ways (e.g.
    epochs 3 and 100 under one preset): one store holds one of them (`benchmark.conflicts`).
    """
    method = getattr(config, "method", None)
    protocol = getattr(config, "protocol", None)
    return (getattr(config, "stage", None), config.dataset.name, method.name if method else None,  # type: ignore[attr-defined]
            getattr(config, "ipc", None), getattr(config, "arch", None), getattr(config, "arm", None),
            getattr(config, "labels", None), getattr(config, "aug", None), config.seed,  # type: ignore[attr-defined]
            getattr(config, "track", None), getattr(protocol, "name", None), config_key(getattr(config, "knobs", None)),
            bool(getattr(protocol, "zca", False)))


def comparison_cell(config: BaseModel) -> str | None:
    """Key of everything but arm, method and synthesis of an eval config; None for other stages."""
    if getattr(config, "stage", None) != "eval":
        return None
    data = key_dump(config.model_dump(mode="json"))
    return config_key({k: v for k, v in data.items() if k not in ("arm", "method", "synth")})


def identity_columns(config: BaseModel, key: str) -> dict[str, Any]:
    """A trial's stored-row columns that its config alone decides (`ROW_SCHEMA`'s identity and
    config columns): what the run writes into its row, and what a report reads for a trial that
    is planned but not stored yet (the coverage grid)."""
    method = getattr(config, "method", None)
    protocol = config.protocol_dump() if isinstance(config, _Trained) else None
    teachers = getattr(config, "teachers", None) or ()
    return {
        "key": key, "stage": config.stage, "track": getattr(config, "track", None) or "fixed",  # type: ignore[attr-defined]
        "cell": comparison_cell(config), "method": method.name if method else None,
        "dataset": config.dataset.name, "ipc": getattr(config, "ipc", None),  # type: ignore[attr-defined]
        "arch": getattr(config, "arch", None), "arm": getattr(config, "arm", None), "labels": getattr(config, "labels", None),
        "aug": getattr(config, "aug", None), "seed": config.seed,  # type: ignore[attr-defined]
        "protocol": protocol.get("name") if protocol else None,
        "protocol_json": canonical_json(protocol) if protocol else None,
        "teacher": ",".join(t.source for t in teachers) or None, "config_json": canonical_json(config),
    }


@dataclass(frozen=True)
class Trial:
    """One unit of work: a typed config (its key is the config's hash) plus what it needs to run."""

    config: TrialConfig
    deps: tuple[str, ...] = ()          # keys that must be stored first
    cpu: float = 1.0
    gpu: float | str = "auto"
    methods: tuple[str, ...] = ()       # methods whose scores use this trial (not in the key)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.config.key)

    @property
    def stage(self) -> str:
        return self.config.stage

    @property
    def label(self) -> str:
        """A readable name: method/dataset/ipcN/arch/arm/labels/aug/sS/track/knobs, what applies."""
        c = self.config
        method = getattr(c, "method", None)
        aug = getattr(c, "aug", None)
        knobs = getattr(c, "knobs", None)
        parts = [method.name if method else None, c.dataset.name,
                 f"ipc{c.ipc}" if getattr(c, "ipc", None) else None, getattr(c, "arch", None),
                 getattr(c, "arm", None), getattr(c, "labels", None),
                 None if aug is None else ("aug" if aug else "noaug"), f"s{c.seed}", getattr(c, "track", None),
                 ",".join(f"{k}={v}" for k, v in knobs.items()) if knobs else None]
        return "/".join(str(p) for p in parts if p is not None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what `ddray plan --json` prints and what a Ray worker receives."""
        return {"key": self.key, "stage": self.stage, "config": self.config.model_dump(mode="json"),
                "deps": list(self.deps), "cpu": self.cpu, "gpu": self.gpu, "methods": list(self.methods),
                "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        """The inverse of `to_dict`; the key is recomputed from the config, and must match."""
        trial = cls(config=parse_config(data["config"]), deps=tuple(data.get("deps", ())), cpu=float(data["cpu"]),
                    gpu=data["gpu"], methods=tuple(data.get("methods", ())))
        if "key" in data and data["key"] != trial.key:
            raise ValueError(f"trial {data['key']}: its config hashes to {trial.key}")
        return trial

"""The contract every method shares: what a synthesizer gets (`SynthContext`), what it returns
(`DistilledSet`), and how it is registered (`MethodEntry`).

A method is a pure function of its context: the same data, IPC, seed, params and teacher give the
same tensors. That is what lets the planner key a distilled set by its config and never make it
twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from ddray.errors import InputError
from ddray.plain_numbers import PlainNumbers

if TYPE_CHECKING:
    from ddray.data import DatasetMeta, RealData


@dataclass
class DistilledSet:
    """One (method, dataset, IPC) training set, normalized like the real data, class-major."""

    images: Tensor  # N×C×H×W
    labels: Tensor  # (N,) int64 hard labels, or (N, K) soft logits
    lr: float | None = None  # learning rate the method ships with its set (None: protocol's)
    synth_seconds: float | None = None  # wall clock of the synthesis alone (teacher excluded)
    device: str | None = None  # where it was synthesized, e.g. "cuda:0 (NVIDIA H100)" or "cpu"

    @property
    def soft(self) -> bool:
        return self.labels.ndim == 2

    def to(self, device: torch.device | str) -> DistilledSet:
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))


@dataclass
class SynthContext:
    """Everything a synthesizer may use; nothing else (no globals, no wall-clock seeds)."""

    data: RealData
    ipc: int
    seed: int
    params: BaseModel
    teacher: nn.Module | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


@dataclass(frozen=True)
class CheckContext:
    """What a spec tells about a method's data before anything runs (see `MethodParams.check`)."""

    meta: DatasetMeta
    ipcs: tuple[int, ...]
    teacher_arch: str | None  # the teacher a synthesis gets (the spec's first), if any


class MethodParams(PlainNumbers):
    """Base of every built-in method's params: unknown keys are errors, every field described."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def check(self, ctx: CheckContext) -> list[tuple[str, str]]:
        """Problems of these params with this data, as (param, message); '' names the method.

        Spec validation calls it for every dataset, so a mismatch (a patch factor that does not
        divide the image side, a teacher without BatchNorm) is reported before any compute.
        """
        return []


class NetParams(MethodParams):
    """Params of methods that look through a network (a random feature net or the teacher)."""

    arch: str = Field("convnet-d3", description="architecture of the randomly initialized feature network")

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        try:
            from ddray.models import validate_arch
        except ImportError:  # models package not importable: leave the check to build time
            return v
        try:
            validate_arch(v)
        except InputError as e:  # pydantic only turns ValueError into a field error
            raise ValueError(str(e)) from None
        return v

    def check(self, ctx: CheckContext) -> list[tuple[str, str]]:
        """The network must fit the images (a ConvNet-D4 cannot run on 8×8 digits)."""
        from ddray.models import validate_arch

        try:
            validate_arch(self.arch, image_size=ctx.meta.image_shape[1])
        except InputError as e:
            return [("arch", str(e))]
        return []


class PluginParams(BaseModel):
    """Plugins take free-form params; they are passed through untouched (`ctx.params.model_extra`)."""

    model_config = ConfigDict(extra="allow", frozen=True)


@dataclass(frozen=True)
class MethodEntry:
    """One registered method, as `ddray methods` lists it and the planner resolves it."""

    name: str
    params_model: type[BaseModel]
    needs_teacher: bool
    synthesize: Callable[[SynthContext], DistilledSet]
    description: str = ""
    # Methods that *may* use a teacher (herding/kcenter with `features: teacher`) say, per params,
    # whether the planner must train one; `needs_teacher` stays the params-free answer.
    teacher_if: Callable[[BaseModel], bool] | None = None
    # False for loaders of sets made elsewhere: their load time is no time-to-synthesize.
    timed: bool = True
    # Methods that look through the *trained* weights of an arch (herding/kcenter with
    # `features: trained`) name that arch, per params: the planner then makes its full-data arm
    # (stored once, shared with Acc(full)) a dependency and hands its weights in as the teacher.
    trained_arch: Callable[[BaseModel], str | None] | None = None

    def requires_trained(self, params: BaseModel | None = None) -> str | None:
        """The arch whose full-data weights this method needs with these params, or None."""
        return self.trained_arch(params) if self.trained_arch and params is not None else None

    def requires_teacher(self, params: BaseModel | None = None) -> bool:
        """Whether a teacher must be trained for this method with these params."""
        if self.needs_teacher:
            return True
        return bool(self.teacher_if and params is not None and self.teacher_if(params))

    def params(self, raw: dict | None = None) -> BaseModel:
        """Validated params from a spec's `methods.<name>: {...}` mapping (pydantic errors raise)."""
        return self.params_model.model_validate(raw or {})

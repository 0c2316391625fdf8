"""The post-evaluation loop: train a fresh student on a training set, report its test accuracy.

One call is one trial's training. The training set is one tensor on the device; every epoch draws a
permutation from a seeded CPU generator and batches are index slices of it (no DataLoader, no
per-sample Python). Real images arrive as stored pixels (uint8) and each batch is normalized on the
device (`PixelSpec`); a train split too large to be resident is a `Split` read batch by batch in
the same seeded order, one batch ahead on a thread — the same numbers either way. Augmentation parameters come from a second seeded generator, model init from
`torch.manual_seed(seed)`, so the same call on the same machine gives the same numbers, and a
run resumed from a checkpoint continues bit-exactly (the generators' states are in the checkpoint).

Label settings (the arm's `labels`, which may differ from the protocol's own):
- hard: cross-entropy on class ids (CutMix/Mixup mix the targets). (N, K) logits are reduced to
  their argmax class.
- soft / hybrid with teachers: the teacher(s) label the *same* augmented batch every step;
  the protocol's loss (kl, sce, mse_gt; `ce` means sce) compares student and teacher logits.
- soft / hybrid without a teacher: the set's fixed (N, K) logits are the targets (mixed like
  hard labels under CutMix/Mixup).
"""

from __future__ import annotations

import math
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from ddray.data import PixelSpec, RealData, Split
from ddray.data.prefetch import prefetch
from ddray.errors import InputError
from ddray.models import build_model
from ddray.protocols import Protocol

from .augment import AugmentFn, AugOut, build_augment
from .checkpoint import Checkpointer, to_cpu
from .device import keep_freed_memory
from .evaluate import EvalScores, autocast, evaluate, resize_center_crop
from .labels import prepare_teachers, teacher_logits
from .losses import ce, mixed, soft_loss
from .schedules import lr_factor, step_index
from .validate import validate_training_set
from .weights import strip_wrappers

EpochCallback = Callable[[int, dict[str, Any]], None]
_AUG_SEED_OFFSET = 0x5EED  # the augmentation generator's seed is seed + this: order and augment differ


@dataclass
class TrainResult:
    """What one training call produced. Accuracies are fractions in [0, 1]; None when diverged.

    With `checkpoint: best` the accuracies are those of the best test evaluation (`best_epoch`);
    `model` is always the network at the end of training (its EMA when the protocol has one).
    """

    top1: float | None
    top5: float | None
    loss: float | None  # mean training loss of the last epoch run
    epochs_run: int
    status: str  # "ok" | "diverged"
    lr: float
    model: nn.Module | None = field(default=None, repr=False)
    test_loss: float | None = None
    best_epoch: int | None = None  # epoch whose test accuracy is reported
    val_top1: float | None = None  # validation accuracy of the chosen lr (lr search only)
    search: dict[float, float | None] | None = None  # lr -> validation top-1 (None: diverged)


def make_optimizer(name: str, params: Any, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer '{name}'")


class _Targets:
    """Turns a batch (indices, augmented images) into the loss, for one label setting."""

    def __init__(self, y: Tensor, labels: str, protocol: Protocol, teachers: Sequence[nn.Module]):
        self.teachers = list(teachers)
        self.hybrid = labels == "hybrid"
        if labels == "hard":
            self.mode = "hard"
            self.y = y.argmax(dim=1) if y.dim() == 2 else y
            return
        self.loss = soft_loss(protocol.loss, temperature=protocol.temperature, kl_t2=protocol.kl_t2,
                              mse_gamma=protocol.mse_gamma, mse_weight=protocol.mse_weight)
        if self.teachers:
            self.mode = "teacher"
            self.y = y  # class ids (the mse_gt CE term uses them) or fixed logits (unused)
        elif y.dim() == 2:
            self.mode = "fixed"
            self.y = y.float()
        else:
            raise InputError(f"labels '{labels}' need a teacher or (N, K) soft labels; got class ids and no teacher",
                             "labels")

    def __call__(self, s: Tensor, idx: Tensor, out: AugOut, t: Tensor | None) -> Tensor:
        yb = self.y[idx]
        if self.mode == "hard":
            return mixed(lambda yy: ce(s, yy), out.perm, out.lam, yb)
        if self.mode == "teacher":
            assert t is not None
            hard = yb if yb.dim() == 1 else None
            if hard is not None and out.mixed:  # only mse_gt reads it; mix its CE term like hard labels
                return mixed(lambda hh: self.loss(s, t, hh), out.perm, out.lam, hard)
            return self.loss(s, t, hard)
        return mixed(lambda tt: self.loss(s, tt, None), out.perm, out.lam, yb)

    def teacher_batch(self, xa: Tensor) -> Tensor | None:
        return teacher_logits(self.teachers, xa, self.hybrid) if self.mode == "teacher" else None


class _Run:
    """One training run at one learning rate; its whole state fits in `state_dict()`."""

    def __init__(self, x: Tensor | Split, y: Tensor, data: RealData, arch: str, protocol: Protocol, *,
                 targets: _Targets, augment: AugmentFn | None, seed: int, device: torch.device, lr: float,
                 test: tuple[Tensor | Split, Tensor | None], prep: PixelSpec | None, batch: int):
        self.test_set, self.real_pixels, self.prep = test, data.pixels, prep
        self.x, self.p = x, protocol
        self.n = len(x) if isinstance(x, Split) else int(x.shape[0])
        self.targets, self.augment, self.device, self.lr0 = targets, augment, device, lr
        self.cuda = device.type == "cuda"
        self.channels_last = protocol.channels_last and self.cuda
        torch.manual_seed(seed)
        c, h, _ = data.image_shape
        self.model = build_model(arch, c, data.num_classes, h).to(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = weight_ema(self.model, protocol.ema) if protocol.ema else None
        # The compiled forward shares the model's parameters; evaluation and checkpoints use the module.
        self.forward = compiled(self.model) if protocol.compile else self.model
        self.order_gen = torch.Generator().manual_seed(seed)
        self.aug_gen = torch.Generator().manual_seed(seed + _AUG_SEED_OFFSET)
        self.batch = min(batch, self.n)
        self.test_view = resize_center_crop(protocol.test_resize) if protocol.test_resize else None
        self.zeta = protocol.zeta_for(arch)
        self.opt_step = 0
        self.opt = self._new_optimizer()
        self.epoch = 0
        self.best: dict[str, Any] | None = None  # {"epoch", "top1", "top5", "loss"}
        self.last_loss: float | None = None

    def _new_optimizer(self) -> torch.optim.Optimizer:
        p = self.p
        return make_optimizer(p.optimizer, self.model.parameters(), self.lr0, p.momentum, p.weight_decay)

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = {
            "epoch": self.epoch, "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "opt_step": self.opt_step, "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "order_gen": self.order_gen.get_state(), "aug_gen": self.aug_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.cuda else None,
            "best": self.best, "last_loss": self.last_loss, "lr0": self.lr0,
        }
        return to_cpu(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # strip_wrappers: checkpoints of timm students made before they were unwrapped say `net.`
        self.model.load_state_dict(strip_wrappers(state["model"], self.model))
        self.opt_step = int(state["opt_step"])
        self.opt = self._new_optimizer()
        self.opt.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.module.load_state_dict(strip_wrappers(state["ema"], self.ema.module))
        self.order_gen.set_state(state["order_gen"])
        self.aug_gen.set_state(state["aug_gen"])
        torch.set_rng_state(state["torch_rng"])
        if self.cuda and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.epoch = int(state["epoch"])
        self.best = state["best"]
        self.last_loss = state["last_loss"]

    # ------------------------------------------------------------ training
    def set_epoch_lr(self, epoch: int) -> float:
        p = self.p
        if p.fresh_optimizer_at_step and p.schedule == "step":
            k = step_index(epoch, p.epochs, p.step_at)
            if k != self.opt_step:  # DC's evaluation: a new optimizer (no momentum) at each step
                self.opt_step = k
                self.opt = self._new_optimizer()
        lr = self.lr0 * lr_factor(p.schedule, epoch, p.epochs, zeta=self.zeta, step_at=p.step_at,
                                  step_gamma=p.step_gamma)
        for g in self.opt.param_groups:
            g["lr"] = lr
        return lr

    def _batches(self, order: Tensor, perm: Tensor, steps: int) -> Iterator[Tensor]:
        """The epoch's training batches in `perm` order, normalized on the device."""
        b = self.batch
        if isinstance(self.x, Split):
            split, device = self.x, self.device

            def read(part: Tensor) -> Tensor:
                return split.take(part).to(device, non_blocking=True)

            raw: Iterable[Tensor] = prefetch(functools.partial(read, order[i * b:(i + 1) * b]) for i in range(steps))
        else:
            raw = (self.x[perm[i * b:(i + 1) * b]] for i in range(steps))
        for xb in raw:
            yield self.prep(xb) if self.prep is not None else xb

    def train_epoch(self) -> float:
        """One epoch; returns the mean loss (one host sync per epoch, not per step)."""
        n, b = self.n, self.batch
        order = torch.randperm(n, generator=self.order_gen)
        perm = order.to(self.device)
        self.model.train()
        total = torch.zeros((), device=self.device, dtype=torch.float32)
        steps = math.ceil(n / b)
        for i, xb in enumerate(self._batches(order, perm, steps)):
            idx = perm[i * b:(i + 1) * b]
            out = self.augment(xb, self.aug_gen) if self.augment is not None else AugOut(xb)
            xa = out.x.contiguous(memory_format=torch.channels_last) if self.channels_last else out.x
            with autocast(self.device, self.p.amp):
                t = self.targets.teacher_batch(xa)
                s = self.forward(xa)
            loss = self.targets(s, idx, out, t)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.ema is not None:
                self.ema.update(self.model)
            total += loss.detach().float()
        return float(total.item()) / steps

    def test(self, x: Tensor | Split, y: Tensor | None, view: bool = False) -> EvalScores:
        """Scores on real pixels: the test split (`view`: through the protocol's test_resize), or
        the validation part of the train split (never resized: it is train data)."""
        return evaluate(self.eval_model, x, y, self.device, pixels=self.real_pixels, amp=self.p.amp,
                        channels_last=self.channels_last, view=self.test_view if view else None)


def padding_fill(data: RealData) -> tuple[float, ...]:
    """Black in the training batches' space: what a pixel padded with 0 before Normalize becomes."""
    px = data.pixels
    return tuple(-m / s for m, s in zip(px.mean, px.std))


def weight_ema(model: nn.Module, decay: float) -> Any:
    """timm's ModelEmaV3 of `model`'s weights; `.update(model)` after each step, `.module` evaluates.

    Every step ema ← lerp(ema, weights, 1 − decay); buffers (BatchNorm statistics) are copied, not
    averaged (`exclude_buffers`), so the EMA net normalizes like the net it follows. No warmup and
    a fixed decay: what ddray computed by hand before, to the bit (tests/test_engine_units.py).
    """
    from timm.utils.model_ema import ModelEmaV3  # lazily: only protocols with an EMA pay timm's import

    return ModelEmaV3(model, decay=decay, exclude_buffers=True)


def compiled(model: nn.Module) -> nn.Module:
    """torch.compile with a fallback to eager when inductor cannot build here (no C++ compiler).

    Why: on CPU the DC ConvNet spends ~45% of a step in memory-bound norm/ReLU/pool passes that
    inductor fuses; a trial of 1000 steps pays the ~20 s compile back many times over.
    """
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    return cast(nn.Module, torch.compile(model))


def _evaluate_now(p: Protocol, epoch: int) -> bool:
    """`best` evaluates every eval_every epochs and at the last epoch; `last` only at the end."""
    if epoch == p.epochs:
        return True
    return p.checkpoint == "best" and p.eval_every is not None and epoch % p.eval_every == 0


def _run_to_end(run: _Run, *, checkpointer: Checkpointer | None, on_epoch: EpochCallback | None,
                save: Callable[[dict[str, Any]], None]) -> str:
    """Train from `run.epoch` to the protocol's last epoch; returns "ok" or "diverged"."""
    p = run.p
    while run.epoch < p.epochs:
        lr = run.set_epoch_lr(run.epoch)
        loss = run.train_epoch()
        run.epoch += 1
        run.last_loss = loss
        if not math.isfinite(loss):
            return "diverged"
        metrics: dict[str, Any] = {"loss": loss, "lr": lr, "lr0": run.lr0}
        if _evaluate_now(p, run.epoch):
            sc = run.test(*run.test_set, view=True)
            metrics.update(top1=sc.top1, top5=sc.top5, test_loss=sc.loss)
            is_last = run.epoch == p.epochs
            if p.checkpoint == "last" and is_last or (
                p.checkpoint == "best" and (run.best is None or sc.top1 > run.best["top1"])
            ):
                run.best = {"epoch": run.epoch, "top1": sc.top1, "top5": sc.top5, "loss": sc.loss}
        if on_epoch is not None:
            on_epoch(run.epoch, metrics)
        if checkpointer is not None and run.epoch % max(1, checkpointer.every) == 0 and run.epoch < p.epochs:
            save(run.state_dict())
    return "ok"


def _learning_rates(protocol: Protocol, lr: float | Sequence[float] | None) -> list[float]:
    chosen = protocol.lr if lr is None else lr
    values = [float(chosen)] if isinstance(chosen, (int, float)) else [float(v) for v in chosen]
    if not values:
        raise InputError("the learning-rate list is empty", "lr")
    return values


def train_student(
    x: Tensor | Split, y: Tensor, data: RealData, arch: str, protocol: Protocol, *,
    labels: str, aug: bool, seed: int, teachers: Sequence[nn.Module] = (), device: torch.device | str,
    lr: float | Sequence[float] | None = None, checkpointer: Checkpointer | None = None,
    on_epoch: EpochCallback | None = None, val: tuple[Tensor, Tensor] | None = None,
    pixels: PixelSpec | None = None, arm: str = "syn",
) -> TrainResult:
    """Train `arch` from scratch on (x, y) under `protocol`, evaluate on `data`'s test split.

    `x` is a normalized float32 set (a distilled set), or real stored pixels normalized per batch
    on the device by `pixels` — by default `data.pixels` when `x` is uint8 or a `Split` (a train
    split streamed batch by batch). `val` holds real stored pixels (`validation_split`).

    `lr` (e.g. a distilled set's own lr) replaces `protocol.lr`. Several learning rates mean a
    search: each one trains on (x, y), the one with the best top-1 on `val` (a held-out part of the
    real train split) is chosen, and its test accuracy is reported. A NaN/inf epoch loss stops the
    run with status "diverged" and no accuracy. `checkpointer` makes the run resumable.
    Teachers are moved to `device`, frozen and put in eval mode (in place: they are shared).
    """
    device = torch.device(device)
    if labels not in ("hard", "soft", "hybrid"):
        raise InputError(f"unknown label setting '{labels}'; known: hard, hybrid, soft", "labels")
    lrs = _learning_rates(protocol, lr)
    if len(lrs) > 1 and val is None:
        raise InputError("an lr search needs a validation split (val) of the real train split", "lr")
    streamed = isinstance(x, Split)
    shape_only = torch.empty((len(x), *x.shape), dtype=x.dtype, device="meta") if streamed else x
    validate_training_set(shape_only, y, data, "training set")  # type: ignore[arg-type]
    if pixels is None and (streamed or not x.is_floating_point()):  # type: ignore[union-attr]
        pixels = data.pixels
    if device.type == "cpu":
        keep_freed_memory()
    x, y = (x if streamed else x.to(device)), y.to(device)  # type: ignore[union-attr]
    frozen = prepare_teachers(teachers, device) if labels != "hard" else []
    if protocol.compile:  # the teacher's no-grad forward fuses like the student's (shared modules stay untouched)
        frozen = [compiled(t) for t in frozen]
    targets = _Targets(y, labels, protocol, frozen)
    augment = None
    if aug and protocol.augment.active:
        fill = padding_fill(data) if protocol.augment.random_crop_padding else None
        augment = build_augment(protocol.augment, fill=fill)
    test = evaluation_set(data.test, device)
    val = None if val is None else (_maybe_on_device(val[0], device), _maybe_on_device(val[1], device))

    def new_run(lr0: float) -> _Run:
        return _Run(x, y, data, arch, protocol, targets=targets, augment=augment, seed=seed, device=device,
                    lr=lr0, test=test, prep=pixels, batch=protocol.batch_for(arm))

    return _train_candidates(new_run, lrs, val, checkpointer, on_epoch, data=data, arch=arch, device=device)


def _train_candidates(new_run: Callable[[float], _Run], lrs: list[float], val: tuple[Tensor, Tensor] | None,
                      checkpointer: Checkpointer | None, on_epoch: EpochCallback | None, *,
                      data: RealData, arch: str, device: torch.device) -> TrainResult:
    """Train each learning-rate candidate to its end in turn; the result of the chosen one.

    One lr is a search of one candidate. Why the checkpoint holds more than the running
    candidate: the records of finished candidates and the weights of the best so far are saved
    between candidates, so a restarted trial skips what it finished and can still report a
    choice made before the restart (its module is rebuilt from those weights).
    """
    search = len(lrs) > 1
    state = checkpointer.load() if checkpointer is not None else None
    done: list[dict[str, Any]] = list(state["done"]) if state else []  # finished lr candidates
    best_weights: dict[str, Any] | None = state["best_weights"] if state else None
    resume: dict[str, Any] | None = state["run"] if state else None
    best_i, best_module = _pick(done), None

    def save(run_state: dict[str, Any] | None) -> None:
        if checkpointer is not None:
            checkpointer.save({"done": done, "run": run_state, "best_weights": best_weights})

    for i in range(len(done), len(lrs)):
        run = new_run(lrs[i])
        if resume is not None:
            run.load_state_dict(resume)
            resume = None
        status = _run_to_end(run, checkpointer=checkpointer, on_epoch=on_epoch, save=save)
        val_top1 = run.test(*val).top1 if status == "ok" and search and val is not None else None
        done.append({"lr": lrs[i], "status": status, "epochs_run": run.epoch, "loss": run.last_loss,
                     "best": run.best if status == "ok" else None, "val_top1": val_top1})
        if _pick(done) == i:
            best_i, best_module = i, run.eval_model
            if checkpointer is not None and i + 1 < len(lrs):
                best_weights = to_cpu(run.eval_model.state_dict())
        if i + 1 < len(lrs):
            save(None)
    return _result(done, best_i, best_module, best_weights, search, data, arch, device)


def _maybe_on_device(t: Tensor, device: torch.device, limit_bytes: int = 2 << 30) -> Tensor:
    """Evaluation data goes to the device once when it is small (repeated `best` evaluations)."""
    return t.to(device) if t.numel() * t.element_size() <= limit_bytes else t


def evaluation_set(split: Split, device: torch.device) -> tuple[Tensor | Split, Tensor | None]:
    """The test split as evaluations read it: its stored pixels as one tensor (zero-copy from the node
    cache on the CPU, moved once to a GPU when small), or the split itself, read in chunks, when
    it can only be streamed."""
    x = split.resident()
    if x is None:
        return split, None
    return _maybe_on_device(x, device), _maybe_on_device(split.labels, device)


def _pick(done: list[dict[str, Any]]) -> int | None:
    """Index of the chosen candidate: the first that trained, or the best validation top-1 (first on ties)."""
    best: int | None = None
    for i, r in enumerate(done):
        if r["status"] != "ok":
            continue
        if best is None or (r["val_top1"] or 0.0) > (done[best]["val_top1"] or 0.0):
            best = i
    return best


def _result(done: list[dict[str, Any]], best_i: int | None, best_module: nn.Module | None,
            best_weights: dict[str, Any] | None, search: bool, data: RealData, arch: str,
            device: torch.device) -> TrainResult:
    """The chosen run's result; a choice made before a restart is rebuilt from its saved weights."""
    scores = {r["lr"]: r["val_top1"] for r in done} if search else None
    if best_i is None:
        last = done[-1]
        loss = last["loss"] if last["loss"] is not None and math.isfinite(last["loss"]) else None
        return TrainResult(None, None, loss, last["epochs_run"], "diverged", last["lr"], None, search=scores)
    rec, model = done[best_i], best_module
    if model is None and best_weights is not None:
        c, h, _ = data.image_shape
        model = build_model(arch, c, data.num_classes, h).to(device)
        model.load_state_dict(best_weights)
    best = rec["best"]
    return TrainResult(best["top1"], best["top5"], rec["loss"], rec["epochs_run"], "ok", rec["lr"], model,
                       test_loss=best["loss"], best_epoch=best["epoch"], val_top1=rec["val_top1"], search=scores)

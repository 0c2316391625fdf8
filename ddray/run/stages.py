"""The fixed-track stage handlers: full-data arm (and teacher), synthesis, evaluation.

Each is `TrialRun -> Outcome` and calls the engine's and the methods' tested functions
(`train_teacher`, `rdm_arm`, `validation_split`, `synthesize`): the runner has no training or
sampling code of its own.
"""

from __future__ import annotations

import io

import torch
from torch import Tensor

from ddray.data import RealData
from ddray.data.zca import Whitening
from ddray.errors import InputError
from ddray.digests import bytes_digest
from ddray.engine import evaluate, load_teacher, rdm_arm, save_teacher, train_student, train_teacher, validation_split
from ddray.run.outcome import Outcome
from ddray.run.trial_run import TrialRun
from ddray.trials import EvalConfig, FullConfig, SynthConfig


def run_full(run: TrialRun) -> Outcome:
    """Acc(full, hard) of (dataset, arch, seed); its weights are stored as the teacher of that key.

    A pretrained checkpoint (`full.from_teacher`) is evaluated instead of training (epochs_run 0).
    """
    cfg = run.config_as(FullConfig)
    if cfg.checkpoint is not None:
        net = load_teacher(cfg.checkpoint, cfg.arch, run.data).to(run.device)
        sc = evaluate(net, run.data.test, None, run.device, pixels=run.data.pixels)
        return Outcome(top1=sc.top1, top5=sc.top5, loss=sc.loss, epochs_run=0)
    recipe = cfg.recipe
    res = train_teacher(run.data, cfg.arch, recipe, cfg.seed, run.device,
                        checkpointer=run.checkpointer(recipe.epochs), on_epoch=run.on_epoch)
    buf = io.BytesIO()
    save_teacher(res.model, buf)  # type: ignore[arg-type]
    run.store.put_artifact("teachers", run.key, "weights.pt", buf.getvalue())
    run.store.put_artifact("teachers", run.key, "weights.digest", bytes_digest(buf.getvalue()).encode())
    return Outcome.of_training(res)


def run_synth(run: TrialRun) -> Outcome:
    """One distilled set, stored as artifacts; its time-to-synthesize excludes the teacher's training."""
    from ddray.methods import SynthContext, get_method, save_distilled, synthesize

    cfg = run.config_as(SynthConfig)
    entry = get_method(cfg.method.kind)
    teachers = run.teachers()
    ctx = SynthContext(data=run.data, ipc=cfg.ipc, seed=cfg.seed, params=entry.params(cfg.method.params),
                       teacher=teachers[0] if teachers else None, device=run.device)
    ds = synthesize(entry, ctx)
    save_distilled(ds, run.store.loc.fs, run.store.artifact_dir("distilled", run.key))
    return Outcome(synth_s=ds.synth_seconds, synth_device=ds.device)


def set_soft_labels(x, y, teachers, pixels, labels: str, device, arm: str) -> torch.Tensor:
    """`soft_labels: set` (DD-Ranking's mode S): a distilled set's stored (N, K) logits are its
    targets; the rdm arm's class ids become the teacher(s)' logits of its images, computed once."""
    from ddray.engine.labels import label_once

    if y.ndim == 2:
        return y
    if arm == "syn" or not teachers:
        raise InputError("soft_labels: set needs a distilled set with (N, K) soft labels (labels.pt), and a teacher "
                         "for the rdm arm; this one has class ids" + ("" if arm == "syn" else " and no teacher"),
                         path="soft_labels")
    return label_once(teachers, x, pixels, labels == "hybrid", torch.device(device))


def run_eval(run: TrialRun) -> Outcome:
    """A student trained on the syn or rdm arm under the arm's protocol, tested on the real test split."""
    cfg = run.config_as(EvalConfig)
    protocol = cfg.recipe
    extra: dict[str, object] = {}
    lr = None  # the protocol's
    pixels = None  # a distilled set is normalized already
    if cfg.arm == "syn":
        ds = run.distilled_set()
        x, y = ds.images, ds.labels
        if cfg.method is not None and cfg.method.kind == "files":
            # A user's set carries an lr only when read with `lr: set`, a param in this trial's key.
            # (A plugin's returned lr is not used: nothing in its keys would say so.)
            lr = ds.lr
        x = in_zca_space(x, cfg, run.data)
        if y.ndim == 2 and cfg.labels == "hard":
            y = y.argmax(dim=1)  # a soft-label set evaluated under hard labels: its argmax classes
        extra = {"synth_s": ds.synth_seconds, "synth_device": ds.device}  # None for a user's files
    else:  # rdm: class-balanced random real subset drawn from the trial seed
        x, y = rdm_arm(run.data, cfg.ipc, cfg.seed)  # stored pixels of just those images
        pixels = run.data.pixels
    teachers = run.teachers()
    if protocol.soft_labels == "set" and cfg.labels != "hard":
        y, teachers = set_soft_labels(x, y, teachers, pixels, cfg.labels, run.device, cfg.arm), []
    val = validation_split(run.data, protocol.val_fraction, cfg.seed)[1] if isinstance(protocol.lr, tuple) else None
    res = train_student(x.to(run.device), y.to(run.device), run.data, cfg.arch, protocol, labels=cfg.labels,
                        aug=cfg.aug, seed=cfg.seed, teachers=teachers, device=run.device, lr=lr,
                        checkpointer=run.checkpointer(protocol.epochs), on_epoch=run.on_epoch, val=val,
                        pixels=pixels, arm=cfg.arm)
    return Outcome.of_training(res, **extra)


def in_zca_space(x: Tensor, cfg: EvalConfig, data: RealData) -> Tensor:
    """A syn arm's set as a ZCA protocol sees it, in the whitened space of its real data.

    A user's set is read in that space already (`load_files`): tensors with `normalized: true`
    are taken to be whitened (MTT and DATM release their CIFAR sets so, and DD-Ranking evaluates
    them so), [0, 1] pixels are whitened as they are read. A set ddray synthesized is normalized,
    so it goes back to pixels and is whitened. Without ZCA the set is returned as it is.
    """
    white = data.pixels
    if not isinstance(white, Whitening) or (cfg.method is not None and cfg.method.kind == "files"):
        return x
    return white.from_normalized(x)

"""Soft and hybrid labels on the real training loop: what the teacher sees, how it runs, what it teaches.

DD-Ranking's claim rests on these properties, so each is checked on `train_student` itself with
real (tiny) modules, recorded by forward hooks, never with stand-ins for torch:
- the teacher labels exactly the augmented (and CutMix-mixed) batch the student trains on, every step,
  and the step's loss is the protocol's loss between the two recorded outputs;
- the teacher runs in eval mode (BatchNorm on its running statistics, which stay untouched) and
  without gradients;
- KL is 0 when student = teacher, for several τ, with and without τ², and positive otherwise;
  `sce` and `mse_gt` have their minimum there too;
- hybrid labels rescale each teacher's batch logits to the mean Frobenius norm, then average.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from ddray.data import RealData, build_real_data
from ddray.engine import train_student
from ddray.engine.labels import teacher_logits
from ddray.engine.losses import kl, mse_gt, sce, soft_loss
from ddray.models import build_model
from ddray.models.convnet import ConvNet
from ddray.protocols import Protocol, resolve_protocol

CPU = torch.device("cpu")
K = 4  # classes
N = 8  # training images
STUDENT = "convnet-d2-w8"  # instance norm: the same function in train and eval mode
BN_TEACHER = "convnet-d2-bn-w8"
EPOCHS = 3
BATCH = 4  # two steps per epoch


@pytest.fixture(scope="module")
def data() -> RealData:
    """A 4-class 1×8×8 dataset of noise: enough to run the loop, nothing to learn from."""
    g = torch.Generator().manual_seed(0)
    return build_real_data("noise", torch.randn(40, 1, 8, 8, generator=g), torch.arange(40) % K,
                           torch.randn(12, 1, 8, 8, generator=g), torch.arange(12) % K,
                           [f"c{i}" for i in range(K)], (0.0,), (1.0,), normalized=True)


def _first(data: RealData) -> tuple[Tensor, Tensor]:
    """The first N training images (normalized) and their labels."""
    return data.train_images(torch.arange(N)), data.train.labels[:N]


def _net(arch: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(arch, 1, K, 8)


def _protocol(**knobs: object) -> Protocol:
    """rd3 (soft labels, KL, RandomResizedCrop + flip + CutMix) at unit-test size."""
    return resolve_protocol("rd3", {"epochs": EPOCHS, "batch_size": BATCH, **knobs})


# ---------------------------------------------------------------- recording forwards
@dataclass
class Call:
    """One top-level network forward: who ran, in which mode, on what, giving what."""

    role: str  # "student" or "teacher<i>"
    training: list[bool]  # `training` of the module and of every submodule, at call time
    grad: bool  # torch.is_grad_enabled() inside the forward
    inference: bool  # torch.is_inference_mode_enabled() inside the forward
    input: Tensor
    output: Tensor


@contextmanager
def record_forwards(teachers: Sequence[nn.Module]) -> Iterator[list[Call]]:
    """Every ConvNet forward inside the block, through a global forward hook.

    Global, because the student is built inside `train_student`; a ConvNet that is not one of
    `teachers` is the student. Its submodules (and the test evaluation's forwards, in eval mode)
    are told apart by the fields of each `Call`.
    """
    calls: list[Call] = []

    def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        if not isinstance(module, ConvNet):
            return
        role = next((f"teacher{i}" for i, t in enumerate(teachers) if module is t), "student")
        calls.append(Call(role, [m.training for m in module.modules()], torch.is_grad_enabled(),
                          torch.is_inference_mode_enabled(), args[0].detach().clone(), output.detach().clone()))

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def _student_steps(calls: list[Call]) -> list[Call]:
    """The student's training forwards (the test evaluation runs it in eval mode)."""
    return [c for c in calls if c.role == "student" and c.training[0]]


def _role(calls: list[Call], role: str) -> list[Call]:
    return [c for c in calls if c.role == role]


def _train(data: RealData, protocol: Protocol, teachers: Sequence[nn.Module], labels: str = "soft",
           seed: int = 0) -> tuple[list[Call], list[float], nn.Module]:
    """Train the student on the first N images; returns the recorded forwards, epoch losses, student."""
    losses: list[float] = []
    with record_forwards(teachers) as calls:
        r = train_student(*_first(data), data, STUDENT, protocol, labels=labels, aug=True,
                          seed=seed, teachers=teachers, device=CPU,
                          on_epoch=lambda epoch, m: losses.append(m["loss"]))
    assert r.status == "ok" and r.epochs_run == protocol.epochs and r.model is not None
    return calls, losses, r.model


def _epoch_means(step_losses: list[float], steps_per_epoch: int) -> list[float]:
    return [sum(step_losses[i:i + steps_per_epoch]) / steps_per_epoch
            for i in range(0, len(step_losses), steps_per_epoch)]


def _rows_not_in(batch: Tensor, images: Tensor) -> int:
    """How many rows of `batch` are none of `images` (augmented or mixed ones)."""
    same = (batch.unsqueeze(1) == images.unsqueeze(0)).flatten(2).all(dim=2)
    return int((~same.any(dim=1)).sum())


# ---------------------------------------------------------------- the teacher sees the student's batch
AUGMENTS = {
    "rrc+flip+cutmix": {},  # rd3's own augmentation
    "cutmix only": {"rrc": False, "flip": False, "cutmix": 1.0},
    "dsa": {"dsa": True, "rrc": False, "flip": False, "cutmix": None},
}


@pytest.mark.parametrize("augment", list(AUGMENTS.values()), ids=list(AUGMENTS))
def test_teacher_labels_exactly_the_augmented_batch_the_student_sees(data, augment):
    teacher = _net(STUDENT, seed=1)
    tau = 4.0
    calls, losses, _ = _train(data, _protocol(augment=augment, temperature=tau), [teacher])
    students, teachers = _student_steps(calls), _role(calls, "teacher0")
    steps = EPOCHS * math.ceil(N / BATCH)
    assert len(students) == len(teachers) == steps
    for s, t in zip(students, teachers):
        assert s.input.shape == (BATCH, 1, 8, 8)
        assert torch.equal(t.input, s.input)
    # the batches are augmented (or mixed): not just training images
    assert sum(_rows_not_in(s.input, _first(data)[0]) for s in students) > 0
    # and each step's loss is KL(teacher ‖ student) on those very outputs
    step_losses = [kl(s.output, t.output, tau).item() for s, t in zip(students, teachers)]
    assert losses == pytest.approx(_epoch_means(step_losses, steps // EPOCHS), rel=1e-5)


def test_every_hybrid_teacher_labels_the_same_batch(data):
    a, b = _net(STUDENT, seed=1), _net(STUDENT, seed=2)
    calls, _, _ = _train(data, _protocol(), [a, b], labels="hybrid")
    students = _student_steps(calls)
    assert len(students) == EPOCHS * math.ceil(N / BATCH)
    for role in ("teacher0", "teacher1"):
        seen = _role(calls, role)
        assert len(seen) == len(students)
        assert all(torch.equal(t.input, s.input) for s, t in zip(students, seen))


# ---------------------------------------------------------------- eval mode, no gradient
def test_teacher_runs_in_eval_mode_without_gradient_and_keeps_its_bn_statistics(data):
    teacher = _net(BN_TEACHER, seed=1)
    with torch.no_grad():  # non-trivial running statistics, and a teacher left in train mode by its owner
        for _ in range(3):
            teacher(torch.randn(16, 1, 8, 8) * 2 + 0.5)
    teacher.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    assert teacher.state_dict()["features.1.num_batches_tracked"].item() == 3

    calls, _, _ = _train(data, _protocol(), [teacher])
    seen = _role(calls, "teacher0")
    assert len(seen) == EPOCHS * math.ceil(N / BATCH)
    for c in seen:
        assert not any(c.training), "the teacher (or one of its submodules) ran in training mode"
        assert not c.grad, "the teacher's forward ran with gradients enabled"
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "running statistics or weights changed"
    assert all(p.grad is None for p in teacher.parameters())
    # the student, by contrast, trained: train mode, with gradients
    assert all(c.training[0] and c.grad and not c.inference for c in _student_steps(calls))


def test_eval_mode_teacher_gives_running_stat_logits(data):
    """The logits the loop got are those of the teacher in eval mode, not of train-mode BatchNorm."""
    teacher = _net(BN_TEACHER, seed=1)
    with torch.no_grad():
        teacher(torch.randn(16, 1, 8, 8) * 2 + 0.5)
    teacher.train()
    calls, _, _ = _train(data, _protocol(), [teacher])
    c = _role(calls, "teacher0")[0]
    with torch.no_grad():
        eval_logits = teacher.eval()(c.input)
        train_logits = teacher.train()(c.input)
    assert torch.equal(c.output, eval_logits)
    assert not torch.allclose(c.output, train_logits)


# ---------------------------------------------------------------- the losses' minimum
LOGITS = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.5, 0.5, 1.0, -3.0], [8.0, -2.0, 0.0, 1.0]])
OTHER = torch.tensor([[1.0, 1.0, 0.0, 0.0], [-1.0, 2.0, 0.0, 0.5], [0.0, 3.0, 0.0, -1.0]])
HARD = torch.tensor([0, 2, 1])
TAUS = (1.0, 4.0, 20.0)


@pytest.mark.parametrize("t2", [False, True])
@pytest.mark.parametrize("tau", TAUS)
def test_kl_is_zero_for_same_logits_and_positive_otherwise(tau, t2):
    loss = soft_loss("kl", temperature=tau, kl_t2=t2)
    assert loss(LOGITS, LOGITS.clone(), None).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(LOGITS, OTHER, None).item() > 0
    assert loss(OTHER, LOGITS, None).item() > 0
    # τ² only rescales: the gradient's size stays comparable across τ (Hinton et al.)
    ratio = soft_loss("kl", temperature=tau, kl_t2=True)(LOGITS, OTHER, None) / kl(LOGITS, OTHER, tau)
    assert ratio.item() == pytest.approx(tau * tau, rel=1e-5)


def test_sce_is_smallest_at_the_teacher_and_exceeds_it_by_the_kl():
    entropy = -(LOGITS.softmax(1) * LOGITS.log_softmax(1)).sum(1).mean()
    assert sce(LOGITS, LOGITS).item() == pytest.approx(entropy.item(), rel=1e-6)
    assert (sce(OTHER, LOGITS) - sce(LOGITS, LOGITS)).item() == pytest.approx(kl(OTHER, LOGITS).item(), rel=1e-5)
    assert sce(OTHER, LOGITS).item() > sce(LOGITS, LOGITS).item()


@pytest.mark.parametrize("gamma", [0.0, 0.1, 1.0])
def test_mse_gt_at_the_teacher_is_its_ce_term_alone(gamma):
    from ddray.engine.losses import ce

    assert mse_gt(LOGITS, LOGITS, HARD, gamma).item() == pytest.approx(gamma * ce(LOGITS, HARD).item(), abs=1e-7)
    assert mse_gt(OTHER, LOGITS, HARD, gamma).item() > mse_gt(LOGITS, LOGITS, HARD, gamma).item()
    # without hard labels (a teacher-only target) the CE term reads the teacher's argmax
    by_argmax = soft_loss("mse_gt", mse_gamma=gamma)(LOGITS, LOGITS, None)
    assert by_argmax.item() == pytest.approx(gamma * ce(LOGITS, LOGITS.argmax(1)).item(), abs=1e-7)


def _same_as_student(seed: int) -> nn.Module:
    """The student's own initial network: the loop seeds its init with `torch.manual_seed(seed)`."""
    return _net(STUDENT, seed)


LOOP_LOSSES: dict[str, tuple[dict[str, object], Callable[[Tensor], float]]] = {
    # name: (protocol knobs, the epoch loss expected at student = teacher from the teacher's logits)
    **{f"kl tau={tau:g}{' t2' if t2 else ''}": ({"loss": "kl", "temperature": tau, "kl_t2": t2}, lambda t: 0.0)
       for tau in TAUS for t2 in (False, True)},
    "mse_gt gamma=0": ({"loss": "mse_gt", "mse_gamma": 0.0}, lambda t: 0.0),
    "sce": ({"loss": "sce"}, lambda t: -(t.softmax(1) * t.log_softmax(1)).sum(1).mean().item()),
}


@pytest.mark.parametrize("knobs,expected", list(LOOP_LOSSES.values()), ids=list(LOOP_LOSSES))
def test_loop_loss_at_student_equals_teacher(data, knobs, expected):
    """lr 0 keeps the student at its init; a teacher with those same weights gives its minimum loss.

    A spec may not ask for lr 0 (a user's lr must be > 0), so the frozen-student recipe is made
    from a valid one by `model_copy`, which the engine takes as it is."""
    teacher = _same_as_student(seed=0)
    p = _protocol(weight_decay=0.0, **knobs).model_copy(update={"lr": 0.0})
    calls, losses, student = _train(data, p, [teacher], seed=0)
    ts, ss = teacher.state_dict(), student.state_dict()
    assert all(torch.equal(ts[k], ss[k]) for k in ts), "premise: the student is the teacher"
    per_step = [expected(t.output) for t in _role(calls, "teacher0")]
    assert losses == pytest.approx(_epoch_means(per_step, math.ceil(N / BATCH)), abs=1e-6)
    _, other, _ = _train(data, p, [_net(STUDENT, seed=5)], seed=0)
    assert all(o > e + 1e-4 for o, e in zip(other, losses))


# ---------------------------------------------------------------- hybrid labels
def _frobenius(z: Tensor) -> float:
    return math.sqrt(sum(v * v for v in z.flatten().tolist()))


def _hybrid_by_hand(zs: Sequence[Tensor]) -> Tensor:
    """mean_i (n̄ / n_i)·Z_i with n_i = ‖Z_i‖_F and n̄ = mean_i n_i (labels.py's reading of DESIGN §5)."""
    norms = [_frobenius(z) for z in zs]
    target = sum(norms) / len(norms)
    return sum(z * (target / n) for z, n in zip(zs, norms)) / len(zs)


def _scaled(net: nn.Module, factor: float) -> nn.Module:
    """The same network with its logits multiplied by `factor` (classifier weight and bias scaled)."""
    with torch.no_grad():
        net.classifier.weight.mul_(factor)
        net.classifier.bias.mul_(factor)
    return net.eval()


def test_hybrid_rescales_two_teachers_of_different_scales_to_their_mean_norm():
    small, big = _net(STUDENT, seed=1).eval(), _scaled(_net(STUDENT, seed=2), 10.0)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        zs, zb = small(x), big(x)
    assert _frobenius(zb) > 5 * _frobenius(zs)  # really on different scales
    got = teacher_logits([small, big], x, hybrid=True)
    assert torch.allclose(got, _hybrid_by_hand([zs, zb]), rtol=1e-5, atol=1e-6)
    # after rescaling both teachers weigh the same: each contribution has the mean norm
    target = (_frobenius(zs) + _frobenius(zb)) / 2
    for z in (zs, zb):
        assert _frobenius(z * (target / _frobenius(z))) == pytest.approx(target, rel=1e-5)
    # one teacher with logits ×10 and the same teacher: their hybrid is the mean norm on that direction
    same = _scaled(_net(STUDENT, seed=1), 10.0)
    assert torch.allclose(teacher_logits([small, same], x, hybrid=True), zs * 5.5, rtol=1e-4, atol=1e-5)
    assert torch.equal(teacher_logits([small, big], x, hybrid=False), zs)


def test_loop_trains_on_the_hybrid_of_the_teachers_logits(data):
    a, b = _net(STUDENT, seed=1), _scaled(_net(STUDENT, seed=2), 10.0)
    tau = 4.0
    calls, losses, _ = _train(data, _protocol(temperature=tau), [a, b], labels="hybrid")
    students, ta, tb = _student_steps(calls), _role(calls, "teacher0"), _role(calls, "teacher1")
    step_losses = [kl(s.output, _hybrid_by_hand([za.output, zb.output]), tau).item()
                   for s, za, zb in zip(students, ta, tb)]
    assert losses == pytest.approx(_epoch_means(step_losses, math.ceil(N / BATCH)), rel=1e-5)

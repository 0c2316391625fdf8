"""The training loop on real data (digits 8×8): accuracy, labels, determinism, resume, divergence."""

from __future__ import annotations

import io

import pytest
import torch

from ddray.data import load_dataset
from ddray.engine import (
    MemoryCheckpointer,
    load_teacher,
    rdm_arm,
    save_teacher,
    train_student,
    train_teacher,
    validation_split,
)
from ddray.errors import InputError
from ddray.protocols import full_recipe, resolve_protocol



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core box two threads per tiny op is many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

CPU = torch.device("cpu")
SMALL = "convnet-w32"  # ConvNet-D3 at width 32: the same net, fast enough for unit tests


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def teacher(digits):
    """ConvNet-D3 (width 128) on the full digits split: the full-data arm, and the soft-label teacher."""
    recipe = full_recipe("digits", {"epochs": 6, "batch_size": 64, "lr": 0.1})
    return train_teacher(digits, "convnet", recipe, seed=0, device=CPU)


def _weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_full_data_convnet_d3_reaches_95(teacher):
    assert teacher.status == "ok" and teacher.epochs_run == 6
    assert teacher.top1 >= 0.95
    assert teacher.top1 <= teacher.top5 <= 1.0


def test_ipc10_beats_ipc1(digits):
    p = resolve_protocol("classic", {"epochs": 100})
    acc = {}
    for ipc in (1, 10):
        x, y = rdm_arm(digits, ipc, seed=0)
        acc[ipc] = train_student(x, y, digits, SMALL, p, labels="hard", aug=False, seed=0, device=CPU).top1
    assert acc[10] > acc[1] + 0.15, acc


@pytest.mark.slow
def test_soft_labels_from_a_teacher_beat_hard_labels(digits, teacher):
    """DD-Ranking's warning: a teacher's soft labels on a random IPC-1 subset beat its hard labels."""
    x, y = rdm_arm(digits, 1, seed=0)
    aug = {"rrc": True, "rrc_scale": (0.5, 1.0), "flip": False, "cutmix": None}
    knobs = dict(epochs=400, lr=0.01, temperature=1.0, augment=aug)
    soft = resolve_protocol("ddranking-soft", knobs)
    hard = resolve_protocol("ddranking-soft", {**knobs, "labels": "hard", "loss": "ce"})
    r_soft = train_student(x, y, digits, SMALL, soft, labels="soft", aug=True, seed=0,
                           teachers=[teacher.model], device=CPU)
    r_hard = train_student(x, y, digits, SMALL, hard, labels="hard", aug=True, seed=0, device=CPU)
    assert r_soft.top1 > r_hard.top1 + 0.05, (r_soft.top1, r_hard.top1)


def _small_trial(digits, **over):
    x, y = rdm_arm(digits, 10, seed=1)
    knobs = {"epochs": 6, "ema": 0.9, "augment": {"dsa": True, "cutmix": 1.0}, "fresh_optimizer_at_step": True}
    knobs.update(over)
    p = resolve_protocol("ddranking-hard", knobs)
    return lambda **kw: train_student(x, y, digits, SMALL, p, labels="hard", aug=True, seed=3, device=CPU, **kw)


def test_same_trial_twice_is_identical(digits):
    run = _small_trial(digits)
    a, b = run(), run()
    assert a.top1 == b.top1 and a.loss == b.loss
    assert _weights_equal(a.model, b.model)


class _Interrupt(Exception):
    pass


class _StopAt(MemoryCheckpointer):
    """Raises right after its `stop_at`-th save, as a killed worker would.

    The state goes through torch.save / torch.load(weights_only=True), as a durable store's would.
    """

    def __init__(self, every: int, stop_at: int):
        super().__init__(every)
        self.stop_at = stop_at

    def save(self, state):
        buf = io.BytesIO()
        torch.save(state, buf)
        super().save(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
        if self.saves == self.stop_at:
            raise _Interrupt


def test_checkpoint_resume_is_bit_exact(digits):
    run = _small_trial(digits)
    straight = run()
    ck = _StopAt(every=3, stop_at=1)
    with pytest.raises(_Interrupt):
        run(checkpointer=ck)
    assert ck.state is not None and ck.state["run"]["epoch"] == 3
    resumed = run(checkpointer=ck)
    assert resumed.epochs_run == 6
    assert resumed.top1 == straight.top1 and resumed.loss == straight.loss
    assert _weights_equal(resumed.model, straight.model)


def test_lr_search_picks_by_validation_and_resumes(digits):
    pool, val = validation_split(digits, 0.2, seed=0)
    x, y = rdm_arm(digits, 10, seed=0, pool=pool)
    p = resolve_protocol("classic", {"epochs": 4, "lr": [1e-4, 0.05]})
    with pytest.raises(InputError, match="val"):
        train_student(x, y, digits, SMALL, p, labels="hard", aug=False, seed=0, device=CPU)
    run = lambda **kw: train_student(x, y, digits, SMALL, p, labels="hard", aug=False, seed=0,  # noqa: E731
                                     device=CPU, val=val, **kw)
    straight = run()
    assert set(straight.search) == {1e-4, 0.05}
    assert straight.lr == max(straight.search, key=straight.search.get)
    assert straight.val_top1 == straight.search[straight.lr]
    ck = _StopAt(every=2, stop_at=3)  # stops inside the second candidate
    with pytest.raises(_Interrupt):
        run(checkpointer=ck)
    resumed = run(checkpointer=ck)
    assert (resumed.lr, resumed.top1, resumed.search) == (straight.lr, straight.top1, straight.search)
    assert _weights_equal(resumed.model, straight.model)


def test_absurd_lr_diverges_without_accuracy(digits):
    x, y = rdm_arm(digits, 10, seed=0)
    p = resolve_protocol("classic", {"epochs": 5})
    r = train_student(x, y, digits, SMALL, p, labels="hard", aug=False, seed=0, device=CPU, lr=1e6)
    assert r.status == "diverged" and r.top1 is None and r.top5 is None
    assert 1 <= r.epochs_run <= 5


def test_hybrid_fixed_soft_and_mse_gt_labels_train(digits):
    """Each label kind trains; any teacher will do (one epoch, not the slow tests' 6-epoch one)."""
    x, y = rdm_arm(digits, 2, seed=0)
    teacher, other = (train_teacher(digits, SMALL, full_recipe("digits", {"epochs": 1}), seed=s, device=CPU)
                      for s in (0, 1))
    other = other.model
    p = resolve_protocol("rd3", {"epochs": 3})
    r = train_student(x, y, digits, SMALL, p, labels="hybrid", aug=True, seed=0,
                      teachers=[teacher.model, other], device=CPU)
    assert r.status == "ok" and 0 <= r.top1 <= 1
    with torch.no_grad():
        logits = teacher.model(digits.pixels(x))  # rdm_arm gives stored pixels
    r = train_student(x, logits, digits, SMALL, p, labels="soft", aug=True, seed=0, device=CPU)
    assert r.status == "ok"
    r = train_student(x, y, digits, SMALL, p.model_copy(update={"loss": "mse_gt"}), labels="soft", aug=True,
                      seed=0, teachers=[teacher.model], device=CPU)
    assert r.status == "ok"
    with pytest.raises(InputError, match="teacher"):
        train_student(x, y, digits, SMALL, p, labels="soft", aug=False, seed=0, device=CPU)


def test_bad_training_set_is_rejected(digits):
    x, y = rdm_arm(digits, 1, seed=0)
    x = digits.pixels(x)  # a normalized set, as a method hands one over
    p = resolve_protocol("classic", {"epochs": 1})
    with pytest.raises(InputError, match="training set"):
        train_student(x.clone().fill_(float("nan")), y, digits, SMALL, p, labels="hard", aug=False, seed=0,
                      device=CPU)
    with pytest.raises(InputError, match="N×1×8×8"):
        train_student(x[:, :, :4], y, digits, SMALL, p, labels="hard", aug=False, seed=0, device=CPU)


def test_load_teacher_round_trip_and_errors(digits, teacher, tmp_path):
    path = tmp_path / "teacher.pt"
    save_teacher(teacher.model, path)
    loaded = load_teacher(path, "convnet", digits)
    x = digits.pixels(digits.test.take(torch.arange(16)))
    teacher.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), teacher.model(x))
    with pytest.raises(InputError) as e:
        load_teacher(path, SMALL, digits)
    assert str(path) in str(e.value) and SMALL in str(e.value)
    with pytest.raises(InputError, match="not found"):
        load_teacher(tmp_path / "missing.pt", "convnet", digits)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt"):
        load_teacher(bad, "convnet", digits)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_path_bf16_channels_last_and_resume(digits, teacher):
    """The GPU path (bf16 autocast, channels_last, CUDA RNG state in the checkpoint) runs end to end."""
    cuda = torch.device("cuda")
    x, y = rdm_arm(digits, 10, seed=0)
    p = resolve_protocol("rd3", {"epochs": 4, "channels_last": True, "ema": 0.9})
    run = lambda **kw: train_student(x.to(cuda), y.to(cuda), digits, SMALL, p, labels="soft", aug=True,  # noqa: E731
                                     seed=0, teachers=[teacher.model], device=cuda, **kw)
    ck = _StopAt(every=2, stop_at=1)
    with pytest.raises(_Interrupt):
        run(checkpointer=ck)
    r = run(checkpointer=ck)
    assert r.status == "ok" and r.epochs_run == 4 and 0.0 <= r.top1 <= 1.0
    assert next(r.model.parameters()).device.type == "cuda"


@pytest.mark.slow
def test_compiled_step_is_deterministic_resumable_and_close_to_eager(digits):
    """`compile: true` runs the same algorithm: same trial twice identical, resume bit-exact, ≈ eager."""
    run = _small_trial(digits, compile=True)
    a, b = run(), run()
    assert a.status == "ok" and a.top1 == b.top1 and a.loss == b.loss
    ck = _StopAt(every=3, stop_at=1)
    with pytest.raises(_Interrupt):
        run(checkpointer=ck)
    resumed = run(checkpointer=ck)
    assert resumed.top1 == a.top1 and _weights_equal(resumed.model, a.model)
    eager = _small_trial(digits)()
    assert abs(eager.loss - a.loss) < 1e-3 * max(1.0, abs(eager.loss))


@pytest.mark.slow
def test_compiled_soft_labels_compile_the_teacher_too_and_stay_deterministic(digits):
    """With `compile: true` the teacher's forward is compiled as well; the shared teacher module is untouched."""
    from ddray.models import build_model

    torch.manual_seed(0)
    teacher = build_model(SMALL, 1, digits.num_classes, digits.image_shape[1]).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x, y = rdm_arm(digits, 5, seed=0)
    p = resolve_protocol("ddranking-soft", {"epochs": 3, "augment": {"dsa": True, "rrc": False, "flip": False,
                                                                     "cutmix": None}})
    run = lambda protocol: train_student(x, y, digits, SMALL, protocol, labels="soft", aug=True, seed=0,  # noqa: E731
                                         teachers=[teacher], device=CPU)
    a, b = run(p.model_copy(update={"compile": True})), run(p.model_copy(update={"compile": True}))
    assert a.status == "ok" and a.top1 == b.top1 and a.loss == b.loss and _weights_equal(a.model, b.model)
    assert type(teacher).__name__ == "ConvNet" and all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    eager = run(p)
    assert abs(eager.loss - a.loss) < 1e-3 * max(1.0, abs(eager.loss))

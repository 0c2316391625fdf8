"""Pure pieces of the engine: losses, schedules, hybrid labels, augmentation, arms, validation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ddray.data import DatasetMeta
from ddray.engine import holdout_split, random_subset, validate_training_set
from ddray.engine.validate import training_set_problems
from ddray.engine.augment import (
    DSA_FNS,
    build_augment,
    cutmix,
    dsa,
    dsa_crop,
    dsa_cutout,
    flip,
    mixup,
    patch_shuffle,
    random_resized_crop,
)
from ddray.engine.labels import rescale_and_average, teacher_logits
from ddray.engine.losses import ce, kl, mixed, mse_gt, sce, soft_loss
from ddray.engine.schedules import cosine, lr_factor, step
from ddray.errors import InputError
from ddray.protocols import Augment





# ---------------------------------------------------------------- losses
S = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
T = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 2.0, 0.0]])
Y = torch.tensor([0, 2])


def _softmax(row: list[float]) -> list[float]:
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def test_ce_by_hand():
    want = sum(-math.log(_softmax(S[i].tolist())[int(Y[i])]) for i in range(2)) / 2
    assert ce(S, Y).item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("tau,t2", [(1.0, False), (4.0, False), (4.0, True)])
def test_kl_by_hand(tau, t2):
    total = 0.0
    for i in range(2):
        p = _softmax((T[i] / tau).tolist())
        q = _softmax((S[i] / tau).tolist())
        total += sum(pk * math.log(pk / qk) for pk, qk in zip(p, q))
    want = total / 2 * (tau * tau if t2 else 1.0)
    assert kl(S, T, tau, t2).item() == pytest.approx(want, rel=1e-5)


def test_sce_by_hand():
    total = 0.0
    for i in range(2):
        p, q = _softmax(T[i].tolist()), _softmax(S[i].tolist())
        total += -sum(pk * math.log(qk) for pk, qk in zip(p, q))
    assert sce(S, T).item() == pytest.approx(total / 2, rel=1e-6)


def test_sce_gives_the_gradients_of_its_formula_bit_for_bit():
    """torch's probability-target cross-entropy trains exactly like −Σ softmax(t)·log_softmax(s), batch mean."""
    for seed, (b, k) in enumerate([(1, 2), (7, 10), (50, 100), (256, 1000)]):
        g = _gen(seed)
        s, t = (torch.randn(b, k, generator=g) * 5).requires_grad_(), torch.randn(b, k, generator=g) * 5
        by_formula = -(F.softmax(t, dim=1) * F.log_softmax(s, dim=1)).sum(dim=1).mean()
        (want,) = torch.autograd.grad(by_formula, s)
        (got,) = torch.autograd.grad(sce(s, t), s)
        assert torch.equal(got, want)
        assert sce(s, t).item() == pytest.approx(by_formula.item(), rel=1e-6)


def test_weight_ema_is_lerp_of_weights_and_copy_of_buffers_bit_for_bit():
    """timm's EMA with buffers excluded is the EMA ddray defines: a lerp per step, BatchNorm stats copied."""
    from ddray.engine.train import weight_ema
    from ddray.models import build_model

    torch.manual_seed(0)
    model = build_model("convnet-d3-bn", 1, 10, 8)
    ema, ref = weight_ema(model, 0.9), copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for i in range(5):
        loss = F.cross_entropy(model(torch.randn(16, 1, 8, 8, generator=_gen(i))), torch.arange(16) % 10)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model)
        with torch.no_grad():
            for pr, pm in zip(ref.parameters(), model.parameters()):
                pr.lerp_(pm, 1 - 0.9)
            for br, bm in zip(ref.buffers(), model.buffers()):
                br.copy_(bm)
    got, want = ema.module.state_dict(), ref.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    weight = next(k for k, v in got.items() if v.dim() > 1)
    assert not torch.equal(got[weight], model.state_dict()[weight])  # it lags the weights it follows


def test_mse_gt_by_hand():
    mse = ((S - T) ** 2).sum().item() / S.numel()
    want = mse + 0.3 * ce(S, Y).item()
    assert mse_gt(S, T, Y, 0.3).item() == pytest.approx(want, rel=1e-6)


def test_kl_is_zero_for_identical_logits_and_sce_of_onehot_is_ce():
    assert kl(S, S, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    onehot = F.one_hot(Y, 3).float() * 1e4
    assert sce(S, onehot).item() == pytest.approx(ce(S, Y).item(), rel=1e-5)
    assert soft_loss("ce")(S, T, None).item() == pytest.approx(sce(S, T).item())


def test_mixed_targets():
    perm = torch.tensor([1, 0])
    got = mixed(lambda yy: ce(S, yy), perm, 0.25, Y)
    assert got.item() == pytest.approx(0.25 * ce(S, Y).item() + 0.75 * ce(S, Y[perm]).item(), rel=1e-6)
    assert mixed(lambda yy: ce(S, yy), None, None, Y).item() == pytest.approx(ce(S, Y).item())


# ---------------------------------------------------------------- schedules
@pytest.mark.parametrize("zeta,mid,end", [(1.0, 0.5, 0.0), (2.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5)])
def test_cosine_zeta(zeta, mid, end):
    e = 100
    assert cosine(0, e, zeta) == pytest.approx(1.0)
    assert cosine(e / 2, e, zeta) == pytest.approx(mid)
    assert cosine(e, e, zeta) == pytest.approx(end, abs=1e-12)
    assert lr_factor("cosine", e, e, zeta=zeta) == pytest.approx(end, abs=1e-12)


def test_step_and_constant():
    assert [step(e, 10, (0.5,), 0.1) for e in (0, 4, 5, 9)] == pytest.approx([1, 1, 0.1, 0.1])
    assert step(8, 10, (0.5, 0.75), 0.1) == pytest.approx(0.01)
    assert step(0, 1, (0.5,), 0.1) == 1.0  # a 1-epoch run starts at lr0
    assert lr_factor("constant", 7, 10) == 1.0
    with pytest.raises(ValueError):
        lr_factor("linear", 0, 10)


# ---------------------------------------------------------------- hybrid labels
def test_hybrid_rescales_to_mean_frobenius_norm():
    z1 = torch.tensor([[3.0, 4.0]])  # norm 5
    z2 = torch.tensor([[0.0, 15.0]])  # norm 15
    out = rescale_and_average([z1, z2])
    # target norm 10: z1 -> [6, 8], z2 -> [0, 10]; average [3, 9]
    assert torch.allclose(out, torch.tensor([[3.0, 9.0]]))
    assert torch.allclose(rescale_and_average([z1]), z1)


def test_teacher_logits_single_and_hybrid():
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    assert torch.allclose(teacher_logits([a, b], x, hybrid=False), a(x))
    assert torch.allclose(teacher_logits([a, b], x, hybrid=True), rescale_and_average([a(x), b(x)]))


# ---------------------------------------------------------------- augmentation
X = torch.randn(6, 3, 8, 8)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


OPS = {
    **{f"dsa_{k}": v for k, v in DSA_FNS.items()},
    "dsa": lambda x, g: dsa(x, g),
    "flip": flip,
    "rrc": lambda x, g: random_resized_crop(x, g, (0.08, 1.0)),
    "patch2": lambda x, g: patch_shuffle(x, g, 2),
    "patch3": lambda x, g: patch_shuffle(x, g, 3),
    "cutmix": lambda x, g: cutmix(x, g, 1.0).x,
    "mixup": lambda x, g: mixup(x, g, 1.0).x,
    "all": lambda x, g: build_augment(Augment(dsa=True, rrc=True, flip=True, cutmix=1.0, mixup=0.4,
                                              patch_shuffle=2))(x, g).x,
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_augment_shape_and_seed(name):
    op = OPS[name]
    a = op(X, _gen(1))
    assert a.shape == X.shape and a.dtype == X.dtype
    assert torch.equal(a, op(X, _gen(1)))
    # different seeds differ (some seed among a few: an op can draw the identity by chance)
    assert any(not torch.equal(a, op(X, _gen(s))) for s in range(2, 7))


def test_dsa_crop_matches_dsa_reference():
    """DSA's rand_crop (pad 1 with zeros, shift, clamp) with the same shifts."""
    g = _gen(3)
    state = g.get_state()
    got = dsa_crop(X, g)
    g2 = torch.Generator()
    g2.set_state(state)
    b, _, h, w = X.shape
    s = int(h * 0.125 + 0.5)
    tx = torch.randint(-s, s + 1, (b,), generator=g2).view(b, 1, 1)
    ty = torch.randint(-s, s + 1, (b,), generator=g2).view(b, 1, 1)
    gb, gx, gy = torch.meshgrid(torch.arange(b), torch.arange(h), torch.arange(w), indexing="ij")
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    pad = F.pad(X, [1, 1, 1, 1])
    want = pad.permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2)
    assert torch.equal(got, want)


def test_dsa_cutout_zeros_a_quarter_at_most():
    out = dsa_cutout(torch.ones(50, 1, 8, 8), _gen(0))
    zeros = (out == 0).flatten(1).sum(1)
    assert int(zeros.max()) == 16 and int(zeros.min()) >= 4  # 4×4 box, clipped at borders


def test_patch_shuffle_permutes_patches_and_flip_per_sample():
    x = torch.arange(2 * 16, dtype=torch.float).view(2, 1, 4, 4)
    out = patch_shuffle(x, _gen(0), 2)
    assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    src = torch.randn(64, 1, 4, 4)
    f = flip(src, _gen(0))
    flipped = sum(torch.equal(f[i], src[i].flip(2)) and not torch.equal(f[i], src[i]) for i in range(64))
    assert 10 < flipped < 54


def test_cutmix_and_mixup_report_their_mix():
    out = cutmix(X, _gen(5), 1.0)
    assert out.perm is not None and sorted(out.perm.tolist()) == list(range(6))
    kept = (out.x == X).all(dim=1).float().mean().item()
    assert 0.0 <= out.lam <= 1.0 and kept >= out.lam - 1e-6
    m = mixup(X, _gen(5), 0.4)
    assert torch.allclose(m.x, m.lam * X + (1 - m.lam) * X[m.perm])


def test_inactive_augment_is_identity():
    out = build_augment(Augment())(X, _gen(0))
    assert torch.equal(out.x, X) and out.perm is None


# ---------------------------------------------------------------- arms
Y_REAL = torch.arange(10).repeat_interleave(7)[torch.randperm(70, generator=_gen(0))]


def test_random_subset_balanced_class_major_and_seeded():
    idx = random_subset(Y_REAL, 10, 3, seed=0)
    assert idx.dtype == torch.long and idx.numel() == 30
    assert Y_REAL[idx].tolist() == [c for c in range(10) for _ in range(3)]
    assert torch.equal(idx, random_subset(Y_REAL, 10, 3, seed=0))
    assert not torch.equal(idx, random_subset(Y_REAL, 10, 3, seed=1))
    with pytest.raises(InputError, match="ipc"):
        random_subset(Y_REAL, 10, 8, seed=0)


def test_holdout_split_stratified_disjoint():
    kept, val = holdout_split(Y_REAL, 0.3, seed=0)
    assert kept.numel() + val.numel() == 70
    assert not set(kept.tolist()) & set(val.tolist())
    assert Y_REAL[val].bincount(minlength=10).tolist() == [2] * 10
    assert not torch.equal(val, holdout_split(Y_REAL, 0.3, seed=1)[1])


# ---------------------------------------------------------------- validation
META = DatasetMeta("digits", 10, (1, 8, 8), [10] * 10)


def test_validate_accepts_hard_and_soft():
    validate_training_set(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 9]), META, "x.pt")
    validate_training_set(torch.randn(4, 1, 8, 8), torch.randn(4, 10), META, "x.pt")


@pytest.mark.parametrize("x,y,needle", [
    (torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]), "N×1×8×8"),
    (torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 10]), "range over [0, 10]; expected class ids in [0, 10)"),
    (torch.randn(4, 1, 8, 8), torch.tensor([0, 1, -1, 3]), "range over [-1, 3]; expected class ids in [0, 10)"),
    (torch.full((4, 1, 8, 8), float("nan")), torch.tensor([0, 1, 2, 3]), "NaN"),
    (torch.randn(4, 1, 8, 8), torch.randn(4, 7), "expected (4, 10)"),
    (torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2]), "3 labels"),
    (torch.randn(4, 1, 8, 8), torch.tensor([0.0, 1.0, 2.0, 3.0]), "integers"),
])
def test_validate_rejects_bad_sets_naming_the_source(x, y, needle):
    with pytest.raises(InputError) as e:
        validate_training_set(x, y, META, "/data/m/ipc1/images.pt")
    assert "/data/m/ipc1/images.pt" in str(e.value) and needle in str(e.value)


def test_validate_reports_every_problem_at_once_tagged_by_part():
    x = torch.full((4, 1, 8, 8), float("inf"))
    y = torch.tensor([0.5, 1.0, 2.0])
    assert training_set_problems(x, y, META) == [
        ("images", "images contain 256 non-finite values (NaN or inf)"),
        ("labels", "4 images but 3 labels"),
        ("labels", "hard labels must be integers, got torch.float32"),
    ]


def test_validate_with_ipc_adds_the_distilled_set_contract():
    """ipc images of each class: the count of images and the labels' balance."""
    y = torch.arange(10).repeat_interleave(2)
    assert training_set_problems(torch.randn(20, 1, 8, 8), y, META, ipc=2) == []
    assert training_set_problems(torch.randn(20, 1, 8, 8), None, META, ipc=2) == []
    [(part, msg)] = training_set_problems(torch.randn(20, 1, 8, 8), torch.zeros(20, dtype=torch.long), META, ipc=2)
    assert part == "labels" and msg.startswith("labels give [20, 0, 0") and msg.endswith("expected 2 for each of 10 classes")
    [(part, msg)] = training_set_problems(torch.randn(19, 1, 8, 8), None, META, ipc=2)
    assert part == "images" and "expected (20, 1, 8, 8) = (ipc·classes, C, H, W) for digits at IPC 2" in msg


# ---------------------------------------------------------------- allocator
def test_keep_freed_memory_reuses_big_blocks_without_page_faults():
    """After keep_freed_memory, freed 64 MB activations are reused: a training-like loop stops faulting."""
    resource = pytest.importorskip("resource")
    from ddray.engine.device import free_device_memory, keep_freed_memory

    if not keep_freed_memory():
        pytest.skip("not glibc")
    assert keep_freed_memory()  # idempotent

    def step() -> None:  # one 64 MB activation, allocated, written and freed, as every training step does
        torch.empty(16 << 20).fill_(1.0)

    for _ in range(4):  # the heap settles in a step or two (aligned allocations want a little more room)
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 1000, faults  # fresh mmaps would fault in 4 × 16,384 pages of 4 KB
    free_device_memory()  # hands the kept memory back (malloc_trim) and still works

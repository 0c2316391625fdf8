"""DD-Ranking's evaluation knobs, each checked against its reference on the same data.

ZCA against kornia's `ZCAWhitening`, the transforms against torchvision's on the same images, the
per-arm batch sizes and `aug_for_hard` by the batches the student sees, `mse_gt`'s weights by
DD-Ranking's `MSEGTLoss` formula; and none of the new knobs enters a key while at its default.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddray.data import NodeCache, clear_cache, load_dataset
from ddray.data.zca import fit_zca, zca_pixels
from ddray.engine import train_student
from ddray.engine.augment import crop_at, gaussian_noise, random_crop
from ddray.engine.evaluate import resize_center_crop
from ddray.engine.losses import soft_loss
from ddray.protocols import Augment, Protocol, resolve_protocol
from tests.conftest import planned

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()
    yield
    clear_cache()


# ---------------------------------------------------------------- keys
def test_new_knobs_stay_out_of_the_dump_at_their_default_and_enter_it_when_set():
    base = resolve_protocol("ddranking-soft")
    dumped = base.model_dump(mode="json")
    for knob in Protocol.ADDED_LATER:
        assert knob not in dumped
    for knob in Augment.ADDED_LATER:
        assert knob not in dumped["augment"]
    set_ = resolve_protocol("ddranking-soft", {"zca": True, "syn_batch_size": 100, "mse_weight": 0.5,
                                               "test_resize": 1.125, "augment": {"gaussian_noise": 0.1,
                                                                                  "random_crop_padding": 4}})
    out = set_.model_dump(mode="json")
    assert out["zca"] is True and out["syn_batch_size"] == 100 and out["mse_weight"] == 0.5
    assert out["augment"]["gaussian_noise"] == 0.1 and out["augment"]["random_crop_padding"] == 4
    assert "zca_eps" not in out  # still at its default
    assert Protocol.model_validate(out) == set_  # the dump reads back to the same protocol


# ---------------------------------------------------------------- ZCA
def test_zca_equals_kornia_on_the_same_data():
    kornia = pytest.importorskip("kornia")
    data = load_dataset("digits", None)
    x, xt = data.train.tensor(), data.test.tensor()
    ref = kornia.enhance.ZCAWhitening(eps=0.1)
    ref.fit(x.float() / data.scale)
    white = data.whitened(0.1).pixels
    assert torch.allclose(white(x), ref(x.float() / data.scale), atol=1e-5, rtol=0)
    assert torch.allclose(white(xt), ref(xt.float() / data.scale), atol=1e-5, rtol=0)
    other = kornia.enhance.ZCAWhitening(eps=0.01)
    other.fit(x.float() / data.scale)
    assert torch.allclose(data.whitened(0.01).pixels(xt), other(xt.float() / data.scale), atol=1e-5, rtol=0)


def test_zca_is_fitted_once_per_node_and_shared(tmp_path, monkeypatch):
    from tests.test_data_plane import imagenet_shaped

    root = imagenet_shaped(tmp_path / "inet")
    cache = NodeCache(tmp_path / "cache")
    first = zca_pixels(load_dataset("imagefolder", root, cache=cache, image_size=8).train, 0.1)
    assert [e.meta["describe"]["eps"] for e in cache.entries() if e.kind == "zca"] == [0.1]
    clear_cache()
    import ddray.data.zca as zca

    def refuse(*a, **k):
        raise AssertionError("fitted again")

    monkeypatch.setattr(zca, "fit_zca", refuse)
    again = zca_pixels(load_dataset("imagefolder", root, cache=cache, image_size=8).train, 0.1)
    assert torch.equal(again.matrix, first.matrix) and torch.equal(again.center, first.center)


def test_rdm_and_test_pixels_of_a_zca_trial_are_whitened_with_the_train_fit(tmp_path):
    from ddray.run.worker_env import WorkerEnv, load_data

    spec = _spec(zca=True)
    trial = next(t for t in planned(spec).stage("eval") if t.config.arm == "rdm")
    data = load_data(trial.config, WorkerEnv(store=str(tmp_path)))
    x = data.train.tensor()
    t, mu = fit_zca([x.numpy()], 0.1, data.scale)
    flat = (x.float() / data.scale).reshape(len(x), -1)
    expected = ((flat - torch.from_numpy(mu)) @ torch.from_numpy(t)).reshape(x.shape)
    assert torch.allclose(data.pixels(x), expected, atol=1e-6)


def test_sets_reach_a_zca_student_whitened_like_the_real_images():
    """ddray's (normalized) sets and a user's [0, 1] pixels are whitened; whitened tensors are kept."""
    from ddray.methods.files import _normalize
    from ddray.run.stages import in_zca_space
    from ddray.trials import EvalConfig

    data = load_dataset("digits", None)
    white = data.whitened(0.1)
    x = data.train.take(torch.arange(20))
    syn = next(t.config for t in planned(_spec(zca=True)).stage("eval") if t.config.arm == "syn")
    assert isinstance(syn, EvalConfig) and syn.method.kind != "files"
    ours = in_zca_space(data.pixels(x), syn, white)  # what the random method stored: normalized images
    assert torch.allclose(ours, white.pixels(x), atol=1e-5)
    assert torch.allclose(_normalize(x.float() / data.scale, white), white.pixels(x), atol=1e-6)
    files = syn.model_copy(update={"method": syn.method.model_copy(update={"kind": "files"})})
    assert in_zca_space(ours, files, white) is ours
    assert in_zca_space(ours, syn, data) is ours  # no ZCA: as it is


# ---------------------------------------------------------------- transforms
def _images(n=6, c=3, s=12, seed=0):
    return torch.randint(0, 256, (n, c, s, s), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_random_crop_with_padding_equals_torchvision_on_the_same_offsets():
    import torchvision.transforms.functional as TF

    x = _images()
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    norm = lambda t: TF.normalize(t.float() / 255, mean, std)  # noqa: E731
    gen = torch.Generator().manual_seed(3)
    top, left = torch.randint(0, 9, (6,), generator=gen), torch.randint(0, 9, (6,), generator=gen)
    ours = crop_at(norm(x), 4, top, left, fill=[-m / s for m, s in zip(mean, std)])
    for i in range(len(x)):  # torchvision: pad the pixels with 0, crop, then normalize (ToTensor, Normalize)
        ref = norm(TF.crop(TF.pad(x[i], [4]), int(top[i]), int(left[i]), 12, 12).unsqueeze(0))[0]
        assert torch.allclose(ours[i], ref, atol=1e-6)
    drawn = random_crop(norm(x).repeat(40, 1, 1, 1), torch.Generator().manual_seed(0), 4)
    assert drawn.shape == (240, 3, 12, 12)


def test_random_crop_draws_every_offset_torchvision_can():
    x = torch.arange(4 * 4, dtype=torch.float32).view(1, 1, 4, 4).repeat(400, 1, 1, 1)
    out = random_crop(x, torch.Generator().manual_seed(0), 2)
    corners = {float(o[0, 0, 0]) for o in out}  # the top-left pixel tells the offset
    assert corners == {0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 9.0, 10.0}  # every (top, left) in [0, 4]², zeros padded


def test_gaussian_noise_equals_torchvision_after_normalize():
    from torchvision.transforms import v2

    x = torch.randn(5, 3, 8, 8)
    gen = torch.Generator().manual_seed(11)
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(11)))
    ours = gaussian_noise(x, gen, 0.1)
    torch.manual_seed(seed)
    ref = v2.GaussianNoise(mean=0.0, sigma=0.1, clip=False)(x)
    assert torch.allclose(ours, ref, atol=1e-7)


@pytest.mark.parametrize("size,resized", [(64, 72), (32, 32), (28, 32)])
def test_test_resize_equals_torchvision_resize_and_center_crop(size, resized):
    """Batched on the stored uint8 pixels: torchvision's v2 transforms image by image, to the bit,
    and DD-Ranking's path (v1 transforms on the PIL image) to within 2 of 255."""
    from torchvision import transforms as T
    from torchvision.transforms import v2

    x = _images(s=size)
    ours = resize_center_crop(resized / size)(x)
    ref = v2.Compose([v2.Resize(resized, antialias=True), v2.CenterCrop(size)])
    assert torch.equal(ours, torch.stack([ref(img) for img in x]))
    pil = T.Compose([T.ToPILImage(), T.Resize(resized), T.CenterCrop(size), T.PILToTensor()])
    assert (ours.int() - torch.stack([pil(img) for img in x]).int()).abs().max() <= 2


def test_patch_shuffle_refuses_one_which_ddranking_does_as_the_identity():
    with pytest.raises(ValueError):
        Augment(patch_shuffle=1)


# ---------------------------------------------------------------- losses
def test_mse_gt_weights_follow_ddranking_msegtloss():
    s, t = torch.randn(8, 10), torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    loss = soft_loss("mse_gt", mse_gamma=0.025, mse_weight=1.0)(s, t, y)
    ref = 1.0 * F.mse_loss(s, t) + 0.025 * F.cross_entropy(s, y)
    assert torch.allclose(loss, ref)
    half = soft_loss("mse_gt", mse_gamma=0.0, mse_weight=0.5)(s, t, y)
    assert torch.allclose(half, 0.5 * F.mse_loss(s, t))


# ---------------------------------------------------------------- what the student sees
def _spec(**overrides) -> dict:
    return {"name": "knobs", "datasets": {"digits": {}}, "methods": {"random": {}}, "ipc": [10],
            "archs": ["convnet-d1-w16"], "seeds": [0], "protocol": "ddranking-soft",
            "overrides": {"epochs": 1, "batch_size": 16, "labels": "hard", "loss": "ce", **overrides},
            "full": {"epochs": 1}}


class _Seen:
    """Records the input batches of every forward of the student (a real hook on the real model)."""

    def __init__(self):
        self.batches: list[torch.Tensor] = []

    def __enter__(self):
        def hook(module, args):
            if module.__class__.__name__ == "ConvNet":
                self.batches.append(args[0].detach().clone())

        self.handle = nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _train_as_planned(config, data, x, y):
    with _Seen() as seen:
        train_student(x, y, data, config.arch, config.recipe, labels=config.labels, aug=config.aug, seed=0,
                      device=CPU, arm=config.arm, pixels=data.pixels if config.arm == "rdm" else None)
    return seen.batches[:-1]  # the last forward is the test evaluation


def test_syn_batch_size_is_the_batch_of_syn_and_rdm_arms_and_real_batch_size_the_full_arm():
    from ddray.engine import rdm_arm, train_teacher

    data = load_dataset("digits", None)
    trials = planned(_spec(syn_batch_size=32, real_batch_size=512)).stage("eval")
    rdm = next(t.config for t in trials if t.config.arm == "rdm" and t.config.aug)
    assert "real_batch_size" not in rdm.protocol_dump()  # an eval arm's key does not hold the full arm's knob
    full = next(t.config for t in planned(_spec(syn_batch_size=32, real_batch_size=512)).stage("full"))
    assert full.recipe.batch_for("full") == 512
    x, y = rdm_arm(data, rdm.ipc, rdm.seed)
    sizes = [len(b) for b in _train_as_planned(rdm, data, x, y)]
    assert sizes == [32, 32, 32, 4]  # 100 images in batches of syn_batch_size, not batch_size 16
    recipe = resolve_protocol("full", {"epochs": 1, "real_batch_size": 512})
    with _Seen() as seen:
        train_teacher(data, "convnet-d1-w16", recipe, 0, CPU)
    assert [len(b) for b in seen.batches[:3]] == [512, 512, 413]


def test_aug_for_hard_false_trains_hard_arms_on_the_plain_batches_and_soft_arms_augmented():
    from ddray.engine import rdm_arm

    data = load_dataset("digits", None)
    spec = _spec(aug_for_hard=False, augment={"flip": True, "cutmix": None, "rrc": False})
    spec["overrides"].update(labels="soft", loss="kl")
    spec["teachers"] = {"arch": "convnet-d1-w16"}
    evals = [t.config for t in planned(spec).stage("eval")]
    hard = next(c for c in evals if c.labels == "hard")
    soft = next(c for c in evals if c.labels == "soft" and c.aug and c.arm == "rdm")
    assert hard.aug is False and "aug_for_hard" not in hard.protocol_dump() and "augment" not in hard.protocol_dump()
    x, y = rdm_arm(data, 10, 0)
    plain = data.pixels(x)
    seen = _train_as_planned(hard.model_copy(update={"arm": "rdm"}), data, x, y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(seen), plain[order])  # exactly the set's images, in the seeded order
    flipped = torch.cat(_train_as_planned(soft.model_copy(update={"labels": "hard"}), data, x, y))
    assert not torch.equal(flipped, plain[order])  # the same arm with augmentation flips some


def test_a_best_checkpoint_row_records_its_best_epoch_and_old_rows_read_it_as_null(tmp_path):
    """DD-Ranking's test_interval: test every k epochs, report the best; the row says which epoch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import ddray.run.execute as ex
    from ddray.run.worker_env import WorkerEnv
    from ddray.store import Store
    from ddray.store.rows import verify_row

    spec = _spec(checkpoint="best", eval_every=1)
    spec["overrides"]["epochs"] = 4
    trial = next(t for t in planned(spec).stage("eval") if t.config.arm == "rdm")
    seen: dict[int, float] = {}
    row = ex.execute(trial, WorkerEnv(store=str(tmp_path / "store")), CPU,
                     on_epoch=lambda e, m: seen.__setitem__(e, m["top1"]))
    best = max(seen, key=lambda e: (seen[e], -e))  # the first epoch of the highest test accuracy
    assert row.best_epoch == best and row.top1 == seen[best] and row.epochs_run == 4
    Store(str(tmp_path / "store")).write_row(row)
    path = tmp_path / "store" / "rows" / "eval" / f"{row.key}.parquet"
    old = pq.read_table(path).drop_columns(["best_epoch"])  # a row stored before the column existed
    buf = pa.BufferOutputStream()
    pq.write_table(old, buf)
    table, problem = verify_row("eval", path.name, buf.getvalue().to_pybytes())
    assert problem is None and table.column("best_epoch").to_pylist() == [None]
    assert table.column("top1").to_pylist() == [row.top1]


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.slow  # decodes Fashion-MNIST, fits ZCA on its 60000 train images, trains 9 trials (~1 min)
def test_zca_study_on_fashion_mnist_runs_end_to_end_and_is_reported_as_its_own_track(tmp_path):
    """Hard labels, a small slice (IPC 1, one seed, 2 epochs), ZCA on and off in one store."""
    import os

    import ddray.run.execute as ex
    from ddray.report.build import build_report
    from ddray.run.worker_env import WorkerEnv
    from ddray.store import Store

    if not os.path.isfile(os.path.join(FASHION, "train-images-idx3-ubyte.gz")):
        pytest.skip(f"Fashion-MNIST is not installed at {FASHION} (apt-get install dataset-fashion-mnist)")
    store = Store(str(tmp_path / "store"))
    base = {"name": "fmnist", "datasets": {"fashion-mnist": {}}, "methods": {"random": {}}, "ipc": [1],
            "archs": ["convnet-d1-w16"], "seeds": [0], "protocol": "ddranking-hard",
            "overrides": {"epochs": 2, "augment": {"dsa": False, "flip": True}}, "full": {"epochs": 1}}
    zca = {**base, "name": "fmnist-zca", "overrides": {**base["overrides"], "zca": True}}
    trials = {t.key: t for spec in (base, zca) for t in planned(spec).trials}
    env = WorkerEnv(store=str(tmp_path / "store"))
    for trial in sorted(trials.values(), key=lambda t: ("full", "synth", "search", "eval").index(t.stage)):
        row = ex.execute(trial, env, CPU)
        assert row.status == "ok" and (row.top1 is None or 0.0 <= row.top1 <= 1.0)
        store.write_row(row)
    zca_evals = [t for t in trials.values() if t.stage == "eval" and t.config.protocol.zca]
    assert len(zca_evals) == 4  # syn and rdm, aug on and off, all whitened
    report = build_report(store.read_rows(), n_boot=10)
    tracks = set(report.scores["track"])
    assert tracks == {"fixed:zca=true", "fixed:zca=null"}, tracks
    assert report.scores["lrs_mean"].notna().all()


def test_a_zca_study_may_share_a_store_with_the_plain_one_but_not_change_its_epochs():
    from ddray.stored import conflicts
    from ddray.keys import canonical_json

    plain = planned(_spec()).trials
    stored = [canonical_json(t.config) for t in plain]
    assert conflicts(planned(_spec(zca=True)).trials, stored) == []  # a study of its own
    changed = _spec()
    changed["overrides"]["epochs"] = 2
    assert conflicts(planned(changed).trials, stored)  # the same measurement made another way


def _ddranking_shuffle_patches(img: torch.Tensor, factor: int, col_perm, row_perm) -> torch.Tensor:
    """DD-Ranking's ShufflePatches(factor) on one C×H×W image, its random.shuffle replaced by given orders."""
    def shuffle(im, order):
        tw = im.shape[2] // factor
        patches = [im[..., i * tw:(i + 1) * tw] for i in range(factor)]
        return torch.cat([patches[j] for j in order], -1)

    img = shuffle(img, col_perm).permute(0, 2, 1)
    return shuffle(img, row_perm).permute(0, 2, 1)


def test_patch_shuffle_strips_is_ddrankings_shuffle_patches():
    from ddray.engine.augment import patch_shuffle

    x = torch.randn(5, 3, 12, 12)
    out = patch_shuffle(x, torch.Generator().manual_seed(4), 3, strips=True)
    gen = torch.Generator().manual_seed(4)  # the same draws: column orders, then row orders
    cols = torch.argsort(torch.rand(5, 3, generator=gen), dim=1)
    rows = torch.argsort(torch.rand(5, 3, generator=gen), dim=1)
    for i in range(5):
        assert torch.equal(out[i], _ddranking_shuffle_patches(x[i], 3, cols[i].tolist(), rows[i].tolist()))
    grid = patch_shuffle(x, torch.Generator().manual_seed(4), 3)
    assert not torch.equal(grid, out)  # the default permutes the 9 patches freely
    assert "patch_shuffle_strips" not in Augment(patch_shuffle=2).model_dump()


def test_a_zca_study_beside_two_presets_keeps_a_track_of_its_own():
    """Preset names label the tracks; a ZCA study of a preset also present plain says what differs."""
    from ddray.report.variants import _differences

    labels = _differences([{"name": "ddranking-hard", "epochs": 1000}, {"name": "ddranking-soft", "epochs": 300},
                           {"name": "ddranking-hard", "epochs": 300, "zca": True}])
    assert labels == ["ddranking-hard,epochs=1000,zca=null", "ddranking-soft", "ddranking-hard,epochs=300,zca=true"]

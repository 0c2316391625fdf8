"""`files` (a user's own sets: .pt folder, .pt file, .npz, ImageFolder) and save/load of sets."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.fs as pafs
import pytest
import torch
from PIL import Image

from ddray.data import load_dataset
from ddray.errors import InputError
from ddray.methods import (
    DistilledSet,
    FilesParams,
    SynthContext,
    class_major_labels,
    get_method,
    load_distilled,
    load_files,
    save_distilled,
    synthesize,
)

IPC = 2


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _set(digits, soft: bool = False, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(IPC * digits.num_classes, *digits.image_shape, generator=g)
    labels = torch.randn(IPC * 10, 10, generator=g) if soft else class_major_labels(10, IPC)
    return images, labels


def _write_pt(folder, **tensors) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, t in tensors.items():
        torch.save(t, folder / f"{name}.pt")


def test_pt_folder_with_template_soft_labels_and_lr(tmp_path, digits):
    images, labels = _set(digits, soft=True)
    _write_pt(tmp_path / "digits" / f"ipc{IPC}", images=images, labels=labels, lr=torch.tensor(0.03))
    ds = load_files(str(tmp_path / "{dataset}" / "ipc{ipc}"), digits, IPC, lr="set")
    assert torch.equal(ds.images, images) and torch.equal(ds.labels, labels)
    assert ds.soft and ds.lr == pytest.approx(0.03)


def test_a_shipped_lr_is_used_or_refused_never_dropped(tmp_path, digits):
    images, labels = _set(digits)
    _write_pt(tmp_path / "with", images=images, labels=labels, lr=torch.tensor(0.03))
    with pytest.raises(InputError, match=r"with/lr\.pt: the set ships its own learning rate \(0\.03\).*`lr: set`.*`lr: protocol`"):
        load_files(str(tmp_path / "with"), digits, IPC)
    assert load_files(str(tmp_path / "with"), digits, IPC, lr="protocol").lr is None  # the user's explicit choice
    _write_pt(tmp_path / "without", images=images, labels=labels)
    assert load_files(str(tmp_path / "without"), digits, IPC).lr is None
    with pytest.raises(InputError, match=r"without/lr\.pt: lr: set, but this set ships no learning rate"):
        load_files(str(tmp_path / "without"), digits, IPC, lr="set")


def test_mtt_file_names(tmp_path, digits):
    """MTT saves images_best.pt, labels_best.pt and syn_lr_best.pt (a tensor that required grad)."""
    images, labels = _set(digits)
    torch.save(images, tmp_path / "images_best.pt")
    torch.save(labels, tmp_path / "labels_best.pt")
    torch.save(torch.tensor(0.01, requires_grad=True), tmp_path / "syn_lr_best.pt")
    ds = load_files(str(tmp_path), digits, IPC, lr="set")
    assert torch.equal(ds.images, images) and torch.equal(ds.labels, labels) and ds.lr == pytest.approx(0.01)
    torch.save(images, tmp_path / "images.pt")
    with pytest.raises(InputError, match=r"holds images\.pt and images_best\.pt: keep one images file"):
        load_files(str(tmp_path), digits, IPC)


def test_pt_folder_without_labels_gets_class_major_hard_labels(tmp_path, digits):
    images, _ = _set(digits)
    _write_pt(tmp_path, images=images)
    ds = load_files(str(tmp_path), digits, IPC)
    assert torch.equal(ds.labels, class_major_labels(10, IPC)) and ds.lr is None


def test_shuffled_hard_labels_are_reordered_class_major(tmp_path, digits):
    images, labels = _set(digits)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    _write_pt(tmp_path, images=images[perm], labels=labels[perm])
    ds = load_files(str(tmp_path), digits, IPC)
    assert torch.equal(ds.labels, labels)
    for c in range(10):  # same images per class, whatever the order inside the class
        got = {tuple(x.flatten().tolist()) for x in ds.images[ds.labels == c]}
        assert got == {tuple(x.flatten().tolist()) for x in images[labels == c]}


def test_npz_and_single_pt_file(tmp_path, digits):
    images, labels = _set(digits)
    np.savez(tmp_path / "set.npz", images=images.numpy(), labels=labels.numpy(), lr=np.float32(0.5))
    ds = load_files(str(tmp_path / "set.npz"), digits, IPC, lr="set")
    assert torch.equal(ds.images, images) and torch.equal(ds.labels, labels) and ds.lr == 0.5
    torch.save({"images": images, "labels": labels}, tmp_path / "set.pt")
    assert torch.equal(load_files(str(tmp_path / "set.pt"), digits, IPC).images, images)


def test_unnormalized_pixels_are_normalized(tmp_path, digits):
    unit = torch.rand(IPC * 10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    _write_pt(tmp_path, images=unit)
    ds = load_files(str(tmp_path), digits, IPC, normalized=False)
    mean, std = digits.mean[0], digits.std[0]
    assert torch.allclose(ds.images, (unit - mean) / std)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        _write_pt(tmp_path, images=unit * 255)
        load_files(str(tmp_path), digits, IPC, normalized=False)


def test_image_folder_named_by_class(tmp_path, digits):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(10, IPC, 8, 8), dtype=np.uint8)
    for c in range(10):
        (tmp_path / str(c)).mkdir()
        for i in range(IPC):
            Image.fromarray(pixels[c, i], mode="L").save(tmp_path / str(c) / f"{i}.png")
    ds = load_files(str(tmp_path), digits, IPC)
    expected = (torch.from_numpy(pixels).float().div(255).reshape(-1, 1, 8, 8) - digits.mean[0]) / digits.std[0]
    assert torch.allclose(ds.images, expected, atol=1e-6)
    assert torch.equal(ds.labels, class_major_labels(10, IPC))


def test_image_folder_wrong_size_names_the_file(tmp_path, digits):
    for c in range(10):
        (tmp_path / str(c)).mkdir()
        for i in range(IPC):
            Image.new("L", (9 if (c, i) == (3, 1) else 8, 8)).save(tmp_path / str(c) / f"{i}.png")
    with pytest.raises(InputError, match=r"3/1\.png.*expected 8×8"):
        load_files(str(tmp_path), digits, IPC)


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (torch.randn(20, 3, 8, 8), None, r"images\.pt: images have shape \(20, 3, 8, 8\); expected \(20, 1, 8, 8\)"),
        (torch.randn(19, 1, 8, 8), None, r"images\.pt: .*expected \(20, 1, 8, 8\)"),
        (torch.full((20, 1, 8, 8), float("nan")), None, r"images\.pt: images contain 1280 non-finite"),
        (torch.randn(20, 1, 8, 8), torch.arange(20) % 11, r"labels\.pt: labels range over \[0, 10\]; expected class ids in \[0, 10\)"),
        (torch.randn(20, 1, 8, 8), torch.zeros(20, dtype=torch.long), r"labels\.pt: labels give \[20, 0"),
        (torch.randn(20, 1, 8, 8), torch.randn(20, 7), r"labels\.pt: soft labels have shape \(20, 7\); expected \(20, 10\)"),
        (torch.randn(20, 1, 8, 8), torch.full((20, 10), float("inf")), r"labels\.pt: soft labels must be finite"),
    ],
)
def test_bad_sets_name_the_file(tmp_path, digits, images, labels, match):
    tensors = {"images": images} if labels is None else {"images": images, "labels": labels}
    _write_pt(tmp_path, **tensors)
    with pytest.raises(InputError, match=match):
        load_files(str(tmp_path), digits, IPC)


def test_every_problem_of_a_set_is_reported_with_its_own_file(tmp_path, digits):
    _write_pt(tmp_path, images=torch.randn(20, 3, 8, 8), labels=torch.arange(20) % 11, lr=torch.tensor([1.0, 2.0]))
    with pytest.raises(InputError) as e:
        load_files(str(tmp_path), digits, IPC)
    assert [line.split(": ", 1)[0] for line in e.value.problems] == [
        str(tmp_path / "images.pt"), str(tmp_path / "labels.pt"), str(tmp_path / "lr.pt")]


def test_numpy_float_class_ids_become_int64(tmp_path, digits):
    images, labels = _set(digits)
    np.savez(tmp_path / "set.npz", images=images.double().numpy(), labels=labels.double().numpy())
    ds = load_files(str(tmp_path / "set.npz"), digits, IPC)
    assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64 and torch.equal(ds.labels, labels)
    np.savez(tmp_path / "half.npz", images=images.numpy(), labels=labels.numpy() + 0.5)
    with pytest.raises(InputError, match=r"half\.npz: hard labels must be integers"):
        load_files(str(tmp_path / "half.npz"), digits, IPC)


def test_bad_lr_and_missing_path(tmp_path, digits):
    images, _ = _set(digits)
    _write_pt(tmp_path / "a", images=images, lr=torch.tensor(-1.0))
    with pytest.raises(InputError, match=r"lr\.pt: lr must be one positive"):
        load_files(str(tmp_path / "a"), digits, IPC)
    with pytest.raises(InputError, match=r"ipc2: not found; expected a folder with images\.pt"):
        load_files(str(tmp_path / "ipc{ipc}"), digits, IPC)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images.pt"):
        load_files(str(tmp_path / "empty"), digits, IPC)


def test_pickles_are_refused(tmp_path, digits):
    tmp_path.joinpath("images.pt").write_bytes(b"not a tensor file")
    with pytest.raises(InputError, match=r"images\.pt: cannot read as a tensor file"):
        load_files(str(tmp_path), digits, IPC)
    np.savez(tmp_path / "obj.npz", images=np.array([object()], dtype=object))
    with pytest.raises(InputError, match=r"obj\.npz: cannot read as \.npz"):
        load_files(str(tmp_path / "obj.npz"), digits, IPC)


def test_files_method_through_the_registry(tmp_path, digits):
    images, labels = _set(digits)
    _write_pt(tmp_path / "ipc2", images=images, labels=labels)
    entry = get_method("files")
    params = entry.params({"files": str(tmp_path / "ipc{ipc}")})
    ds = synthesize(entry, SynthContext(digits, IPC, 0, params, None, torch.device("cpu")))
    assert torch.equal(ds.images, images) and ds.synth_seconds is None  # loading is not synthesizing
    with pytest.raises(ValueError, match=r"unknown placeholder \{seed\}"):
        FilesParams(files="/x/{seed}")
    with pytest.raises(ValueError, match="extra"):
        entry.params({"files": "/x", "normalised": False})


def test_save_load_roundtrip_local_and_subtree_fs(tmp_path, digits):
    images, labels = _set(digits, soft=True)
    ds = DistilledSet(images, labels, lr=0.01, synth_seconds=1.5, device="cpu")
    save_distilled(ds, None, str(tmp_path / "a" / "b"))
    back = load_distilled(None, str(tmp_path / "a" / "b"))
    assert torch.equal(back.images, images) and torch.equal(back.labels, labels)
    assert (back.lr, back.synth_seconds, back.device) == (0.01, 1.5, "cpu")
    sub = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    save_distilled(DistilledSet(images, class_major_labels(10, IPC)), sub, "artifacts/distilled/k1")
    meta = json.loads((tmp_path / "artifacts/distilled/k1/meta.json").read_text())
    assert meta["labels"] == "hard" and meta["lr"] is None
    # a saved set is also a valid `files` folder, keeping its own time-to-synthesize
    again = load_files(str(tmp_path / "a" / "b"), digits, IPC, lr="set")
    assert torch.equal(again.images, images) and again.synth_seconds == 1.5 and again.lr == pytest.approx(0.01)


def test_load_without_meta_is_an_interrupted_save(tmp_path):
    _write_pt(tmp_path, images=torch.zeros(1, 1, 8, 8), labels=torch.zeros(1, dtype=torch.long))
    with pytest.raises(InputError, match="meta.json"):
        load_distilled(None, str(tmp_path))


@pytest.mark.parametrize("lr, says", [(float("nan"), "got nan"), (-1.0, "got -1"), (0.0, "got 0"),
                                      (float("inf"), "got inf"), ([0.1, 0.2], r"got shape \(2,\)")])
def test_bad_lr_says_what_it_is(tmp_path, digits, lr, says):
    images, _ = _set(digits)
    _write_pt(tmp_path, images=images, lr=torch.tensor(lr))
    with pytest.raises(InputError, match=r"lr\.pt: lr must be one positive finite number; " + says):
        load_files(str(tmp_path), digits, IPC)


def test_sets_are_checked_against_the_dataset_meta_alone(tmp_path, digits):
    """Spec validation reads each set with the dataset's meta (no pixels loaded): same checks."""
    from ddray.methods.files import read_files

    meta = digits.meta()
    unit = torch.rand(IPC * 10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    _write_pt(tmp_path, images=unit)
    ds, pixels = read_files(str(tmp_path), meta, IPC, normalized=False)
    assert pixels and torch.equal(ds.images, unit)  # normalizing needs the real data's mean/std: left to load_files
    _write_pt(tmp_path, images=torch.full((IPC * 10, 1, 8, 8), float("nan")))
    with pytest.raises(InputError, match="non-finite"):
        read_files(str(tmp_path), meta, IPC)


# ---------------------------------------------------------------- ImageFolders as SRe2L / RDED release them

WNIDS = ["n01440764", "n01443537", "n01484850"]  # ImageNet's first three classes, sorted like torchvision's


@pytest.fixture(scope="module")
def wnid_data(tmp_path_factory):
    """A tiny real ImageFolder named by wnid (3 classes, 16×16 RGB): the classes a distilled set must match."""
    root = tmp_path_factory.mktemp("wnid-data")
    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("val", 1)):
        for wnid in WNIDS:
            (root / split / wnid).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / split / wnid / f"{i}.png")
    data = load_dataset("imagefolder", str(root))
    assert data.classes == WNIDS
    return data


def _distilled_folder(root, names: list[str], pixels: np.ndarray) -> str:
    """One class folder per name holding that class's images (pixels: classes × IPC × H × W × 3)."""
    for name, cls_pixels in zip(names, pixels):
        (root / name).mkdir(parents=True)
        for i, p in enumerate(cls_pixels):
            Image.fromarray(p).save(root / name / f"{i:05d}.png")
    return str(root)


def test_sre2l_index_folders_and_wnid_folders_give_the_same_labels(tmp_path, wnid_data, capfd):
    pixels = np.random.default_rng(2).integers(0, 256, (3, IPC, 16, 16, 3), dtype=np.uint8)
    by_index = load_files(_distilled_folder(tmp_path / "sre2l", ["new000", "new001", "new002"], pixels), wnid_data, IPC)
    log = capfd.readouterr().err
    by_wnid = load_files(_distilled_folder(tmp_path / "wnid", WNIDS, pixels), wnid_data, IPC)
    rded = load_files(_distilled_folder(tmp_path / "rded", ["00000", "00001", "00002"], pixels), wnid_data, IPC)
    assert torch.equal(by_index.labels, class_major_labels(3, IPC))
    for other in (by_wnid, rded):
        assert torch.equal(other.labels, by_index.labels) and torch.equal(other.images, by_index.images)
    assert "3 class folders matched to the classes of" in log and "by index in the folder name" in log
    assert "new000 -> 0 (n01440764), new001 -> 1 (n01443537)" in log
    assert "by class name: n01440764 -> 0 (n01440764)" in capfd.readouterr().err


@pytest.mark.parametrize(
    "names, match",
    [
        (["new000", "new001", "new003"], r"new003: names class index 3, but .* has 3 classes \(0 to 2\)"),
        (["new000", "new001"], r"sets/x: has 2 class folders, but .* has 3 classes: no folder \(matched by index "
                               r"in the folder name\) for 1 class\(es\): 2 \(n01484850\)"),
        (["n01440764", "n01443537", "n09999999"], r"x/n09999999: matches no class of .* named like n01440764"),
        (["new000", "new001", "new01"], r"x/new01: names class 1 \(n01443537\), as folder 'new001' does"),
        (["tench", "goldfish", "shark"], r"x/goldfish: class folder 'goldfish' matches no class of .*: name the 3 "
                                         r"class folders like its classes \(n01440764, n01443537, n01484850\) or by class index"),
    ],
)
def test_class_folders_that_do_not_fit_name_the_folder(tmp_path, wnid_data, names, match):
    pixels = np.zeros((len(names), IPC, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(InputError, match=match):
        load_files(_distilled_folder(tmp_path / "sets" / "x", names, pixels), wnid_data, IPC)


def test_files_method_trains_with_the_sets_lr_only_when_asked(tmp_path, digits):
    """`lr` is a param the spec writes, so it is in the syn trials' keys; unset it is absent from them."""
    from conftest import planned

    images, labels = _set(digits)
    _write_pt(tmp_path / "ipc1", images=images[::2], labels=labels[::2], lr=torch.tensor(0.05))
    spec = {"name": "lr", "datasets": {"digits": {}}, "ipc": [1], "archs": ["convnet-d1-w16"], "seeds": [0],
            "protocol": "ddranking-hard", "overrides": {"epochs": 1},
            "methods": {"mine": {"files": str(tmp_path / "ipc{ipc}")}}}
    default = {t.key: t for t in planned(spec).trials}
    spec["methods"]["mine"]["lr"] = "set"
    chosen = {t.key: t for t in planned(spec).trials}
    syn = [t for t in chosen.values() if getattr(t.config, "arm", None) == "syn"]
    assert syn and all(t.config.method.params == {"lr": "set"} for t in syn)
    assert not any(t.key in default for t in syn)  # the choice changes the syn arms' numbers, so their keys
    assert {k for k, t in chosen.items() if t not in syn} <= set(default)  # rdm and full arms are shared
    assert all("lr" not in t.config.method.params for t in default.values() if getattr(t.config, "method", None))


def _files_spec(files: str, **params) -> dict:
    return {"name": "lr", "datasets": {"digits": {}}, "ipc": [IPC], "archs": ["convnet-d1-w16"], "seeds": [0],
            "protocol": "ddranking-hard", "methods": {"mine": {"files": files, **params}}}


def _problems(spec: dict) -> list[str]:
    from ddray.spec import parse_spec
    from ddray.spec_check import check_spec

    try:
        check_spec(parse_spec(spec))
    except InputError as e:
        return e.problems
    return []


def test_validation_asks_how_to_use_a_shipped_lr(tmp_path, digits):
    images, labels = _set(digits)
    _write_pt(tmp_path / "folder", images=images, labels=labels, lr=torch.tensor(0.03))
    np.savez(tmp_path / "set.npz", images=images.numpy(), lr=np.float32(0.03))
    torch.save({"images": images, "lr": torch.tensor(0.03)}, tmp_path / "set.pt")
    for path in (tmp_path / "folder", tmp_path / "set.npz", tmp_path / "set.pt"):
        assert [p.split(": ", 2)[:2] for p in _problems(_files_spec(str(path)))] == [["methods.mine.files", str(path)]]
        assert "`lr: set`" in _problems(_files_spec(str(path)))[0]
        assert _problems(_files_spec(str(path), lr="set")) == _problems(_files_spec(str(path), lr="protocol")) == []
    _write_pt(tmp_path / "plain", images=images, labels=labels)
    assert _problems(_files_spec(str(tmp_path / "plain"))) == []
    assert _problems(_files_spec(str(tmp_path / "plain"), lr="set")) == [
        f"methods.mine.lr: 'set', but {tmp_path / 'plain'} ships no learning rate (no lr.pt / lr entry)"]


def test_lr_set_beside_an_lr_search_is_refused(tmp_path, digits):
    images, labels = _set(digits)
    _write_pt(tmp_path, images=images, labels=labels, lr=torch.tensor(0.03))
    spec = _files_spec(str(tmp_path), lr="set")
    spec["overrides"] = {"lr": [0.01, 0.1]}
    assert any(p.startswith("methods.mine.lr: 'set' trains the syn arm with the set's own lr") for p in _problems(spec))


def test_syn_arm_trains_with_the_sets_lr_and_rdm_with_the_protocols(tmp_path, digits):
    """`lr: set` reaches the engine (the epoch callback sees the lr it trains with); rdm keeps the protocol's."""
    from conftest import planned
    from ddray.run.execute import execute
    from ddray.run.worker_env import WorkerEnv

    images, labels = _set(digits, seed=3)
    _write_pt(tmp_path / "set" / "ipc1", images=images[::2], labels=labels[::2], lr=torch.tensor(0.05))
    spec = _files_spec(str(tmp_path / "set" / "ipc{ipc}"), lr="set")
    spec.update(ipc=[1], overrides={"epochs": 1, "batch_size": 16})
    trials = {(t.config.arm, t.config.aug): t for t in planned(spec).stage("eval")}
    env = WorkerEnv(store=str(tmp_path / "store"))
    seen: dict[str, float] = {}
    for arm in ("syn", "rdm"):
        execute(trials[(arm, False)], env, torch.device("cpu"), on_epoch=lambda _e, m, arm=arm: seen.setdefault(arm, m["lr0"]))
    assert seen == {"syn": pytest.approx(0.05), "rdm": pytest.approx(0.01)}  # ddranking-hard's lr is 0.01

"""Dataset registry: every format written small into tmp_path and read back through the registry."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddray.data import clear_cache, dataset_meta, list_datasets, load_dataset
from ddray.data.digits import stratified_split
from ddray.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from ddray.errors import InputError

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDRAY_CACHE_DIR", str(tmp_path / "node-cache"))
    clear_cache()
    yield
    clear_cache()


def denormalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    c = x.shape[1]
    return x * torch.tensor(std).view(1, c, 1, 1) + torch.tensor(mean).view(1, c, 1, 1)


def normalized(data, split: str = "train") -> torch.Tensor:
    """A whole split as the network sees it: stored pixels through the data's PixelSpec."""
    return data.pixels(getattr(data, split).tensor())


# --- writers for each real format ----------------------------------------------------------------
def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int], label_key: bytes = b"labels") -> None:
    batch = {b"batch_label": b"test", label_key: labels, b"data": data, b"filenames": [b"x.png"] * len(labels)}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def make_cifar10(root: Path, per_batch: int = 4, test: int = 6) -> tuple[np.ndarray, np.ndarray]:
    root.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        data = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in RNG.integers(0, 10, per_batch)]
        write_cifar_batch(root / f"data_batch_{i}", data, labels)
        xs.append(data)
        ys += labels
    write_cifar_batch(root / "test_batch", RNG.integers(0, 256, (test, 3072), dtype=np.uint8),
                      [int(v) for v in RNG.integers(0, 10, test)])
    names = [n.encode() for n in ["airplane", "automobile", "bird", "cat", "deer",
                                  "dog", "frog", "horse", "ship", "truck"]]
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f, protocol=2)
    return np.concatenate(xs), np.array(ys)


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    raw = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw += array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def make_idx(root: Path, gz: bool, n_train: int = 12, n_test: int = 5) -> tuple[np.ndarray, np.ndarray]:
    root.mkdir(parents=True)
    ext = ".gz" if gz else ""
    tr_x = RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    tr_y = np.arange(n_train) % 10
    write_idx(root / f"train-images-idx3-ubyte{ext}", tr_x, IMAGES_MAGIC)
    write_idx(root / f"train-labels-idx1-ubyte{ext}", tr_y, LABELS_MAGIC)
    write_idx(root / f"t10k-images-idx3-ubyte{ext}", RNG.integers(0, 256, (n_test, 28, 28)), IMAGES_MAGIC)
    write_idx(root / f"t10k-labels-idx1-ubyte{ext}", np.arange(n_test) % 10, LABELS_MAGIC)
    return tr_x, tr_y


def make_imagefolder(root: Path, counts: dict[str, int], size=(12, 10), split: str = "val") -> None:
    for cls, n in counts.items():
        for sub in ("train", split):
            folder = root / sub / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n if sub == "train" else 1):
                arr = RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"{i}.{'png' if i % 2 == 0 else 'jpg'}")


# --- digits (the embedded default) --------------------------------------------------------------
def test_digits_split_shape_and_normalization():
    d = load_dataset("digits")
    assert d.num_classes == 10 and d.image_shape == (1, 8, 8)
    assert len(d.train) == 1437 and len(d.test) == 360 and d.train.dtype == torch.uint8  # 0..16 kept exact
    x = normalized(d)
    assert x.shape == (1437, 1, 8, 8) and x.dtype == torch.float32 and d.train.labels.dtype == torch.int64
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    pixels = denormalize(x, d.mean, d.std) * 16
    assert torch.allclose(pixels, pixels.round(), atol=1e-3) and float(pixels.max()) <= 16.001
    counts = d.train.labels.bincount(minlength=10)
    assert int(counts.min()) >= 139  # stratified: every class keeps ~80 %
    assert load_dataset("digits") is d  # cached per process
    clear_cache()
    again = load_dataset("digits")
    assert again is not d and torch.equal(again.test.labels, d.test.labels) and torch.equal(normalized(again), x)


def test_stratified_split_is_exact():
    y = np.repeat(np.arange(3), [5, 7, 9])
    train, test = stratified_split(y, 0.2, seed=1)
    assert len(test) == 5 and len(train) == 16 and not set(train) & set(test)
    assert sorted(np.bincount(y[test]).tolist()) == [1, 2, 2]


def test_digits_meta_matches_data():
    meta = dataset_meta("digits")
    d = load_dataset("digits")
    assert meta.class_counts == d.train.labels.bincount(minlength=10).tolist()
    assert meta.num_classes == 10 and meta.image_shape == (1, 8, 8) and meta.smallest_class >= 139


# --- CIFAR --------------------------------------------------------------------------------------
def test_cifar10_pickles(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    raw_x, raw_y = make_cifar10(root)
    d = load_dataset("cifar10", root)
    assert d.train.tensor().shape == (20, 3, 32, 32) and d.test.tensor().shape == (6, 3, 32, 32)
    assert d.classes[0] == "airplane" and d.num_classes == 10
    assert torch.equal(d.train.labels, torch.from_numpy(raw_y))
    expected = torch.from_numpy(raw_x.reshape(-1, 3, 32, 32)).float() / 255
    assert torch.allclose(denormalize(normalized(d), d.mean, d.std), expected, atol=1e-5)
    meta = dataset_meta("cifar10", root)
    assert meta.class_counts == np.bincount(raw_y, minlength=10).tolist()
    assert meta.image_shape == (3, 32, 32)


def test_cifar100_fine_labels(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    write_cifar_batch(root / "train", RNG.integers(0, 256, (7, 3072), dtype=np.uint8), [0, 5, 99, 5, 1, 2, 3],
                      label_key=b"fine_labels")
    write_cifar_batch(root / "test", RNG.integers(0, 256, (3, 3072), dtype=np.uint8), [1, 2, 3],
                      label_key=b"fine_labels")
    with open(root / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                     b"coarse_label_names": [b"x"] * 20}, f, protocol=2)
    d = load_dataset("cifar100", root)
    assert d.num_classes == 100 and d.train.labels.tolist() == [0, 5, 99, 5, 1, 2, 3]
    assert dataset_meta("cifar100", root).class_counts[5] == 2


def test_cifar_refuses_code_in_pickles(tmp_path):
    root = tmp_path / "evil"
    make_cifar10(root)
    with open(root / "data_batch_1", "wb") as f:
        pickle.dump(os.getcwd, f)  # any callable other than numpy's array rebuild is refused
    with pytest.raises(InputError, match="data_batch_1"):
        load_dataset("cifar10", root)


def test_cifar_missing_files_are_named(tmp_path):
    with pytest.raises(InputError) as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert msg.startswith("datasets.cifar10.root: ") and "data_batch_1" in msg and "test_batch" in msg
    assert "cifar-10-batches-py" in msg
    with pytest.raises(InputError, match=r"^datasets\.c10\.root: .*does not exist"):
        dataset_meta("cifar10", tmp_path / "nope", field="datasets.c10.root")


# --- idx-ubyte ----------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_idx_plain_and_gzipped(tmp_path, gz):
    root = tmp_path / "mnist"
    tr_x, tr_y = make_idx(root, gz)
    d = load_dataset("mnist", root)
    assert d.train.tensor().shape == (12, 1, 28, 28) and d.test.tensor().shape == (5, 1, 28, 28)
    assert d.train.labels.tolist() == tr_y.tolist()
    assert torch.allclose(denormalize(normalized(d), d.mean, d.std)[:, 0], torch.from_numpy(tr_x).float() / 255, atol=1e-5)
    meta = dataset_meta("fashion-mnist", root)
    assert meta.image_shape == (1, 28, 28) and meta.class_counts == [2, 2] + [1] * 8
    assert meta.classes[0] == "T-shirt/top"


def test_idx_bad_header_and_missing(tmp_path):
    root = tmp_path / "m"
    make_idx(root, gz=False)
    write_idx(root / "train-labels-idx1-ubyte", np.zeros((12, 2, 2)), IMAGES_MAGIC)  # images, not labels
    with pytest.raises(ValueError, match="magic number 2051, expected 2049"):
        read_idx(root / "train-labels-idx1-ubyte", LABELS_MAGIC)
    with pytest.raises(InputError, match="train-labels-idx1-ubyte: magic number 2051"):
        load_dataset("mnist", root)
    write_idx(root / "train-labels-idx1-ubyte", np.zeros(12), LABELS_MAGIC)
    with open(root / "train-labels-idx1-ubyte", "ab") as f:
        f.write(b"xx")
    with pytest.raises(InputError, match="header says 12"):
        load_dataset("mnist", root)
    (root / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(InputError, match="t10k-images-idx3-ubyte"):
        load_dataset("mnist", root)
    with pytest.raises(InputError, match="datasets.mnist.root: required"):
        load_dataset("mnist")


def test_fashion_mnist_installed_copy():
    root = Path("/usr/share/datasets/fashion-mnist")
    if not root.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed")
    meta = dataset_meta("fashion-mnist")  # default root; reads the labels and one header only
    assert meta.num_classes == 10 and meta.image_shape == (1, 28, 28)
    assert meta.class_counts == [6000] * 10
    test_x = read_idx(root / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)
    assert test_x.shape == (10000, 28, 28)


# --- ImageFolder --------------------------------------------------------------------------------
def test_imagefolder_decodes_and_normalizes(tmp_path):
    make_imagefolder(tmp_path / "data", {"cat": 3, "dog": 2, "emu": 1}, size=(12, 10))
    d = load_dataset("imagefolder", tmp_path / "data")
    assert d.classes == ["cat", "dog", "emu"]
    assert d.train.tensor().shape == (6, 3, 10, 12) and d.test.tensor().shape == (3, 3, 10, 12)
    assert d.train.labels.tolist() == [0, 0, 0, 1, 1, 2] and d.test.labels.tolist() == [0, 1, 2]
    flat = normalized(d).transpose(0, 1).reshape(3, -1)
    assert torch.allclose(flat.mean(1), torch.zeros(3), atol=1e-4)
    assert torch.allclose(flat.std(1, unbiased=False), torch.ones(3), atol=1e-3)
    png = np.array(Image.open(tmp_path / "data" / "train" / "cat" / "0.png")).transpose(2, 0, 1)
    assert torch.equal(d.train.take([0])[0], torch.from_numpy(png))  # stored as decoded: uint8
    meta = dataset_meta("imagefolder", tmp_path / "data")
    assert meta.class_counts == [3, 2, 1] and meta.image_shape == (3, 10, 12)


def test_imagefolder_resize_test_split_and_errors(tmp_path):
    root = tmp_path / "data"
    make_imagefolder(root, {"a": 2, "b": 2}, size=(20, 16), split="test")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "train" / "a" / "odd.png")
    with pytest.raises(InputError, match=r"odd\.png: is 9×9, others 20×16: set the 'image_size' option"):
        load_dataset("imagefolder", root).train.tensor()  # the files are listed at load, decoded when read
    d = load_dataset("imagefolder", root, image_size=8)
    assert d.train.tensor().shape == (5, 3, 8, 8) and d.test.tensor().shape == (2, 3, 8, 8)
    assert dataset_meta("imagefolder", root, image_size=8).image_shape == (3, 8, 8)
    with pytest.raises(InputError, match=r"datasets\.imagefolder\.image_sise: unknown option.*image_size"):
        load_dataset("imagefolder", root, image_sise=8)
    with pytest.raises(InputError, match=r"^datasets\.imagefolder\.image_size: must be a positive integer"):
        load_dataset("imagefolder", root, image_size=0)
    with pytest.raises(InputError, match="train/"):
        load_dataset("imagefolder", root / "train")


def test_imagefolder_tiny_imagenet_val_layout(tmp_path):
    for wnid in ("n01", "n02"):
        (tmp_path / "train" / wnid / "images").mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(tmp_path / "train" / wnid / "images" / "0.JPEG")
    (tmp_path / "val" / "images").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "val" / "images" / f"val_{i}.JPEG")
    (tmp_path / "val" / "val_annotations.txt").write_text(
        "val_0.JPEG\tn02\t0\t0\t8\t8\nval_1.JPEG\tn01\t0\t0\t8\t8\nval_2.JPEG\tn02\t0\t0\t8\t8\n")
    d = load_dataset("tinyimagenet", tmp_path)
    assert d.classes == ["n01", "n02"] and d.test.labels.tolist() == [1, 0, 1]
    assert dataset_meta("imagefolder", tmp_path).class_counts == [1, 1]
    with pytest.raises(InputError, match="tiny-imagenet-200"):
        load_dataset("tinyimagenet", tmp_path / "val")


# --- tensors (.pt / .npz) -----------------------------------------------------------------------
def test_tensors_pt_uint8_with_classes(tmp_path):
    path = tmp_path / "set.pt"
    tr_x = torch.randint(0, 256, (6, 3, 5, 5), dtype=torch.uint8)
    torch.save({"train_x": tr_x, "train_y": torch.tensor([0, 1, 2, 0, 1, 2]),
                "test_x": torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8), "test_y": torch.tensor([2, 0]),
                "classes": ["a", "b", "c", "d"]}, path)
    d = load_dataset("tensors", path)
    assert d.classes == ["a", "b", "c", "d"] and d.image_shape == (3, 5, 5)
    assert torch.equal(d.train.tensor(), tr_x)  # uint8 kept as stored
    assert torch.allclose(denormalize(normalized(d), d.mean, d.std), tr_x.float() / 255, atol=1e-5)
    meta = dataset_meta("tensors", path)
    assert meta.class_counts == [2, 2, 2, 0] and meta.smallest_class == 0


def test_tensors_npz_float_with_and_without_stats(tmp_path):
    x = RNG.random((4, 8, 8)).astype(np.float32)  # N×H×W: one channel
    base = dict(train_x=x, train_y=np.array([0, 1, 0, 1]), test_x=x[:2], test_y=np.array([1, 0]))
    np.savez(tmp_path / "raw.npz", **base)
    d = load_dataset("tensors", tmp_path / "raw.npz")
    assert normalized(d).shape == (4, 1, 8, 8) and abs(float(normalized(d).mean())) < 1e-4
    np.savez(tmp_path / "normed.npz", **base, mean=np.array([0.5]), std=np.array([0.25]))
    d2 = load_dataset("tensors", tmp_path / "normed.npz")
    assert d2.mean == (0.5,) and torch.equal(normalized(d2)[:, 0], torch.from_numpy(x))  # kept as given
    meta = dataset_meta("tensors", tmp_path / "normed.npz")
    assert meta.image_shape == (1, 8, 8) and meta.class_counts == [2, 2]


def test_tensors_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, train_x=np.zeros((2, 1, 4, 4)), train_y=np.array([0, 1]))
    with pytest.raises(InputError, match="test_x, test_y"):
        load_dataset("tensors", bad)
    with pytest.raises(InputError, match="does not exist"):
        load_dataset("tensors", tmp_path / "none.pt")
    np.savez(bad, train_x=np.zeros((2, 1, 4, 4)), train_y=np.array([0.5, 1]),
             test_x=np.zeros((1, 1, 4, 4)), test_y=np.array([0]))
    with pytest.raises(InputError, match="train_y must be a 1-D integer"):
        load_dataset("tensors", bad)


# --- registry -----------------------------------------------------------------------------------
def test_registry_lists_and_rejects_unknown():
    entries = {e.name: e for e in list_datasets()}
    assert {"digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder", "tinyimagenet",
            "tensors"} <= set(entries)
    assert entries["fashion-mnist"].default_root == "/usr/share/datasets/fashion-mnist"
    assert "data_batch_1" in entries["cifar10"].expected_files
    with pytest.raises(InputError, match="did you mean 'cifar10'"):
        load_dataset("cifar-10", "/x")


def test_cache_keys_on_options(tmp_path):
    make_imagefolder(tmp_path / "data", {"a": 1, "b": 1}, size=(8, 8))
    a = load_dataset("imagefolder", tmp_path / "data")
    assert load_dataset("imagefolder", str(tmp_path / "data")) is a
    assert load_dataset("imagefolder", tmp_path / "data", image_size=4) is not a


def test_bundled_loaders_say_so():
    entries = {e.name: e for e in list_datasets()}
    assert entries["digits"].root_text == "bundled"
    assert entries["cifar10"].root_text == "required"
    assert entries["fashion-mnist"].root_text == "/usr/share/datasets/fashion-mnist"


# --- plugins: a really installed distribution's `ddray.datasets` entry points ----------------------
DATASET_PLUGIN = '''
    import torch
    from ddray.data import DatasetLoader, build_real_data


    class Stripes(DatasetLoader):
        """Horizontal or vertical stripes, 4x4, two classes."""

        description = "stripes: 4×4 horizontal vs vertical"
        needs_root = False
        options = ("flip",)

        def load(self, root, flip=False, **options):
            h = torch.zeros(1, 4, 4)
            h[:, ::2] = 1
            x = torch.stack([h, h.transpose(1, 2)] * 3)
            y = torch.tensor([0, 1] * 3)
            if flip:
                x = x.flip(-1)
            return build_real_data(self.name, x[:4], y[:4], x[4:], y[4:], ["horizontal", "vertical"], (0.5,), (0.5,),
                                   normalized=True)


    class Garbage(DatasetLoader):
        needs_root = False

        def load(self, root, **options):
            return {"train_x": [1, 2, 3]}


    class BadLabels(Stripes):
        def load(self, root, **options):
            data = super().load(root)
            data.train.labels = data.train.labels + 5
            return data


    def not_a_loader():
        return None
'''


def test_dataset_plugins_from_entry_points(install_dist, tmp_path):
    from ddray.data import ENTRY_POINT_GROUP, dataset_names

    install_dist("ddray-stripes", {ENTRY_POINT_GROUP: {
        "stripes": "dd_stripes_plugin:Stripes",
        "garbage": "dd_stripes_plugin:Garbage",
        "bad-labels": "dd_stripes_plugin:BadLabels",
        "function": "dd_stripes_plugin:not_a_loader",
        "missing": "dd_stripes_gone:Stripes",
    }}, {"dd_stripes_plugin": DATASET_PLUGIN})

    data = load_dataset("stripes")
    assert data.num_classes == 2 and data.image_shape == (1, 4, 4) and data.train.labels.tolist() == [0, 1, 0, 1]
    assert torch.equal(load_dataset("stripes", flip=True).train.tensor(), data.train.tensor().flip(-1))
    assert dataset_meta("stripes").class_counts == [2, 2]
    with pytest.raises(InputError, match=r"^datasets\.stripes\.flop: unknown option 'flop' \(did you mean 'flip'"):
        load_dataset("stripes", flop=True)

    entries = {e.name: e for e in list_datasets()}
    assert entries["stripes"].root_text == "bundled" and entries["stripes"].options == ("flip",)
    assert {"garbage", "bad-labels"} <= set(entries) and "function" not in entries and "missing" not in entries
    assert {"stripes", "function", "missing"} <= set(dataset_names())

    with pytest.raises(InputError, match=r"dataset loader 'garbage' \(dd_stripes_plugin.Garbage\): load\(\) "
                                         r"returned dict"):
        load_dataset("garbage")
    with pytest.raises(InputError, match=r"'bad-labels'.*train labels must lie in \[0, 2\)"):
        load_dataset("bad-labels")
    with pytest.raises(InputError, match=r"entry point 'function' \(dd_stripes_plugin:not_a_loader\): expected a "
                                         r"subclass of ddray.data.DatasetLoader, got function not_a_loader"):
        load_dataset("function")
    with pytest.raises(InputError, match=r"^datasets\.missing: entry point 'missing'.*failed to load"):
        dataset_meta("missing")
    with pytest.raises(InputError, match=r"^datasets\.strpes: unknown dataset loader 'strpes' \(did you mean 'stripes'"):
        load_dataset("strpes")


def test_cli_lists_plugins_and_names_broken_ones(install_dist):
    from typer.testing import CliRunner

    from ddray.cli import app
    from ddray.data import ENTRY_POINT_GROUP

    install_dist("ddray-stripes-cli", {ENTRY_POINT_GROUP: {
        "stripes-cli": "dd_stripes_cli:Stripes", "missing-cli": "dd_stripes_gone_cli:Stripes",
    }}, {"dd_stripes_cli": DATASET_PLUGIN})
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0
    assert "digits" in result.stdout and "(root: bundled)" in result.stdout and "stripes-cli" in result.stdout
    assert "broken plugin" in result.stderr and "'missing-cli'" in result.stderr

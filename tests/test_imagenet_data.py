"""The ImageNet loaders read real JPEG trees the way the field's code does: torchvision's
`Resize(256)` + `CenterCrop(224)` on every image, classes in sorted-wnid order, the official flat
val/ through the devkit or Kaggle's CSV, and errors that say what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torchvision import transforms

from ddray.data import clear_cache, dataset_meta, load_dataset
from ddray.errors import InputError
from tests.imagenet_files import WNIDS, devkit, imagenet_folder, jpeg, kaggle_csv, val_wnids


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return imagenet_folder(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(autouse=True)
def fresh():
    clear_cache()
    yield
    clear_cache()


def _all(split) -> torch.Tensor:
    return split.take(torch.arange(len(split)))


def test_every_image_is_torchvisions_resize_256_center_crop_224(folder):
    data = load_dataset("imagenet1k", folder)
    reference = torchvision.datasets.ImageFolder(
        str(folder / "train"),
        transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.PILToTensor()]),
        loader=lambda p: __import__("PIL.Image", fromlist=["Image"]).open(p).convert("RGB"))
    assert data.classes == WNIDS == sorted(reference.class_to_idx)
    assert data.image_shape == (3, 224, 224)
    x = _all(data.train)
    assert x.dtype == torch.uint8
    for i, (img, label) in enumerate(reference):
        assert int(data.train.labels[i]) == label
        assert torch.equal(x[i], img), reference.samples[i][0]
    assert data.mean == (0.485, 0.456, 0.406) and data.std == (0.229, 0.224, 0.225)
    assert data.test.labels.tolist() == [WNIDS.index(w) for w in sorted(val_wnids(), key=WNIDS.index)]


def test_crop_and_resize_are_options_and_checked(folder):
    data = load_dataset("imagenet1k", folder, image_size=64)
    assert data.image_shape == (3, 64, 64)  # shorter side 73, the 0.875 crop ratio kept
    ref = transforms.Compose([transforms.Resize(73), transforms.CenterCrop(64), transforms.PILToTensor()])
    from PIL import Image

    first = sorted((folder / "train" / WNIDS[0]).iterdir())[0]
    assert torch.equal(data.train.take(torch.tensor([0]))[0], ref(Image.open(first).convert("RGB")))
    with pytest.raises(InputError, match=r"datasets.imagenet1k.resize: must be an integer >= image_size \(224\)"):
        load_dataset("imagenet1k", folder, resize=200)
    with pytest.raises(InputError, match="datasets.imagenet1k.image_size"):
        load_dataset("imagenet1k", folder, image_size="big")
    with pytest.raises(InputError, match="datasets.imagenette.resize"):
        dataset_meta("imagenette", folder, resize=100)  # what `ddray validate` reads
    meta = dataset_meta("imagenette", folder)
    assert meta.image_shape == (3, 224, 224) and meta.class_counts == [4, 4, 4] and meta.classes == WNIDS


@pytest.mark.parametrize("labels", ["devkit", "kaggle"])
def test_the_official_flat_val_reads_its_labels(tmp_path, folder, labels):
    flat = imagenet_folder(tmp_path / "flat", flat_val=True)
    devkit(flat) if labels == "devkit" else kaggle_csv(flat / "LOC_val_solution.csv")  # beside val/
    data = load_dataset("imagenet1k", flat)
    assert [p.name for p in data.test.pixels.source.files()] == [f"ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 7)]
    assert data.test.labels.tolist() == [WNIDS.index(w) for w in val_wnids()]
    foldered = load_dataset("imagenet1k", folder)  # the same images arranged in class folders
    order = np.argsort([p.name for p in foldered.test.pixels.source.files()])
    assert torch.equal(_all(data.test), _all(foldered.test)[torch.as_tensor(order)])
    assert data.test.labels.tolist() == foldered.test.labels[torch.as_tensor(order)].tolist()


def test_a_flat_val_without_labels_says_how_to_arrange_it(tmp_path):
    flat = imagenet_folder(tmp_path / "flat", flat_val=True)
    with pytest.raises(InputError) as e:
        load_dataset("imagenet1k", flat)
    text = str(e.value)
    assert text.startswith("datasets.imagenet1k.root: ") and "6 images but no class folders" in text
    assert "valprep.sh" in text and "ILSVRC2012_devkit_t12" in text and "LOC_val_solution.csv" in text
    kaggle_csv(flat / "LOC_val_solution.csv", val_per_class=1)  # labels for only half the images
    with pytest.raises(InputError, match=r"3 image\(s\) of .* have no label in .*LOC_val_solution.csv: ILSVRC2012_val_00000004"):
        load_dataset("imagenet1k", flat)
    (flat / "LOC_val_solution.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a LOC_val_solution.csv"):
        load_dataset("imagenet1k", flat)
    (flat / "ILSVRC2012_devkit_t12" / "data").mkdir(parents=True)  # found first, but empty
    with pytest.raises(InputError, match="lacks meta.mat, ILSVRC2012_validation_ground_truth.txt"):
        load_dataset("imagenet1k", flat)


def test_a_truncated_jpeg_is_named_not_skipped(tmp_path):
    root = imagenet_folder(tmp_path / "in")
    bad = root / "val" / WNIDS[1] / "ILSVRC2012_val_00000002.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])
    data = load_dataset("imagenet1k", root)
    with pytest.raises(InputError, match=r"datasets.imagenet1k.root: 1 image file\(s\) cannot be decoded: .*val_00000002"):
        _all(data.test)
    jpeg(root / "val" / WNIDS[1] / "ILSVRC2012_val_00000002.JPEG", (100, 100), "CMYK", 7)  # repaired: reads
    clear_cache()
    assert len(_all(load_dataset("imagenet1k", root).test)) == 6

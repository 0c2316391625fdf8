"""The data plane: trials read only what they train and test on, and a node decodes each split once.

Real JPEG folders, the real node cache on disk, real trials through `ddray.run.execute`, and real
processes for sharing across trials; the only stand-ins are pixel sources that record (or refuse)
the rows a trial reads.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.jpeg_trees import imagenet_tree
from ddray.data import FileSource, NodeCache, PixelSpec, Split, clear_cache, load_dataset
from ddray.data.cache import Layout
from ddray.data.pixels import normalize
from ddray.engine import evaluate, random_subset, train_teacher
from ddray.errors import InputError
from ddray.models import build_model
from ddray.protocols import full_recipe
from tests.conftest import REPO, planned

CPU = torch.device("cpu")
WNIDS = ["n01440764", "n01443537", "n01484850"]


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()
    yield
    clear_cache()


def imagenet_shaped(root: Path, train: int = 6, val: int = 2, seed: int = 0) -> Path:
    """wnid class folders of small JPEGs of varied sizes and aspect ratios, and a val split; each
    class its own colour under noise, so a student can learn something."""
    return imagenet_tree(root, WNIDS, train, val, widths=(20, 60), heights=(16, 48), content="tinted", seed=seed)


class Watched(FileSource):
    """The same files, read through a recorder: which rows a trial reads, or a refusal to read any."""

    def __init__(self, inner: FileSource, refuse: bool = False):
        super().__init__(inner.paths, inner.shape, inner._decode, inner._error, inner.dtype)
        self.refuse, self.rows = refuse, []

    def fill(self, out, rows):
        if self.refuse:
            raise AssertionError(f"train pixels read: rows {rows[:5].tolist()}...")
        self.rows += [int(r) for r in rows]
        super().fill(out, rows)


def watch(split: Split, refuse: bool = False) -> Watched:
    split.pixels.source = Watched(split.pixels.source, refuse)  # same files: same cache identity
    return split.pixels.source


def files_spec(root: Path, sets: Path, loader: str = "imagefolder", **options) -> dict:
    return {"name": "inet-shaped", "datasets": {loader: {"root": str(root), "options": options}},
            "methods": {"mine": {"files": str(sets / "{dataset}" / "ipc{ipc}")}}, "ipc": [1],
            "archs": ["convnet-d1-w16"], "seeds": [0], "protocol": "ddranking-hard",
            "overrides": {"epochs": 2, "batch_size": 8}, "resources": {"default": {"cpu": 1}}}


def write_set(data, sets: Path, ipc: int = 1) -> None:
    folder = sets / data.name / f"ipc{ipc}"
    folder.mkdir(parents=True)
    idx = random_subset(data.train.labels, data.num_classes, ipc, 99)
    torch.save(data.train_images(idx), folder / "images.pt")


def run_trial(trial, data, tmp_path, monkeypatch):
    import ddray.run.execute as ex
    from ddray.run.worker_env import WorkerEnv

    monkeypatch.setattr(ex, "load_data", lambda config, env: data)
    return ex.execute(trial, WorkerEnv(store=str(tmp_path / "store")), CPU)


def test_syn_reads_no_train_pixels_and_rdm_only_its_images(tmp_path, monkeypatch):
    """The ImageNet loader (fixed normalization constants), on a node that has decoded nothing."""
    root = imagenet_shaped(tmp_path / "inet")
    cache = NodeCache(tmp_path / "cache")
    write_set(load_dataset("imagenet1k", root, cache=cache, image_size=16), tmp_path / "sets")
    plan = planned(files_spec(root, tmp_path / "sets", "imagenet1k", image_size=16))
    syn = next(t for t in plan.stage("eval") if t.config.arm == "syn")
    rdm = next(t for t in plan.stage("eval") if t.config.arm == "rdm")

    clear_cache()  # a new trial process on the node
    data = load_dataset("imagenet1k", root, cache=cache, image_size=16)
    watch(data.train, refuse=True)
    row = run_trial(syn, data, tmp_path, monkeypatch)
    assert row.status == "ok" and 0 <= row.top1 <= 1

    clear_cache()
    data = load_dataset("imagenet1k", root, cache=cache, image_size=16)
    seen = watch(data.train)
    row = run_trial(rdm, data, tmp_path, monkeypatch)
    chosen = random_subset(data.train.labels, data.num_classes, 1, rdm.config.seed)
    assert row.status == "ok" and sorted(seen.rows) == sorted(chosen.tolist())  # IPC × classes images, no more
    assert not [e for e in cache.entries() if e.meta.get("describe", {}).get("split") == "train"]


def test_statistics_from_train_pixels_are_computed_once_per_node(tmp_path, monkeypatch):
    """A loader without constants: the first trial on the node computes them; a later syn trial reads only them."""
    root = imagenet_shaped(tmp_path / "inet")
    cache = NodeCache(tmp_path / "cache")
    first = load_dataset("imagefolder", root, cache=cache, image_size=16)
    write_set(first, tmp_path / "sets")
    assert first.pixels.mean != (0.0, 0.0, 0.0)
    kinds = {(e.kind, e.meta["describe"]["split"]) for e in cache.entries()}
    assert kinds == {("statistics", "train")}  # a streamed pass: the train split is neither cached nor held
    syn = next(t for t in planned(files_spec(root, tmp_path / "sets", image_size=16)).stage("eval")
               if t.config.arm == "syn")
    clear_cache()
    data = load_dataset("imagefolder", root, cache=cache, image_size=16)
    watch(data.train, refuse=True)
    assert run_trial(syn, data, tmp_path, monkeypatch).status == "ok"
    assert data.pixels == first.pixels  # read back from the cache entry, not recomputed


TRIAL = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    import ddray.data.sources as sources
    from ddray.data import NodeCache, load_dataset

    decoded = []
    fill = sources.FileSource.fill
    def counting(self, out, rows):
        decoded.extend(int(r) for r in rows)
        time.sleep(0.02 * len(rows))  # a slow decode, so the two trials overlap
        return fill(self, out, rows)
    sources.FileSource.fill = counting

    import ddray.run.execute as ex
    from ddray.run.worker_env import WorkerEnv
    from ddray.trials import Trial
    root, cache_dir, ready, trial = sys.argv[1:5]
    data = load_dataset("imagefolder", root, cache=NodeCache(Path(cache_dir)), image_size=16)
    ex.load_data = lambda config, env: data
    Path(ready, str(os.getpid())).touch()
    while len(os.listdir(ready)) < 2:
        time.sleep(0.01)
    row = ex.execute(Trial.from_dict(json.loads(trial)), WorkerEnv(store=sys.argv[5]), __import__("torch").device("cpu"))
    maps = [line.split()[-1] for line in open("/proc/self/maps") if line.rstrip().endswith("x.npy")]
    print(json.dumps({"decoded": len(decoded), "maps": sorted(set(maps)), "top1": row.top1}))
''')


@pytest.mark.slow  # two real trial processes on one node
def test_two_trials_on_a_node_share_one_decoded_copy(tmp_path):
    root = imagenet_shaped(tmp_path / "inet", train=4, val=8)
    cache = NodeCache(tmp_path / "cache")
    write_set(load_dataset("imagefolder", root, cache=cache, image_size=16), tmp_path / "sets")  # stats: once
    plan = planned(files_spec(root, tmp_path / "sets", image_size=16))
    syn = next(t for t in plan.stage("eval") if t.config.arm == "syn")
    (tmp_path / "ready").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", TRIAL, str(root), str(cache.root), str(tmp_path / "ready"),
           json.dumps(syn.to_dict()), str(tmp_path / "store")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    test_images = len(WNIDS) * 8
    assert sorted(o["decoded"] for o in outs) == [0, test_images]  # one build; the other trial waited, then read it
    assert outs[0]["maps"] == outs[1]["maps"] and len(outs[0]["maps"]) == 1  # both map the one entry
    assert outs[0]["top1"] == outs[1]["top1"]
    assert len([e for e in cache.entries() if e.meta.get("describe", {}).get("split") == "test"]) == 1


def test_streamed_full_training_equals_resident_training(tmp_path):
    root = imagenet_shaped(tmp_path / "inet", train=10, val=2)
    recipe = full_recipe("imagefolder", {"epochs": 2, "batch_size": 4, "lr": 0.05})
    results = []
    for budget in (None, 0):  # the node cache, then no cache at all: batches decoded from the files
        clear_cache()
        data = load_dataset("imagefolder", root, cache=NodeCache(tmp_path / "cache", budget), image_size=16)
        assert (data.train.resident() is None) == (budget == 0)
        results.append(train_teacher(data, "convnet-d1-w16", recipe, seed=3, device=CPU))
    a, b = results
    assert (a.top1, a.top5, a.loss) == (b.top1, b.top5, b.loss)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_pixel_spec_per_batch_is_bit_identical_to_normalizing_the_whole_split():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (300, 3, 9, 7), dtype=torch.uint8, generator=g)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    whole = normalize(x, mean, std)
    spec = PixelSpec(mean, std)
    idx = torch.randperm(300, generator=g)[:64]
    assert torch.equal(spec(x[idx]), whole[idx])
    assert torch.equal(torch.cat([spec(x[i:i + 37]) for i in range(0, 300, 37)]), whole)


def test_evaluating_a_split_in_chunks_equals_the_tensor(tmp_path):
    root = imagenet_shaped(tmp_path / "inet", train=2, val=5)
    data = load_dataset("imagefolder", root, cache=NodeCache(tmp_path / "cache", 0), image_size=16)
    torch.manual_seed(0)
    net = build_model("convnet-d1-w16", 3, data.num_classes, 16)
    whole = evaluate(net, data.pixels(data.test.tensor()), data.test.labels, CPU)
    clear_cache()
    data = load_dataset("imagefolder", root, cache=NodeCache(tmp_path / "cache", 0), image_size=16)
    assert evaluate(net, data.test, None, CPU, pixels=data.pixels) == whole  # streamed from the files, same batches


# ---------------------------------------------------------------------------- the node cache itself
def test_cache_entry_is_checked_at_open_and_rebuilt_when_damaged(tmp_path):
    root = imagenet_shaped(tmp_path / "inet", train=2, val=2)
    cache = NodeCache(tmp_path / "cache")
    data = load_dataset("imagefolder", root, cache=cache, image_size=16)
    good = data.test.tensor().clone()
    (entry,) = [e for e in cache.entries() if e.meta.get("pixels")]
    x = entry.path / "x.npy"
    for damage in ("truncate", "append", "foreign"):
        if damage == "truncate":
            x.write_bytes(x.read_bytes()[:-10])
        elif damage == "append":
            x.write_bytes(x.read_bytes() + b"\0" * 16)
        else:  # another layout under this name: never read as these pixels
            np.save(x, np.zeros((3, 1, 2, 2), np.uint8))
        layout = Layout(len(data.test), data.test.shape, "uint8")
        assert cache.open(entry.id, layout) is None
        clear_cache()
        again = load_dataset("imagefolder", root, cache=cache, image_size=16)
        assert torch.equal(again.test.tensor(), good)  # rebuilt from the files
        assert cache.open(entry.id, layout) is not None


def test_changed_files_make_a_new_entry_even_at_equal_size_and_mtime(tmp_path):
    root = imagenet_shaped(tmp_path / "inet", train=2, val=2)
    cache = NodeCache(tmp_path / "cache")
    load_dataset("imagefolder", root, cache=cache, image_size=16).test.resident()
    first = {e.id for e in cache.entries()}
    one = next((root / "val" / WNIDS[0]).iterdir())
    st, size = one.stat(), one.stat().st_size
    buf = io.BytesIO()
    Image.fromarray(np.full((30, 30, 3), 9, np.uint8)).save(buf, format="JPEG")
    assert len(buf.getvalue()) < size
    one.write_bytes(buf.getvalue().ljust(size, b"\0"))  # JPEG decoders stop at the end-of-image marker
    os.utime(one, ns=(st.st_atime_ns, st.st_mtime_ns))   # `touch -r`: size and mtime as before
    assert (one.stat().st_size, one.stat().st_mtime_ns) == (size, st.st_mtime_ns)
    clear_cache()
    changed = load_dataset("imagefolder", root, cache=cache, image_size=16)
    assert int(changed.test.resident()[0].float().mean()) < 30  # the new image, not the cached old one
    assert len({e.id for e in cache.entries()} - first) == 1


def test_flipped_bytes_in_a_cached_split_are_caught_and_rebuilt(tmp_path, capsys):
    """Half the pixel bytes flipped, size and mtime kept: the layout checks pass, the checksums do not."""
    root = imagenet_shaped(tmp_path / "inet", train=2, val=2)
    cache = NodeCache(tmp_path / "cache")
    good = load_dataset("imagefolder", root, cache=cache, image_size=16).test.tensor().clone()
    (entry,) = [e for e in cache.entries() if e.meta.get("describe", {}).get("split") == "test"]
    x = entry.path / "x.npy"
    st, data = x.stat(), bytearray(x.read_bytes())
    header = len(data) - good.numel()
    for i in range(header, len(data), 2):
        data[i] ^= 0xFF
    x.write_bytes(bytes(data))
    os.utime(x, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert [why for e, why in cache.verify() if e.id == entry.id] == [["x.npy chunk 0 (bytes 0-16777215)"]]
    assert cache.open(entry.id, Layout(len(good), tuple(good.shape[1:]), "uint8")) is None
    assert f"node cache entry {entry.id} is damaged" in capsys.readouterr().err
    clear_cache()
    again = load_dataset("imagefolder", root, cache=cache, image_size=16)
    assert torch.equal(again.test.tensor(), good)  # rebuilt from the files
    assert all(not why for _, why in cache.verify())


def test_an_unwritable_cache_folder_streams_with_one_warning(tmp_path, capsys):
    root = imagenet_shaped(tmp_path / "inet", train=2, val=2)
    want = load_dataset("imagefolder", root, cache=NodeCache(tmp_path / "ok"), image_size=16)
    want = (want.train.tensor().clone(), want.test.tensor().clone())
    capsys.readouterr()
    (tmp_path / "file").write_text("not a folder")
    for _ in range(2):
        clear_cache()
        data = load_dataset("imagefolder", root, cache=NodeCache(tmp_path / "file"), image_size=16)
        assert torch.equal(data.train.tensor(), want[0]) and torch.equal(data.test.tensor(), want[1])
    assert capsys.readouterr().err.count("is not writable") == 1


def test_a_split_over_the_budget_streams_and_keeps_its_statistics(tmp_path):
    root = imagenet_shaped(tmp_path / "inet", train=4, val=2)
    tiny = NodeCache(tmp_path / "cache", budget_bytes=1000)  # less than one split
    data = load_dataset("imagefolder", root, cache=tiny, image_size=16)
    assert data.train.resident() is None and data.test.resident() is None
    chunks = torch.cat(list(data.train.chunks(5)))
    mean = data.pixels.mean
    clear_cache()
    roomy = NodeCache(tmp_path / "cache")
    again = load_dataset("imagefolder", root, cache=roomy, image_size=16)
    watch(again.train, refuse=True)
    assert again.pixels.mean == mean  # the stats-only entry answered
    clear_cache()
    again = load_dataset("imagefolder", root, cache=roomy, image_size=16)
    assert torch.equal(again.train.resident(), chunks)  # now cached, the same pixels
    assert again.pixels.mean == mean
    assert not NodeCache(tmp_path / "off", 0).enabled


def test_undecodable_images_are_named_with_their_count(tmp_path):
    root = imagenet_shaped(tmp_path / "inet", train=3, val=2)
    bad = sorted((root / "train").rglob("*.JPEG"))[:5]
    for p in bad:
        p.write_bytes(b"not a jpeg")
    data = load_dataset("imagefolder", root, cache=NodeCache(tmp_path / "cache"), image_size=16)
    with pytest.raises(InputError) as err:
        data.train.resident()
    msg = str(err.value)
    assert msg.startswith("datasets.imagefolder.root: 5 image file(s) cannot be decoded: ")
    assert str(bad[0]) in msg and "and 2 more" in msg
    assert not [e for e in NodeCache(tmp_path / "cache").entries() if e.meta.get("pixels")]  # nothing half-built


def test_selection_methods_share_one_embedding_pass_per_node(tmp_path):
    from ddray.methods import SynthContext, get_method, synthesize

    root = imagenet_shaped(tmp_path / "inet", train=6, val=2)

    def run(method, cache, ipc=2):
        clear_cache()
        data = load_dataset("imagefolder", root, cache=cache, image_size=16)
        entry = get_method(method)
        return synthesize(entry, SynthContext(data, ipc, 0, entry.params({"arch": "convnet-d1-w16"}), None, CPU))

    cache = NodeCache(tmp_path / "cache")
    herding, kcenter, herding1 = run("herding", cache), run("kcenter", cache), run("herding", cache, ipc=1)
    (emb,) = [e for e in cache.entries() if e.kind == "embeddings"]  # one pass for both methods and both IPCs
    assert emb.meta["describe"]["arch"] == "convnet-d1-w16" and emb.meta["describe"]["seed"] == 0
    assert kcenter.synth_seconds >= emb.meta["build_s"]  # the reused pass is still charged to the method
    uncached = NodeCache(tmp_path / "none", 0)
    assert torch.equal(run("herding", uncached).images, herding.images)
    assert torch.equal(run("kcenter", uncached).images, kcenter.images)
    assert torch.equal(run("herding", uncached, ipc=1).images, herding1.images)


def test_time_to_synthesize_does_not_count_decoding_the_real_data(tmp_path, monkeypatch):
    import time

    from ddray.methods import SynthContext, get_method, synthesize

    root = imagenet_shaped(tmp_path / "inet", train=4, val=2)
    # no node cache: the method decodes its own images, slowly, from the files
    data = load_dataset("imagefolder", root, cache=NodeCache(tmp_path / "cache", 0), image_size=16)
    data.pixels  # noqa: B018  (statistics first: this loader has no constants)
    decode = data.train.pixels.source._decode
    monkeypatch.setattr(data.train.pixels.source, "_decode", lambda path: (time.sleep(0.2), decode(path))[1])
    entry = get_method("random")
    t0 = time.perf_counter()
    ds = synthesize(entry, SynthContext(data, 2, 0, entry.params({}), None, CPU))
    assert time.perf_counter() - t0 >= 0.2 and ds.synth_seconds < 0.1  # 6 slow decodes, none of them synthesis


def test_a_validation_view_reads_its_rows_only(tmp_path, monkeypatch):
    from ddray.data.imagefolder import ImageFolder
    from ddray.engine import holdout_split
    from ddray.run.tuned import validation_view

    monkeypatch.setattr(ImageFolder, "mean", (0.5, 0.5, 0.5))
    monkeypatch.setattr(ImageFolder, "std", (0.25, 0.25, 0.25))
    cache = NodeCache(tmp_path / "cache")
    data = load_dataset("imagefolder", imagenet_shaped(tmp_path / "inet", train=10), cache=cache, image_size=16)
    seen = watch(data.train)
    view = validation_view(data, 0.2, seed=0)
    held = holdout_split(data.train.labels, 0.2, 0)[1]
    assert torch.equal(view.test.resident(), torch.cat(list(view.test.chunks(4))))
    assert set(seen.rows) == set(held.tolist()) and not cache.entries()  # the parent split is never cached for it

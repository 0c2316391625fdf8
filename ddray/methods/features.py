"""Feature networks and the embeddings of a train split seen through them.

DM, herding and k-center all compare samples through `embed(x)`: a randomly initialized
ConvNet seeded by the trial seed, or the teacher. Building the random net under a forked RNG
keeps its weights a function of the seed alone without touching anyone's global RNG.

Embedding the whole train split is the cost of a selection method (Fashion-MNIST: 60k images,
minutes on a CPU core), and it does not depend on the method or the IPC: the embeddings are
kept in the node cache under the split's entry, the network's weights and the device type, so
herding and k-center at every IPC of one seed embed the split once per node.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ddray.errors import InputError
from ddray.methods.timing import charge

if TYPE_CHECKING:
    from ddray.data import PixelSpec, RealData, Split

def random_net(arch: str, data: RealData, seed: int, device: torch.device) -> nn.Module:
    """A frozen, randomly initialized `arch` whose weights depend only on `seed`."""
    from ddray.models import build_model

    c, h, _ = data.image_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) % (2**63 - 1))
        net = build_model(arch, c, data.num_classes, h)
    return freeze(net.to(device))


def freeze(net: nn.Module) -> nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def embedder(net: nn.Module, name: str = "feature network"):
    """`net.embed`, or logits for a network without one (a user's teacher)."""
    fn = getattr(net, "embed", None)
    if fn is None:
        if not callable(net):
            raise InputError(f"{name} is not callable")
        return net
    return fn


def embed_batch(height: int, width: int) -> int:
    """Images per embedding batch: 1024 up to 32×32 (as ever), fewer for larger images (bounded memory)."""
    from ddray.engine.evaluate import eval_batch

    return eval_batch(height, width)


@torch.no_grad()
def _embed_chunks(net: nn.Module, split: Split, pixels: PixelSpec, device: torch.device, out: Any) -> None:
    """Write the embedding of every image of `split` into `out` (a tensor or an array), chunk by chunk."""
    was_training = net.training
    net.eval()
    fn, start = embedder(net), 0
    try:
        for chunk in split.chunks(embed_batch(*split.shape[1:])):
            f = fn(pixels(chunk.to(device, non_blocking=True))).float()
            out[start:start + f.shape[0]] = f if isinstance(out, Tensor) else f.cpu().numpy()
            start += f.shape[0]
    finally:
        net.train(was_training)


@torch.no_grad()
def _width(net: nn.Module, split: Split, device: torch.device) -> int:
    """The embedding size, from one blank image (eval mode: no statistics move)."""
    was_training = net.training
    net.eval()
    try:
        return int(embedder(net)(torch.zeros((1, *split.shape), device=device)).reshape(1, -1).shape[1])
    finally:
        net.train(was_training)


def weights_digest(net: nn.Module) -> str:
    """A hash of the network's weights and buffers: what its features are a function of."""
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:20]


def train_embeddings(net: nn.Module, data: RealData, device: torch.device, describe: dict[str, Any]) -> Tensor:
    """Embeddings of the whole train split through `net`, on `device`: from the node cache when this
    node computed them before (same split entry, weights and device type), else computed in
    bounded chunks and cached. `describe` (arch, seed, feature mode) is what `ddray cache ls` shows."""
    from ddray.data.cache import Layout, entry_id

    split = data.train
    where = split.cache_entry()
    n = len(split)
    if where is None:
        out = torch.empty((n, _width(net, split, device)), device=device)
        _embed_chunks(net, split, data.pixels, device, out)
        return out
    cache, split_id = where
    split.warm()  # decode the pixels first: the entry's build time is then the embedding pass alone
    ident = {"kind": "embeddings", "split": split_id, "weights": weights_digest(net), "device": device.type,
             "pixels": [data.pixels.mean, data.pixels.std, data.pixels.scale], "torch": torch.__version__}
    eid = entry_id(ident)
    layout = Layout(n, (_width(net, split, device),), "float32")
    entry = cache.open(eid, layout) or cache.build(
        eid, layout, {"kind": "embeddings", "of": split_id, **describe, "device": device.type},
        lambda out: _embed_chunks(net, split, data.pixels, device, out))
    if entry is not None and not entry.fresh:  # computed earlier on this node: its cost still belongs here
        charge(float(entry.meta.get("build_s", 0.0)))
    if entry is None:  # over the budget: computed here, not kept
        out = torch.empty((n, layout.row[0]), device=device)
        _embed_chunks(net, split, data.pixels, device, out)
        return out
    return torch.from_numpy(np.asarray(entry.x)).to(device)

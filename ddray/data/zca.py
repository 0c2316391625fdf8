"""ZCA whitening of a dataset's pixels: fit once per node on the whole train split, shared by trials.

DD-Ranking (as MTT and DATM before it) fits `kornia.enhance.ZCAWhitening(eps=0.1)` on the whole
train split as [0, 1] pixels (ToTensor, no mean/std normalization) and whitens the train and test
splits with it; the random baseline is drawn from the whitened train split. The fit here is
kornia's: the flattened images' mean μ and unbiased covariance Σ = XᵀX/(N−1) of the centred
images, Σ = U S Uᵀ, T = U (S + eps)^−½ Uᵀ, and an image x becomes (x − μ) T. Sums are accumulated
in float64 over bounded chunks, so memory holds one chunk and one D×D matrix (D = C·H·W).

`Whitening` is a `PixelSpec`: every place that turns stored pixels into network input (the
training loop, rdm arms, evaluation) whitens through it without knowing. The fit (T and μ,
(D+1)×D float32) is kept as a node-cache entry beside the split's pixels, so a node fits once per
(split, eps) and every trial on it maps the same file; splits that are not file-backed (digits,
in-memory arrays) fit once per process.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from .cache import Layout, entry_id
from .pixels import PixelSpec, stats_chunk
from .split import Split

ZCA_VERSION = 1  # bump when the fit changes: cached fits of another version are not read


@dataclass(frozen=True, eq=False)
class Whitening(PixelSpec):
    """Stored pixels -> x / scale -> (x − μ) T, in float32 on the batch's device.

    `mean`/`std` are 0 and 1 (no normalization before whitening), so code that reads them (a
    padding value, a [0, 1] set) sees [0, 1] pixels. `matrix` is T (D×D), `center` is μ (D).
    """

    matrix: Tensor = field(default_factory=lambda: torch.empty(0))
    center: Tensor = field(default_factory=lambda: torch.empty(0))
    source: PixelSpec | None = None  # the normalization the data had before whitening
    _on: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)

    def __call__(self, x: Tensor) -> Tensor:
        return self.whiten(super().__call__(x))

    def from_normalized(self, x: Tensor) -> Tensor:
        """A set normalized with `source` (what ddray's methods make) in ZCA space: back to [0, 1]
        pixels, then whitened, as DD-Ranking would whiten those images given as pixels."""
        assert self.source is not None
        c = x.shape[1]
        mean = torch.tensor(self.source.mean, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        std = torch.tensor(self.source.std, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        return self.whiten(x * std + mean)

    def whiten(self, out: Tensor) -> Tensor:
        """[0, 1] float images -> (x − μ) T."""
        key = str(out.device)
        if key not in self._on:  # T and μ move to a device once
            self._on[key] = (self.matrix.to(out.device), self.center.to(out.device))
        t, mu = self._on[key]
        flat = out.reshape(out.shape[0], -1)
        return ((flat - mu) @ t).reshape(out.shape)


def fit_zca(chunks: object, eps: float, scale: float = 255.0) -> tuple[np.ndarray, np.ndarray]:
    """(T, μ) of kornia's ZCAWhitening(eps, unbiased) fitted on N×C×H×W pixels / `scale`, given
    as an iterable of chunks; float32 results from float64 sums."""
    n, total, gram = 0, None, None
    for part in chunks:  # type: ignore[attr-defined]
        x = torch.as_tensor(np.asarray(part)).to(torch.float64).div_(scale).reshape(len(part), -1)
        total = x.sum(0) if total is None else total + x.sum(0)
        gram = x.T @ x if gram is None else gram.addmm_(x.T, x)
        n += x.shape[0]
    if total is None or gram is None or n < 2:
        raise ValueError("ZCA needs at least two training images")
    mu = total / n
    cov = (gram - n * torch.outer(mu, mu)) / (n - 1)
    s, u = torch.linalg.eigh(cov)
    t = (u * torch.rsqrt(s.clamp_min(0.0) + eps)) @ u.T
    return t.to(torch.float32).numpy(), mu.to(torch.float32).numpy()


_FITS: weakref.WeakKeyDictionary[object, dict[tuple[float, float], Whitening]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def zca_pixels(split: Split, eps: float, scale: float = 255.0, source: PixelSpec | None = None) -> Whitening:
    """The `Whitening` of `split` (a train split) at `eps`: from this process, the node cache, or fitted."""
    with _LOCK:
        per_split = _FITS.setdefault(split.pixels, {})
        found = per_split.get((eps, scale))
        if found is not None and found.source != source:
            found = replace(found, source=source)
        if found is None:
            t, mu = _cached_fit(split, eps, scale)
            c = split.shape[0]
            found = Whitening((0.0,) * c, (1.0,) * c, scale, matrix=torch.from_numpy(t), center=torch.from_numpy(mu),
                              source=source)
            per_split[(eps, scale)] = found
        return found


def _cached_fit(split: Split, eps: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    chunk = stats_chunk(*split.shape[1:])
    where = split.cache_entry()
    if where is None:
        return fit_zca(split.chunks(chunk), eps, scale)
    cache, split_id = where
    d = int(np.prod(split.shape))
    layout = Layout(d + 1, (d,), "float32")
    eid = entry_id({"kind": "zca", "split": split_id, "eps": float(eps), "scale": float(scale), "version": ZCA_VERSION})

    def fill(out: np.ndarray) -> None:
        t, mu = fit_zca(split.chunks(chunk), eps, scale)
        out[:d], out[d] = t, mu

    entry = cache.open(eid, layout) or cache.build(eid, layout, {"kind": "zca", "of": split_id, "eps": eps}, fill)
    if entry is None:  # over the cache budget: fitted here, not kept
        return fit_zca(split.chunks(chunk), eps, scale)
    return entry.x[:d], entry.x[d]  # views of the shared memory map: one copy per node, in the page cache

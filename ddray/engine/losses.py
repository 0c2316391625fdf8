"""Training losses of the post-evaluation protocols (DESIGN §5).

Student logits `s` and teacher logits `t` are (B, K); losses are batch means and computed in
float32 so bf16 autocast on the device cannot change what a loss means.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

SoftLoss = Callable[[Tensor, Tensor, Tensor | None], Tensor]


def ce(s: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy against hard labels."""
    return F.cross_entropy(s.float(), y)


def kl(s: Tensor, t: Tensor, tau: float = 1.0, t2: bool = False) -> Tensor:
    """KL(softmax(t/τ) ‖ softmax(s/τ)), summed over classes, mean over the batch; ×τ² when `t2`."""
    loss = F.kl_div(
        F.log_softmax(s.float() / tau, dim=1), F.log_softmax(t.float() / tau, dim=1),
        reduction="batchmean", log_target=True,
    )
    return loss * tau * tau if t2 else loss


def sce(s: Tensor, t: Tensor) -> Tensor:
    """Soft cross-entropy −Σ_k softmax(t)_k · log_softmax(s)_k, mean over the batch.

    torch's cross-entropy with probability targets: the same gradients to the bit (so the same
    weights and accuracies); the loss value itself may differ in the last float32 bit, as torch
    sums all B·K terms before dividing by B.
    """
    return F.cross_entropy(s.float(), F.softmax(t.float(), dim=1))


def mse_gt(s: Tensor, t: Tensor, y: Tensor, gamma: float, weight: float = 1.0) -> Tensor:
    """w·MSE(z_s, z_t) (mean over all B·K entries) + γ·CE(z_s, y) (DD-Ranking's MSEGTLoss: w = mse_weight, γ = ce_weight)."""
    return weight * F.mse_loss(s.float(), t.float()) + gamma * ce(s, y)


def soft_loss(name: str, *, temperature: float = 1.0, kl_t2: bool = False, mse_gamma: float = 0.1,
              mse_weight: float = 1.0) -> SoftLoss:
    """A loss `(s, t, y) -> scalar` against teacher logits; `y` (hard labels) is used by mse_gt only.

    `ce` with soft targets means soft cross-entropy (`sce`), its natural generalization: a protocol
    whose own labels are hard can still train an arm whose labels are soft.
    """
    if name == "kl":
        return lambda s, t, y: kl(s, t, temperature, kl_t2)
    if name in ("sce", "ce"):
        return lambda s, t, y: sce(s, t)
    if name == "mse_gt":
        def _mse(s: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
            return mse_gt(s, t, t.argmax(dim=1) if y is None else y, mse_gamma, mse_weight)
        return _mse
    raise ValueError(f"unknown loss '{name}'")


def mixed(loss: Callable[..., Tensor], perm: Tensor | None, lam: float | None, *targets: Tensor | None) -> Tensor:
    """lam·loss(targets) + (1−lam)·loss(targets[perm]): a CutMix/Mixup batch against fixed targets.

    Both cross-entropy and the soft losses are linear in the target distribution up to a constant,
    so mixing the losses is mixing the targets.
    """
    if perm is None or lam is None:
        return loss(*targets)
    permuted = [None if t is None else t[perm] for t in targets]
    return lam * loss(*targets) + (1.0 - lam) * loss(*permuted)

"""DD-Ranking's robust scores (HLR, IOR, LRS, ARS), exactly as DESIGN §4 defines them.

Every function takes accuracies as *fractions* in [0, 1], broadcasts over numpy arrays (and
returns a plain float for scalar input), and lets NaN through: a missing accuracy gives a missing
score, never a zero.

Why a `compat` switch: the official package (ddranking 0.2.0) feeds accuracies in percent into
the exponentials, e.g. α = 0.5·30 − 0.5·40 = −5 instead of −0.05, so e^α is ~0 for nearly every
method and LRS collapses to (0 − e^−1)/(e − e^−1) ≈ −0.1565. `compat="ddranking-0.2"` reproduces
those raw numbers so a user can check ddray against the package; the default is the normalized
score, which lies in [0, 1] for fraction inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ddray.errors import InputError

COMPAT_MODES = ("ddranking-0.2",)
E, INV_E = float(np.e), float(np.exp(-1.0))
COLLAPSED_SCORE = (0.0 - INV_E) / (E - INV_E)
"""What ddranking 0.2.0 reports for almost every method: e^α underflows to ~0 for α ≪ 0."""


def check_compat(compat: str | None) -> str | None:
    """Validate the compat mode (None = ddray's normalized scores)."""
    if compat is None or compat in COMPAT_MODES:
        return compat
    raise InputError(f"unknown compat mode '{compat}'; known: {', '.join(COMPAT_MODES)}", path="compat")


def check_weight(value: float, name: str) -> float:
    """λ and γ are convex weights: outside [0, 1] the score is no longer bounded."""
    v = float(value)
    if not 0.0 <= v <= 1.0 or np.isnan(v):
        raise InputError(f"must be in [0, 1], got {value}", path=name)
    return v


def _out(x: np.ndarray) -> Any:
    return float(x) if np.ndim(x) == 0 else x


def _scale(compat: str | None) -> float:
    """Accuracy units fed into the exponentials: fractions (1) or the package's percent (100)."""
    return 100.0 if check_compat(compat) == "ddranking-0.2" else 1.0


def normalize(x: Any) -> Any:
    """(e^x − e^−1)/(e − e^−1): maps x ∈ [−1, 1] onto [0, 1], increasing."""
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore"):
        return _out((np.exp(x) - INV_E) / (E - INV_E))


def hlr(acc_full_hard: Any, acc_syn_hard: Any) -> Any:
    """Hard-label recovery: Acc(full, hard) − Acc(syn, hard); lower is better."""
    return _out(np.asarray(acc_full_hard, dtype=float) - np.asarray(acc_syn_hard, dtype=float))


def ior(acc_syn: Any, acc_rdm: Any) -> Any:
    """Improvement over random under the method's label setting: Acc(syn, L) − Acc(rdm, L)."""
    return _out(np.asarray(acc_syn, dtype=float) - np.asarray(acc_rdm, dtype=float))


def lrs(hlr: Any, ior: Any, lam: float = 0.5, compat: str | None = None) -> Any:
    """Label-robust score: α = λ·IOR − (1 − λ)·HLR, LRS = (e^α − e^−1)/(e − e^−1)."""
    lam = check_weight(lam, "lambda")
    s = _scale(compat)
    alpha = lam * s * np.asarray(ior, dtype=float) - (1.0 - lam) * s * np.asarray(hlr, dtype=float)
    return normalize(alpha)


def ars_from_gaps(gap_on: Any, gap_off: Any, gamma: float = 0.5, compat: str | None = None) -> Any:
    """ARS from the syn − rdm gaps with and without augmentation (linear, so means commute)."""
    gamma = check_weight(gamma, "gamma")
    s = _scale(compat)
    beta = gamma * s * np.asarray(gap_on, dtype=float) + (1.0 - gamma) * s * np.asarray(gap_off, dtype=float)
    return normalize(beta)


def ars(syn_on: Any, rdm_on: Any, syn_off: Any, rdm_off: Any, gamma: float = 0.5, compat: str | None = None) -> Any:
    """Augmentation-robust score: β = γ·(syn_on − rdm_on) + (1 − γ)·(syn_off − rdm_off)."""
    return ars_from_gaps(ior(syn_on, rdm_on), ior(syn_off, rdm_off), gamma, compat)

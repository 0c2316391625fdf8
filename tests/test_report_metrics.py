"""Golden values and properties of HLR, IOR, LRS and ARS (DESIGN §4), and the ddranking-0.2 compat mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddray.errors import InputError
from ddray.report import COLLAPSED_SCORE, ars, hlr, ior, lrs
from ddray.report.metrics import normalize

E = math.e
NORM = E - 1 / E  # e − e^−1


def test_hlr_and_ior_are_plain_differences():
    assert hlr(0.86, 0.30) == pytest.approx(0.56)
    assert ior(0.30, 0.35) == pytest.approx(-0.05)


def test_normalize_at_zero_is_one_over_one_plus_e():
    # (1 − e^−1)/(e − e^−1) = 1/(1 + e)
    assert normalize(0.0) == pytest.approx(0.26894142136999516)
    assert normalize(0.0) == pytest.approx(1 / (1 + E))


def test_lrs_lambda_one_is_ior_only():
    # α = IOR = 0.3 -> (e^0.3 − e^−1)/(e − e^−1); HLR must not matter
    assert lrs(hlr=0.9, ior=0.3, lam=1.0) == pytest.approx(0.41779202221530193)
    assert lrs(hlr=0.1, ior=0.3, lam=1.0) == pytest.approx(0.41779202221530193)


def test_lrs_lambda_zero_is_minus_hlr_only():
    # α = −HLR = −0.5
    assert lrs(hlr=0.5, ior=0.9, lam=0.0) == pytest.approx(0.1015363240915518)
    assert lrs(hlr=0.5, ior=-0.9, lam=0.0) == pytest.approx(0.1015363240915518)


def test_lrs_negative_ior():
    # α = 0.5·(−0.1) − 0.5·0.4 = −0.25
    assert lrs(hlr=0.4, ior=-0.1) == pytest.approx(0.17483020955155323)


def test_lrs_saturates_at_the_extremes():
    assert lrs(hlr=0.0, ior=1.0, lam=1.0) == pytest.approx(1.0)      # α = 1
    assert lrs(hlr=-1.0, ior=1.0, lam=0.5) == pytest.approx(1.0)     # syn beats full by 100 points and rdm by 100
    assert lrs(hlr=0.0, ior=-1.0, lam=1.0) == pytest.approx(0.0, abs=1e-15)   # α = −1
    assert lrs(hlr=1.0, ior=0.0, lam=0.0) == pytest.approx(0.0, abs=1e-15)


def test_ars_golden():
    # β = 0.5·(0.5 − 0.3) + 0.5·(0.4 − 0.35) = 0.125
    assert ars(0.5, 0.3, 0.4, 0.35) == pytest.approx(0.32559063760078766)
    # γ = 1: only the augmented gap counts
    assert ars(0.5, 0.3, 0.0, 1.0, gamma=1.0) == pytest.approx(normalize(0.2))


def test_vectorized_and_nan_propagates():
    out = lrs(np.array([0.4, np.nan, 0.5]), np.array([-0.1, 0.1, 0.9]), lam=np.float64(0.0))
    assert isinstance(out, np.ndarray)
    assert out[0] == pytest.approx(normalize(-0.4))
    assert np.isnan(out[1])
    assert isinstance(lrs(0.1, 0.1), float)


def test_compat_feeds_percentages_like_the_package():
    hlr_f, ior_f, lam = 0.4, 0.1, 0.5
    # ddranking 0.2.0: accuracies in percent, α = λ·IOR% − (1 − λ)·HLR%, same normalization
    alpha_pct = lam * ior_f * 100 - (1 - lam) * hlr_f * 100  # −15
    package = (np.exp(alpha_pct) - np.exp(-1)) / (np.exp(1) - np.exp(-1))
    got = lrs(hlr_f, ior_f, lam, compat="ddranking-0.2")
    assert got == pytest.approx(package, rel=1e-12)
    assert got == pytest.approx(-0.1565, abs=1e-4)


def test_compat_collapses_to_minus_0_1565():
    # e^α underflows for typical negative α in percent: (0 − e^−1)/(e − e^−1)
    assert COLLAPSED_SCORE == pytest.approx(-1 / E / NORM)
    assert COLLAPSED_SCORE == pytest.approx(-0.15651764274966568)
    assert lrs(0.9, -0.05, 0.5, compat="ddranking-0.2") == pytest.approx(COLLAPSED_SCORE, abs=1e-15)
    assert ars(0.1, 0.4, 0.1, 0.3, compat="ddranking-0.2") == pytest.approx(COLLAPSED_SCORE, abs=1e-10)  # β = −25


def test_bad_weights_and_compat_are_input_errors():
    with pytest.raises(InputError, match="lambda"):
        lrs(0.1, 0.1, lam=1.5)
    with pytest.raises(InputError, match="gamma"):
        ars(0.1, 0.1, 0.1, 0.1, gamma=-0.1)
    with pytest.raises(InputError, match="compat"):
        lrs(0.1, 0.1, compat="ddranking-9")


fraction = st.floats(0.0, 1.0, allow_nan=False)
inner = st.floats(0.001, 0.999, allow_nan=False)
weight = st.floats(0.0, 1.0, allow_nan=False)
TOL = 1e-12  # float rounding of α near ±1, e.g. λ·1 + (1 − λ)·1 = 1.0000000000000002


@settings(max_examples=300, deadline=None)
@given(full=fraction, syn_hard=fraction, syn=fraction, rdm=fraction, lam=weight)
def test_lrs_in_closed_unit_interval_for_fraction_accuracies(full, syn_hard, syn, rdm, lam):
    # HLR, IOR ∈ [−1, 1] so α (a convex combination of IOR and −HLR) ∈ [−1, 1]: LRS ∈ [0, 1],
    # closed: the bounds are reached at α = ±1 (e.g. syn 0 vs rdm 1 at λ = 1).
    score = lrs(hlr(full, syn_hard), ior(syn, rdm), lam)
    assert -TOL <= score <= 1 + TOL


@settings(max_examples=300, deadline=None)
@given(full=inner, syn_hard=inner, syn=inner, rdm=inner, lam=weight, on_s=inner, on_r=inner, gamma=weight)
def test_scores_in_open_unit_interval_for_interior_accuracies(full, syn_hard, syn, rdm, lam, on_s, on_r, gamma):
    # Accuracies strictly inside (0, 1) keep |α|, |β| < 1, so both scores are strictly inside (0, 1).
    assert 0.0 < lrs(hlr(full, syn_hard), ior(syn, rdm), lam) < 1.0
    assert 0.0 < ars(on_s, on_r, syn, rdm, gamma) < 1.0


@settings(max_examples=200, deadline=None)
@given(syn_on=fraction, rdm_on=fraction, syn_off=fraction, rdm_off=fraction, gamma=weight)
def test_ars_in_closed_unit_interval(syn_on, rdm_on, syn_off, rdm_off, gamma):
    assert -TOL <= ars(syn_on, rdm_on, syn_off, rdm_off, gamma) <= 1 + TOL


@settings(max_examples=300, deadline=None)
@given(h=st.floats(-1, 1), i=st.floats(-1, 0.99), d=st.floats(1e-6, 0.01), lam=st.floats(0.01, 1.0))
def test_lrs_strictly_increasing_in_ior(h, i, d, lam):
    assert lrs(h, i + d, lam) > lrs(h, i, lam)


@settings(max_examples=300, deadline=None)
@given(h=st.floats(-1, 0.99), i=st.floats(-1, 1), d=st.floats(1e-6, 0.01), lam=st.floats(0.0, 0.99))
def test_lrs_strictly_decreasing_in_hlr(h, i, d, lam):
    assert lrs(h + d, i, lam) < lrs(h, i, lam)

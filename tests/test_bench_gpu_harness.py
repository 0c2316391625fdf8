"""The GPU packing benchmark's harness (N engine processes per device) works; timings are not checked.

On a machine with CUDA this is the same code path `python -m benchmarks.gpu` runs; here it runs the
workers on the CPU with a few images so that a broken harness is caught before a GPU is rented.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import gpu

pytestmark = pytest.mark.slow  # starts worker processes and trains: not in `make test-fast`


def test_packing_harness_runs_workers_side_by_side(tmp_path):
    figures = gpu.main(["--device", "cpu", "--archs", "convnet-d3", "--fractions", "1", "0.5",
                        "--epochs", "1", "--ipc", "1", "--trials", "1", "--n-test", "64", "--out", str(tmp_path)])
    packing = {k: v for k, v in figures.items() if k.endswith("trials/h")}
    assert set(packing) == {"convnet-d3@1 trials/h", "convnet-d3@0.5 trials/h"} and all(v > 0 for v in packing.values())
    doc = (tmp_path / "gpu.md").read_text()
    assert "| convnet-d3 | 0.5 | 2 |" in doc and "Best default fraction: convnet-d3" in doc


def test_best_fraction_prefers_the_larger_share_on_ties():
    cells = [{"arch": "a", "fraction": 1.0, "trials_per_hour": 100.0},
             {"arch": "a", "fraction": 0.5, "trials_per_hour": 101.0},
             {"arch": "a", "fraction": 0.25, "trials_per_hour": 180.0},
             {"arch": "b", "fraction": 1.0, "trials_per_hour": 100.0},
             {"arch": "b", "fraction": 0.5, "trials_per_hour": 101.0}]
    assert gpu.best_fractions(cells) == {"a": 0.25, "b": 1.0}


def test_imagenet_trial_harness_runs_the_engine_on_cpu(tmp_path):
    """The RD³ ImageNet trial benchmark at toy sizes: same code path as on the GPU, figures not checked."""
    figures = gpu.main(["--imagenet", "--device", "cpu", "--classes", "4", "--size", "32", "--ipcs", "2",
                        "--batch", "4", "--steps", "3", "--n-eval", "8", "--out", str(tmp_path)])
    assert set(figures) == {"imagenet ipc2 train img/s", "imagenet ipc2 projected h/trial",
                            "imagenet ipc2 teacher-cl train img/s", "imagenet ipc2 teacher-cl projected h/trial"}
    assert all(v > 0 for v in figures.values())
    cells = json.loads((tmp_path / "imagenet.json").read_text())
    assert [c["steps"] for c in cells] == [4, 4]  # 3 steps rounded up to whole epochs of 2 steps
    assert "| 2 | as loaded (NCHW) | 4 |" in (tmp_path / "imagenet.md").read_text()
    assert not (tmp_path / "gpu.md").exists()  # --imagenet alone does not run the packing cells


def test_gpu_benchmarks_skip_cleanly_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the benchmark would run")
    assert gpu.main(["--all"]) == {}
    assert "gpu: skipped (no CUDA device here)" in capsys.readouterr().out


def test_syn_trial_with_a_uint8_test_split_runs():
    """The GPU data-plane figure: one syn trial, its test split uint8 and normalized on the device."""
    figures = gpu.main(["--device", "cpu", "--syn-only", "--archs", "convnet-d1-w16", "--epochs", "1", "--ipc", "1",
                        "--n-test", "48", "--syn-size", "16"])
    assert figures["syn_train_img_s"] > 0 and figures["syn_eval_img_s"] > 0
    assert figures["syn_test_float32_mib"] == 4 * figures["syn_test_uint8_mib"]
    assert figures["syn_trial_peak_mib"] == 0  # no device memory to measure on the CPU

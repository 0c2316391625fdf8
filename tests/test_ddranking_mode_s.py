"""`soft_labels: set` — DD-Ranking's soft_label_mode S (DATM): a set's stored logits are its targets,
and the random arm is labelled once, un-augmented, by the teacher."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ddray.data import PixelSpec
from ddray.engine.labels import label_once
from ddray.errors import InputError
from ddray.plan import arm_protocol
from ddray.protocols import resolve_protocol
from ddray.run.stages import set_soft_labels


def _teacher() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))


def test_the_rdm_arm_is_labelled_once_by_the_teacher_on_its_normalized_unaugmented_images():
    t = _teacher()
    x = torch.randint(0, 256, (7, 3, 4, 4), dtype=torch.uint8)
    prep = PixelSpec((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    got = label_once([t], x, prep, hybrid=False, device=torch.device("cpu"), batch=3)
    with torch.no_grad():
        want = t(prep(x))
    assert got.shape == (7, 5) and got.dtype == torch.float32
    torch.testing.assert_close(got, want)
    assert set_soft_labels(x, torch.arange(7) % 5, [t], prep, "soft", "cpu", "rdm").shape == (7, 5)


def test_a_set_keeps_its_stored_logits_and_a_set_of_class_ids_is_an_input_error():
    logits = torch.randn(4, 5)
    x = torch.randn(4, 3, 4, 4)
    assert set_soft_labels(x, logits, [_teacher()], None, "soft", "cpu", "syn") is logits
    with pytest.raises(InputError, match="soft_labels"):
        set_soft_labels(x, torch.arange(4), [_teacher()], None, "soft", "cpu", "syn")
    with pytest.raises(InputError, match="no teacher"):
        set_soft_labels(x, torch.arange(4), [], None, "soft", "cpu", "rdm")


def test_soft_labels_stays_out_of_keys_at_its_default_and_of_hard_arms():
    teacher = resolve_protocol("ddranking-soft")
    stored = resolve_protocol("ddranking-soft", {"soft_labels": "set"})
    assert "soft_labels" not in teacher.model_dump()
    assert stored.model_dump()["soft_labels"] == "set"
    assert arm_protocol(stored, "hard", True) == arm_protocol(teacher, "hard", True)
    assert arm_protocol(stored, "soft", True) != arm_protocol(teacher, "soft", True)

"""Model registry: DC ConvNets, CIFAR-style ResNet-18/50 and any `timm:<name>`.

Every built model exposes `embed(x)` (features before the classifier) for DM, herding, k-center.
"""

from __future__ import annotations

from .registry import build_model, list_models, model_family, validate_arch

__all__ = ["build_model", "list_models", "model_family", "validate_arch"]

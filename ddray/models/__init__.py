"""Model registry: DC ConvNets, CIFAR-style ResNet-18/50, any `timm:<name>`, and installed
`ddray.models` plugins.

Every built model exposes `embed(x)` (features before the classifier) for DM, herding, k-center.
"""

from __future__ import annotations

from .registry import ENTRY_POINT_GROUP, ModelFamily, build_model, list_models, model_family, validate_arch

__all__ = ["ENTRY_POINT_GROUP", "ModelFamily", "build_model", "list_models", "model_family",
           "validate_arch"]

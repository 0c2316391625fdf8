"""Model registry: DC ConvNets, CIFAR-style ResNet-18/50, any `timm:<name>`, any torchvision
classifier `tv:<name>`, and installed `ddray.models` plugins.

Every built model exposes `embed(x)` (features before the classifier) for DM, herding, k-center.
"""

from __future__ import annotations

from .registry import ENTRY_POINT_GROUP, ModelFamily, build_model, list_models, model_family, model_zoo, validate_arch

__all__ = ["ENTRY_POINT_GROUP", "ModelFamily", "build_model", "list_models", "model_family", "model_zoo",
           "validate_arch"]

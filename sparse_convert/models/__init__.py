"""Model registry and architectures: ``build_model("mlp" | "vgg16" | "vit_b16" | ..., num_classes, in_shape)``."""

from . import conv6fc2, mlp, vgg, vit  # noqa: F401  (register the architectures)
from .registry import available_models, build_model, register_model

__all__ = ["available_models", "build_model", "register_model"]

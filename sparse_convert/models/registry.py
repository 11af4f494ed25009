"""Model registry: ``build_model(name, num_classes, in_shape, **options)``, one file per architecture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..typecheck import check_call

ModelFactory = Callable[..., nn.Module]
_MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make ``fn(num_classes, in_shape, **options)`` buildable as ``name``."""

    def wrap(fn: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return wrap


def available_models() -> list[str]:
    """Names ``build_model`` accepts."""
    return sorted(_MODELS)


def build_model(name: str, num_classes: int, in_shape: tuple[int, ...], **options: Any) -> nn.Module:
    """Build model ``name`` for inputs of shape ``in_shape`` (C, H, W) and ``num_classes`` outputs."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    check_call(_MODELS[name], f"model {name!r}", num_classes=num_classes, in_shape=tuple(in_shape), **options)
    return _MODELS[name](num_classes=num_classes, in_shape=tuple(in_shape), **options)


def image_shape(model: str, in_shape: tuple[int, ...], multiple: int) -> tuple[int, int, int]:
    """``(channels, height, width)`` of an image input for ``model``, whose sides must be multiples of
    ``multiple`` (its poolings); a ``ValueError`` naming the model otherwise."""
    if len(in_shape) != 3:
        raise ValueError(f"{model} takes images (C, H, W), got inputs of shape {tuple(in_shape)} "
                         "(1-D signals such as mnist1d: use mlp)")
    channels, height, width = in_shape
    if height % multiple or width % multiple:
        raise ValueError(f"{model} needs inputs whose sides are multiples of {multiple}, got {height}x{width}")
    return channels, height, width

"""Vision Transformers from timm: ViT-B/16 (the paper's fourth row), any timm ViT by name, and a tiny ViT.

All three are timm ``VisionTransformer``s built by the same code. Sparse runs mask their linear
layers only: the patch embedding (a convolution) stays dense, as does the classifier
(``topology.default_dense_layers``). Weights come only from a
local safetensors file the user names (``pretrained=PATH``), never from a hub. On a
machine with internet, save timm's weights once with
``safetensors.torch.save_file(timm.create_model(name, pretrained=True).state_dict(), PATH)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from .registry import register_model

#: timm's name for ViT-B/16 at 224 × 224.
VIT_B16 = "vit_base_patch16_224"


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load the weights in safetensors file ``path`` into ``model``; returns the keys left as initialised.

    Only the classifier may differ (another number of classes): it keeps its fresh weights.
    Any other missing, unexpected or misshapen entry is an error naming it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {path} do not exist")
    try:
        state = load_file(str(path))
    except SafetensorError as err:
        raise ValueError(f"{path} is not a safetensors file: {err}") from None
    own = model.state_dict()
    head = getattr(model, "pretrained_cfg", {}).get("classifier", "head") + "."
    kept = [k for k in own if k.startswith(head) and (k not in state or state[k].shape != own[k].shape)]
    state = {k: v for k, v in state.items() if k not in kept}
    missing = sorted(set(own) - set(state) - set(kept))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
              if k in own and v.shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"pretrained weights {path} do not fit {type(model).__name__}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, shape mismatches {shapes[:5]}")
    model.load_state_dict(state, strict=False)
    return kept


def _square_side(in_shape: tuple[int, ...]) -> int:
    if len(in_shape) != 3 or in_shape[1] != in_shape[2]:
        raise ValueError(f"ViTs here take square images (C, H, H), got shape {tuple(in_shape)}")
    return int(in_shape[1])


def _check_patch(in_shape: tuple[int, ...], model: nn.Module) -> None:
    side, patch = _square_side(in_shape), model.patch_embed.patch_size[0]
    if side % patch:
        raise ValueError(f"image side {side} is not a multiple of the patch size {patch} (try --image-size)")


def _finish(model: nn.Module, in_shape: tuple[int, ...], pretrained: str | os.PathLike | None) -> nn.Module:
    _check_patch(in_shape, model)
    model.keep_dense = ("patch_embed.proj",)  # the paper sparsifies the linear layers; the classifier is dense too
    # percolation chains: only fc1 → fc2 feeds forward directly; residual sums break the others
    model.percolation_chains = [[f"blocks.{i}.mlp.fc1", f"blocks.{i}.mlp.fc2"] for i in range(len(model.blocks))]
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


@register_model("vit")
def timm_vit(num_classes: int, in_shape: tuple[int, ...], variant: str = VIT_B16,
             pretrained: str | os.PathLike | None = None, **timm_options: Any) -> nn.Module:
    """timm ViT ``variant`` (any ``vit_*`` name timm knows) for ``in_shape`` inputs, from local weights if given."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    if variant not in timm.list_models("vit_*"):
        raise ValueError(f"unknown timm ViT {variant!r}; e.g. {VIT_B16}, vit_small_patch16_224, vit_large_patch16_224")
    options = {"num_classes": num_classes, "img_size": _square_side(in_shape), "in_chans": in_shape[0], **timm_options}
    probe = timm.create_model(variant, pretrained=False, **{**options, "device": "meta"})  # checks, no init cost
    if not isinstance(probe, VisionTransformer):
        raise ValueError(f"{variant} is a {type(probe).__name__}, not a timm VisionTransformer")
    _check_patch(in_shape, probe)
    return _finish(timm.create_model(variant, pretrained=False, **options), in_shape, pretrained)


@register_model("vit_b16")
def vit_b16(num_classes: int, in_shape: tuple[int, ...], pretrained: str | os.PathLike | None = None,
            **timm_options: Any) -> nn.Module:
    """ViT-B/16 (timm's ``vit_base_patch16_224``): 12 blocks, 768 wide, 12 heads, 16 × 16 patches."""
    return timm_vit(num_classes, in_shape, VIT_B16, pretrained, **timm_options)


#: MLP activations a ViT here can be built with.
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


@register_model("vit_tiny")
def vit_tiny(num_classes: int, in_shape: tuple[int, ...], patch: int | None = None, dim: int = 48, depth: int = 2,
             heads: int = 3, mlp_ratio: float = 2.0, act: str = "relu", weight_init: str = "jax",
             pretrained: str | os.PathLike | None = None) -> nn.Module:
    """A timm ViT small enough to train on 8 × 8 digits on a CPU in a minute; ``patch`` defaults to side / 4.

    Its MLPs use ReLU, as SpikeZIP-TF's ViTs do (``act="gelu"`` for timm's default). It starts
    from timm's JAX-style initialisation: with timm's default (trunc-normal σ = 0.02) the
    dense tiny ViT does not learn digits with SGD (17.6 % after the CLI's 30 epochs, against
    94.9 % with ``weight_init="jax"``).
    """
    from timm.models.vision_transformer import VisionTransformer

    side = _square_side(in_shape)
    patch = max(1, side // 4) if patch is None else int(patch)
    if dim % heads:
        raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
    model = VisionTransformer(img_size=side, patch_size=patch, in_chans=in_shape[0], num_classes=num_classes,
                              embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                              act_layer=ACTIVATIONS[act], weight_init=weight_init)
    return _finish(model, in_shape, pretrained)

"""Method 4, SpikeZIP-TF (You et al., ICML 2024): a quantized ANN trained with LSQ, then ST-BIF+ neurons.

1. QANN. Quantizers with a learnable step (``LSQQuantizer``, ``levels`` levels) go where
   the reference puts them: after every LayerNorm (signed: the inputs of qkv, fc1 and
   the head), on q, k and v (signed), after the softmax (unsigned), after ``attn @ v``
   (signed), after the attention's and the MLP's output projections and after the patch
   embedding (signed: everything added to the residual stream), and in place of every
   GELU / ReLU (unsigned: a quantized ReLU). With ``softmax=False`` attention is the
   reference's ReLU attention, ``quant(q·kᵀ·scale) / N``. A model without attention (an
   MLP, a VGG) gets the unsigned quantizers only; max-pooling becomes average pooling.
   The steps start at LSQ's value on one batch, then the QANN is fine-tuned
   (quantization-aware training); masks hold their zeros through any optimizer.
2. SNN. Each quantizer becomes an ``STBIFNode`` (θ = s), LayerNorm and softmax become
   SpikingJelly's spike-equivalent ``SpikeZIPLayerNorm`` / ``SpikeZIPSoftmax``, each
   activation-activation product a ``SpikeMatMul``; BatchNorm folds into the convolutions.
   The input is analog at the first step only (``FirstStepEncoder``), so every bias, and a
   ViT's class token and position embedding, enters once, at step 0 (``BiasOnce``).
   The linear layers stay plain ``nn.Linear`` / ``nn.Conv2d`` with their masks: they are
   linear, so feeding them increments gives increments.

Once every node has settled, the output summed over steps equals the QANN's output
(``tests/test_spikezip.py``). SpikingJelly's ``SpikeZIPTFQANNRecipe`` converts the same
QANN but swaps the linear layers for ``TDLinear`` subclasses that compute on running sums,
which our masks and event counters do not see; its single-step ViT attention reads the
nodes' states. Here the attention is ``QuantAttention``, whose one ``forward`` runs both
the QANN and, with its submodules swapped, the time-folded SNN.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice

import torch
from spikingjelly.activation_based.ann2snn.recipes.spikezip_qann import SpikeZIPLayerNorm, SpikeZIPSoftmax
from torch import Tensor, nn

from ..encoding import FirstStepEncoder
from ..neurons.spike_ops import MatMul, SpikeMatMul
from ..neurons.stbif import LSQQuantizer, STBIFNode, level_bounds
from ..training import fit, make_loader
from .base import ConversionMethod, FineTuneOptions, MethodContext, register_method
from .snn import SpikingNetwork, TimeFold
from .transforms import BiasOnce, maxpool_to_avgpool, named_leaves, replace_modules

#: Activations that become unsigned quantizers (quantized ReLUs), as in the reference's ReLU ViT.
ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.GELU)
#: Nonlinear modules the conversion has no spike-equivalent for.
UNSUPPORTED: tuple[type[nn.Module], ...] = (nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Mish, nn.ELU,
                                            nn.LeakyReLU, nn.MultiheadAttention)


@dataclass
class SpikeZIPOptions(FineTuneOptions):
    """Options of method 4: FitConfig's training fields (the QAT stage), quantization levels (the reference
    uses 16 or 32), attention kind, calibration batches."""

    fit_defaults = {"epochs": 10, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0, "optimizer": "adamw"}
    levels: int = 16
    softmax: bool = True
    calibration_batches: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        level_bounds(self.levels, signed=True)
        if self.calibration_batches < 1:
            raise ValueError(f"calibration_batches must be >= 1, got {self.calibration_batches}")


class QuantAttention(nn.Module):
    """SpikeZIP-TF's multi-head self-attention with its quantizers; takes and returns ``[B, N, C]``.

    ``q, k, v = quant(qkv(x))``; ``A = quant(softmax(q @ kᵀ · scale))`` (or
    ``quant(q @ kᵀ · scale) / N`` without softmax); ``out = quant(proj(quant(A @ v)))``.
    The products are ``MatMul`` modules and the softmax an ``nn.Softmax``, so conversion
    swaps them (and the quantizers) for their spike-equivalent modules in place.
    """

    def __init__(self, qkv: nn.Linear, proj: nn.Linear, num_heads: int, levels: int, *, softmax: bool = True,
                 attn_drop: nn.Module | None = None, proj_drop: nn.Module | None = None):
        super().__init__()
        if qkv.out_features % (3 * num_heads):
            raise ValueError(f"qkv has {qkv.out_features} outputs, not 3 x a multiple of {num_heads} heads")
        self.num_heads = int(num_heads)
        self.head_dim = qkv.out_features // (3 * num_heads)
        self.softmax_enabled = bool(softmax)
        self.qkv = qkv
        self.quant_q = LSQQuantizer(levels, signed=True)
        self.quant_k = LSQQuantizer(levels, signed=True)
        self.quant_v = LSQQuantizer(levels, signed=True)
        self.qk = MatMul(self.head_dim ** -0.5)
        self.softmax = nn.Softmax(dim=-1) if softmax else nn.Identity()
        self.quant_attn = LSQQuantizer(levels, signed=False)
        self.attn_drop = attn_drop or nn.Identity()
        self.av = MatMul(1.0)
        self.quant_out = LSQQuantizer(levels, signed=True)
        self.proj = proj
        self.proj_drop = proj_drop or nn.Identity()
        self.quant_proj = LSQQuantizer(levels, signed=True)

    @classmethod
    def from_timm(cls, attn: nn.Module, levels: int, softmax: bool = True) -> QuantAttention:
        """Wrap the layers of a timm ``Attention`` (qk-norm, scale-norm and gated variants are refused)."""
        extras = [name for name in ("q_norm", "k_norm", "norm") if not isinstance(getattr(attn, name), nn.Identity)]
        if getattr(attn, "gate", None) is not None:
            extras.append("gate")
        if extras:
            raise ValueError(f"timm Attention with {extras} has no SpikeZIP-TF conversion")
        return cls(attn.qkv, attn.proj, attn.num_heads, levels, softmax=softmax,
                   attn_drop=attn.attn_drop, proj_drop=attn.proj_drop)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("QuantAttention does not take attention masks")
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k, v = self.quant_q(q), self.quant_k(k), self.quant_v(v)
        attn = self.quant_attn(self.softmax(self.qk(q, k.transpose(-2, -1))))
        out = self.av(self.attn_drop(attn), v)
        if not self.softmax_enabled:
            out = out / tokens
        out = self.quant_out(out.transpose(1, 2).reshape(batch, tokens, self.num_heads * self.head_dim))
        return self.quant_proj(self.proj_drop(self.proj(out)))

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, head_dim={self.head_dim}, softmax={self.softmax_enabled}"


def quantize_ann(model: nn.Module, levels: int, softmax: bool = True) -> nn.Module:
    """Turn ``model`` into SpikeZIP-TF's QANN in place (see the module docstring); returns it."""
    from timm.layers import Attention, Mlp, PatchEmbed

    unsupported = sorted({type(m).__name__ for m in model.modules() if isinstance(m, UNSUPPORTED)})
    if unsupported:
        raise ValueError(f"SpikeZIP-TF has no spike-equivalent for {unsupported} in {type(model).__name__}")
    attention = replace_modules(model, Attention, lambda _, m: QuantAttention.from_timm(m, levels, softmax))
    others = sorted({type(m).__name__ for m in model.modules()
                     if "Attention" in type(m).__name__ and not isinstance(m, QuantAttention)})
    if others:
        raise ValueError(f"{type(model).__name__} has attention modules {others} other than timm's Attention")
    for mlp in [m for m in model.modules() if isinstance(m, Mlp)]:
        mlp.fc2 = nn.Sequential(mlp.fc2, LSQQuantizer(levels, signed=True))
    for embed in [m for m in model.modules() if isinstance(m, PatchEmbed)]:
        embed.proj = nn.Sequential(embed.proj, LSQQuantizer(levels, signed=True))
    norms = replace_modules(model, nn.LayerNorm, lambda _, ln: nn.Sequential(ln, LSQQuantizer(levels, signed=True)))
    acts = replace_modules(model, ACTIVATIONS, lambda *_: LSQQuantizer(levels, signed=False))
    if not (attention or norms or acts):
        raise ValueError(f"{type(model).__name__} has no ReLU, GELU, LayerNorm or attention to quantize")
    maxpool_to_avgpool(model)
    return model


@contextmanager
def calibrating(model: nn.Module) -> Iterator[None]:
    """Within the block, every ``LSQQuantizer`` sets its step from the inputs it sees (LSQ's initial value,
    over every batch of the block)."""
    quantizers = list(named_leaves(model, LSQQuantizer).values())
    for q in quantizers:
        q.start_calibration()
    try:
        yield
    finally:
        for q in quantizers:
            q.stop_calibration()


def inject_embeddings_once(model: nn.Module) -> list[str]:
    """For every timm ``VisionTransformer`` in ``model``: add its class/register tokens and position
    embedding at step 0 only (a ``BiasOnce`` after ``pos_drop``) and zero them in the model."""
    from timm.models.vision_transformer import VisionTransformer

    done = []
    for name, vit in list(model.named_modules()):
        if not isinstance(vit, VisionTransformer):
            continue
        if vit.dynamic_img_size or getattr(vit, "attn_pool", None) is not None:
            raise ValueError("ViTs with dynamic image size or attention pooling have no SpikeZIP-TF conversion")
        params = [p for p in (vit.cls_token, vit.reg_token, vit.pos_embed) if p is not None]
        with torch.no_grad():
            grid = torch.zeros(1, vit.patch_embed.num_patches, vit.embed_dim, device=params[0].device,
                               dtype=params[0].dtype)
            prefix = vit._pos_embed(grid)[0]  # what the tokens and embeddings add to zero patches, [N, D]
            for p in params:
                p.zero_()
        vit.pos_drop = nn.Sequential(vit.pos_drop, TimeFold(BiasOnce(prefix, channel_dim=None)))
        done.append(name)
    return done


@register_method
class SpikeZIP(ConversionMethod):
    """SpikeZIP-TF: LSQ-quantized ANN, then ST-BIF+ neurons and spike-equivalent softmax, LayerNorm, attention."""

    name = "spikezip"
    epoch_options = ("epochs",)
    Options = SpikeZIPOptions

    def prepare(self, ann: nn.Module, ctx: MethodContext) -> nn.Module:
        opts = self.options
        quantize_ann(ann, opts.levels, opts.softmax)
        ann.to(ctx.device)
        loader = make_loader(ctx.data.train, opts.batch_size, shuffle=True, seed=ctx.seed)
        ann.eval()  # fit() switches back to training mode
        with torch.no_grad(), calibrating(ann):
            for x, _ in islice(loader, opts.calibration_batches):
                ann(x.to(ctx.device))
        fit(ann, ctx.data.train, opts.fit_config(), device=ctx.device, seed=ctx.seed,
            desc="SpikeZIP-TF QAT", progress=ctx.progress)
        return ann

    def build(self, ann: nn.Module, window: int | None) -> SpikingNetwork:
        body = self.snn_body(ann, {
            LSQQuantizer: lambda _, q: STBIFNode.from_quantizer(q),
            nn.LayerNorm: lambda _, ln: SpikeZIPLayerNorm(ln),
            nn.Softmax: lambda _, sm: SpikeZIPSoftmax(-1 if sm.dim is None else sm.dim),
            MatMul: lambda _, op: SpikeMatMul.from_matmul(op),
        }, bias_once=True)
        inject_embeddings_once(body)
        return SpikingNetwork(body, FirstStepEncoder())

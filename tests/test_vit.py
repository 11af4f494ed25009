"""ViTs from timm: ViT-B/16 and the tiny digits ViT, weights only from a local safetensors file."""

import pytest
import torch
from safetensors.torch import save_file

from sparse_convert.cli import _run_config, build_parser
from sparse_convert.models import build_model


def test_vit_b16_is_timms_vit_base_patch16_224():
    model = build_model("vit_b16", 1000, (3, 224, 224), device="meta")  # the architecture, no weights
    assert type(model).__name__ == "VisionTransformer"
    assert len(model.blocks) == 12 and model.embed_dim == 768 and model.blocks[0].attn.num_heads == 12
    assert model.patch_embed.patch_size == (16, 16) and model.patch_embed.num_patches == 196
    assert sum(p.numel() for p in model.parameters()) == 86_567_656


def test_vit_tiny_fits_digits_and_is_small():
    model = build_model("vit_tiny", 10, (1, 8, 8))
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    assert model.patch_embed.num_patches == 16 and len(model.blocks) == 2
    assert sum(p.numel() for p in model.parameters()) < 50_000


def test_image_side_must_fit_the_patch():
    with pytest.raises(ValueError, match="image side 8 is not a multiple of the patch size 16"):
        build_model("vit_b16", 10, (1, 8, 8))
    with pytest.raises(ValueError, match="unknown timm ViT"):
        build_model("vit", 10, (3, 32, 32), variant="resnet50")


def test_pretrained_weights_load_from_a_local_safetensors_file(tmp_path):
    torch.manual_seed(0)
    source = build_model("vit_tiny", 10, (1, 8, 8))
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    same = build_model("vit_tiny", 10, (1, 8, 8), pretrained=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(same.state_dict()[key], value), key
    # another number of classes: everything but the classifier comes from the file
    other = build_model("vit_tiny", 3, (1, 8, 8), pretrained=str(path))
    assert torch.equal(other.blocks[1].mlp.fc2.weight, source.blocks[1].mlp.fc2.weight)
    assert other.head.weight.shape == (3, 48)


def test_bad_pretrained_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors do not exist"):
        build_model("vit_tiny", 10, (1, 8, 8), pretrained=str(tmp_path / "missing.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="is not a safetensors file"):
        build_model("vit_tiny", 10, (1, 8, 8), pretrained=str(junk))
    deeper = tmp_path / "deeper.safetensors"
    save_file({k: v.contiguous() for k, v in build_model("vit_tiny", 10, (1, 8, 8), depth=3).state_dict().items()},
              str(deeper))
    with pytest.raises(ValueError, match="unexpected \\['blocks.2"):
        build_model("vit_tiny", 10, (1, 8, 8), pretrained=str(deeper))


def test_cli_pretrained_flag_becomes_a_model_option():
    args = build_parser().parse_args(["run", "--model", "vit_b16", "--dataset", "imagenet", "--data-root", "d",
                                      "--pretrained", "vit_b16.safetensors", "--method", "spikezip", "--out", "o"])
    config = _run_config(args)
    assert config.model_options == {"pretrained": "vit_b16.safetensors"} and config.method == "spikezip"

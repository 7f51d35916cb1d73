"""In-context conditioning: zero-initialised channels, the MAE patch mask, IC-Light offsets, the ControlNet branch."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from icportrait_studio.model.check import ModelFolderError, validate_model_folder  # noqa: E402
from icportrait_studio.model.conditioning import (  # noqa: E402
    apply_iclight_offset,
    assemble_input,
    masked_patch_count,
    patch_mask,
    widen_unet_input,
)
from icportrait_studio.model.layout import iclight_layout, icportrait_layout  # noqa: E402
from icportrait_studio.model.tiny import save_tiny_model, tiny_components  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base_unet():
    return tiny_components(seed=3, layout="base")["unet"]


def _unet_out(unet, x: torch.Tensor, t: int = 500) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    text = torch.randn(x.shape[0], 16, 32, generator=g)
    with torch.no_grad():
        return unet(x, t, encoder_hidden_states=text).sample


def test_zero_init_channels_leave_the_base_output_unchanged(base_unet) -> None:
    torch.manual_seed(0)
    noisy = torch.randn(2, 4, 16, 16)
    expected = _unet_out(base_unet, noisy)
    wide = widen_unet_input(copy.deepcopy(base_unet), icportrait_layout().in_channels)
    assert wide.config.in_channels == 13 and wide.conv_in.weight.shape[1] == 13
    extra = torch.randn(2, 9, 16, 16) * 5  # whatever the reference/condition/mask hold
    got = _unet_out(wide, torch.cat([noisy, extra], dim=1))
    assert torch.equal(wide.conv_in.weight[:, :4], base_unet.conv_in.weight)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # An IC-Light (8-channel) UNet widened to IC-Portrait keeps its first 8 channels' behaviour too.
    ic = widen_unet_input(copy.deepcopy(base_unet), iclight_layout().in_channels)
    with torch.no_grad():
        ic.conv_in.weight[:, 4:].normal_()
    x8 = torch.cat([noisy, torch.randn(2, 4, 16, 16)], dim=1)
    before = _unet_out(ic, x8)
    after = _unet_out(widen_unet_input(ic, 13), torch.cat([x8, torch.randn(2, 5, 16, 16)], dim=1))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="narrow"):
        widen_unet_input(ic, 4)


@pytest.mark.parametrize(("h", "w", "patch", "ratio"), [
    (16, 16, 2, 0.8), (64, 48, 4, 0.8), (32, 32, 8, 0.75), (20, 30, 5, 0.5), (16, 16, 4, 0.0), (8, 8, 1, 0.9),
])
def test_patch_mask_covers_exactly_the_configured_ratio(h: int, w: int, patch: int, ratio: float) -> None:
    g = torch.Generator().manual_seed(7)
    mask = patch_mask(5, h, w, patch, ratio, generator=g)
    assert mask.shape == (5, 1, h, w)
    assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    n = (h // patch) * (w // patch)
    k = masked_patch_count(n, ratio)
    assert k == round(ratio * n)
    grid = mask.view(5, h // patch, patch, w // patch, patch)
    per_patch = grid.mean(dim=(2, 4))
    assert torch.all((per_patch == 0) | (per_patch == 1)), "a patch is masked whole or not at all"
    assert per_patch.sum(dim=(1, 2)).tolist() == [float(k)] * 5, "every sample masks exactly k patches"
    assert torch.allclose(mask.mean(dim=(1, 2, 3)), torch.full((5,), k / n))
    if 0 < k < n:
        assert not torch.equal(mask[0], mask[1]), "samples get different patches"
    again = patch_mask(5, h, w, patch, ratio, generator=torch.Generator().manual_seed(7))
    assert torch.equal(mask, again)


def test_patch_mask_rejects_a_grid_that_does_not_split() -> None:
    with pytest.raises(ValueError, match="patches"):
        patch_mask(1, 18, 16, 4, 0.8)
    assert masked_patch_count(4, 1.0) == 3, "one patch always stays visible to carry the light"


def test_assemble_input_orders_groups_and_zero_fills_absent_ones() -> None:
    noisy, ref, cond = torch.ones(2, 4, 8, 8), torch.full((1, 4, 8, 8), 2.0), torch.full((2, 4, 8, 8), 3.0)
    x = assemble_input(icportrait_layout(), noisy, reference=ref, condition=cond)
    assert x.shape == (2, 13, 8, 8)
    assert x[:, :4].eq(1).all() and x[:, 4:8].eq(2).all() and x[:, 8:12].eq(3).all() and x[:, 12:].eq(0).all()
    with pytest.raises(ValueError, match="condition"):
        assemble_input(icportrait_layout(), noisy, condition=torch.ones(2, 3, 8, 8))


def _iclight_offset(unet, seed: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    offset = {}
    for k, v in unet.state_dict().items():
        shape = list(v.shape)
        if k == "conv_in.weight":
            shape[1] = 8
        offset[k] = (torch.randn(shape, generator=g) * 0.01).to(torch.float16)  # IC-Light ships fp16 offsets
    return offset


def test_iclight_offset_file_loads_onto_a_tiny_unet(tmp_path: Path, base_unet) -> None:
    from safetensors.torch import save_file

    unet = copy.deepcopy(base_unet)
    original = {k: v.clone() for k, v in unet.state_dict().items()}
    offset = _iclight_offset(unet)
    path = tmp_path / "iclight_sd15_fc.safetensors"
    save_file(offset, str(path))
    apply_iclight_offset(unet, path)
    assert unet.config.in_channels == 8
    merged = unet.state_dict()
    for k, v in original.items():
        expected = v + offset[k].float() if k != "conv_in.weight" else None
        if expected is not None:
            torch.testing.assert_close(merged[k], expected)
    conv = merged["conv_in.weight"]
    torch.testing.assert_close(conv[:, :4], original["conv_in.weight"] + offset["conv_in.weight"][:, :4].float())
    torch.testing.assert_close(conv[:, 4:], offset["conv_in.weight"][:, 4:].float())  # zero-init + offset
    # The foreground latent now matters.
    noisy = torch.randn(1, 4, 16, 16)
    a = _unet_out(unet, torch.cat([noisy, torch.zeros(1, 4, 16, 16)], 1))
    b = _unet_out(unet, torch.cat([noisy, torch.randn(1, 4, 16, 16)], 1))
    assert (a - b).abs().max() > 1e-4

    bad = dict(offset)
    bad["down_blocks.0.resnets.0.conv1.weight"] = torch.zeros(3, 3)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ModelFolderError, match="does not fit"):
        apply_iclight_offset(copy.deepcopy(base_unet), tmp_path / "bad.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFolderError, match="cannot read"):
        apply_iclight_offset(copy.deepcopy(base_unet), tmp_path / "garbage.safetensors")


def test_iclight_folder_runs_through_the_same_pipeline(tmp_path: Path, base_unet) -> None:
    from safetensors.torch import save_file

    from icportrait_studio.model.pipeline import ICPortraitPipeline

    folder = save_tiny_model(tmp_path / "sd15", seed=3, layout="base")
    save_file(_iclight_offset(base_unet), str(folder / "iclight_sd15_fc.safetensors"))
    check = validate_model_folder(folder)
    assert check.ok and check.kind == "iclight" and check.iclight_offset
    pipe = ICPortraitPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.layout.name == "iclight-fc" and pipe.unet.config.in_channels == 8
    rng = np.random.default_rng(0)
    photo, shading = rng.random((32, 32, 3), dtype=np.float32), rng.random((32, 32, 3), dtype=np.float32)
    # The rig's rendered shading is the initial latent; the photo is the foreground condition.
    out = pipe(photo, shading, "a portrait photo", strength=0.9, num_inference_steps=3, guidance_scale=2.0, seed=0)
    assert out.images.shape == (1, 32, 32, 3) and np.isfinite(out.images).all()


def test_controlnet_branch_is_standard_and_starts_neutral() -> None:
    from diffusers import ControlNetModel

    from icportrait_studio.model.pipeline import ICPortraitPipeline

    comps = tiny_components(seed=4, layout="icportrait", controlnet=True)
    cn = comps["controlnet"]
    assert isinstance(cn, ControlNetModel) and cn.config.in_channels == 4 and cn.conv_in.weight.shape[1] == 4
    with_cn = ICPortraitPipeline(**comps)
    without = ICPortraitPipeline(**{**comps, "controlnet": None})
    rng = np.random.default_rng(1)
    ref, cond = rng.random((32, 32, 3), dtype=np.float32), rng.random((32, 32, 3), dtype=np.float32)
    for p in (with_cn, without):
        p.set_progress_bar_config(disable=True)
    kw = {"strength": 0.6, "num_inference_steps": 3, "guidance_scale": 2.0, "seed": 2}
    a = with_cn(ref, cond, "a portrait photo", **kw).images
    b = without(ref, cond, "a portrait photo", **kw).images
    np.testing.assert_allclose(a, b, atol=1e-5)  # zero convolutions: an untrained branch changes nothing

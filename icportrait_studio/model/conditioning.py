"""In-context conditioning: widen a UNet's input, merge IC-Light offsets, build a ControlNet branch, mask patches.

The IC-Portrait paper feeds its conditions by concatenating latents with the noisy latent. New input
channels start at zero, so a pretrained base model computes exactly what it did before: training
then only has to learn how to *use* the reference and condition, not to recover from a broken input.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from icportrait_studio.model.check import ModelFolderError
from icportrait_studio.model.layout import ChannelLayout

log = logging.getLogger(__name__)


@torch.no_grad()
def widen_unet_input(unet: nn.Module, in_channels: int) -> nn.Module:
    """Give ``unet.conv_in`` ``in_channels`` inputs (in place); the added ones are zero-initialised.

    The existing weights stay in the first channels, so a zero-weighted extra input cannot change
    the output whatever it holds. Narrowing is refused (it would throw trained weights away).
    """
    old: nn.Conv2d = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if in_channels < old.in_channels:
        raise ValueError(f"cannot narrow a UNet input from {old.in_channels} to {in_channels} channels")
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    dilation=old.dilation, groups=old.groups, bias=old.bias is not None,
                    padding_mode=old.padding_mode, device=old.weight.device, dtype=old.weight.dtype)
    new.weight.zero_()
    new.weight[:, : old.in_channels].copy_(old.weight)
    if old.bias is not None:
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


@torch.no_grad()
def apply_iclight_offset(unet: nn.Module, path: str | Path) -> nn.Module:
    """Merge an IC-Light offset file (``iclight_sd15_fc.safetensors``) into a 4-channel SD1.5 UNet.

    IC-Light ships its model as *differences* to SD1.5 over the whole diffusers state dict, with an
    8-channel ``conv_in`` (noisy latent ‖ foreground latent). We widen the UNet to match, then add the
    offsets key by key. A file whose keys or shapes do not fit raises ``ModelFolderError`` naming them.
    """
    from safetensors.torch import load_file

    path = Path(path)
    try:
        offset = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise ModelFolderError(f"cannot read the IC-Light offset file {path}: {exc}") from exc
    conv = offset.get("conv_in.weight")
    if conv is None or conv.ndim != 4:
        raise ModelFolderError(f"{path.name} is not an IC-Light UNet offset (no 4-D conv_in.weight)")
    widen_unet_input(unet, int(conv.shape[1]))
    state = unet.state_dict()
    unknown = sorted(set(offset) - set(state))
    if unknown:
        raise ModelFolderError(f"{path.name} does not fit this UNet: {len(unknown)} unknown key(s), e.g. {unknown[0]}")
    bad = [k for k, v in offset.items() if tuple(v.shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise ModelFolderError(f"{path.name} does not fit this UNet: {k} is {tuple(offset[k].shape)}, "
                               f"the UNet's is {tuple(state[k].shape)}")
    not_covered = len(set(state) - set(offset))
    if not_covered:
        log.warning("%s leaves %d UNet tensors unchanged", path.name, not_covered)
    merged = {k: (v.float() + offset[k].float()).to(v.dtype) if k in offset else v for k, v in state.items()}
    unet.load_state_dict(merged, strict=True)
    return unet


def build_controlnet(unet: nn.Module, vae_scale_factor: int, latent_channels: int = 4) -> nn.Module:
    """A standard diffusers ``ControlNetModel`` initialised from ``unet``'s encoder.

    Its ``conv_in`` takes the plain noisy latent (``latent_channels``), as every ControlNet pipeline
    feeds it, and its conditioning image is the same condition render the UNet gets as a latent, so
    the trained branch also plugs into ``StableDiffusionControlNetPipeline`` unchanged. The
    conditioning embedding downsamples by exactly ``vae_scale_factor`` (one stride-2 stage per octave).
    """
    from diffusers import ControlNetModel

    stages = max(1, int(vae_scale_factor).bit_length())  # 8 -> 4 stages (3 stride-2 convs), 2 -> 2
    channels = (16, 32, 96, 256)[:stages] if stages <= 4 else (16, 32, 96, 256) + (256,) * (stages - 4)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=channels)
    with torch.no_grad():
        old = controlnet.conv_in
        new = nn.Conv2d(latent_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                        device=old.weight.device, dtype=old.weight.dtype)
        new.weight.copy_(old.weight[:, :latent_channels])
        new.bias.copy_(old.bias)
        controlnet.conv_in = new
    controlnet.register_to_config(in_channels=latent_channels)
    return controlnet


def masked_patch_count(n_patches: int, ratio: float) -> int:
    """How many of ``n_patches`` a ``ratio`` masks: rounded, and never all of them (one stays visible)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError("mask ratio must be in 0..1")
    return min(round(ratio * n_patches), max(0, n_patches - 1))


def patch_mask(batch: int, height: int, width: int, patch: int, ratio: float, *,
               generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """MAE-style random patch mask, shape (batch, 1, height, width), 1 = masked.

    Exactly ``masked_patch_count(n, ratio)`` of the ``(height/patch)·(width/patch)`` patches are masked in
    every sample (a random permutation, not a per-patch coin flip), so the visible share that carries
    the target's light is the same in every batch.
    """
    if patch < 1 or height % patch or width % patch:
        raise ValueError(f"a {height}x{width} grid does not split into {patch}x{patch} patches")
    gh, gw = height // patch, width // patch
    n = gh * gw
    k = masked_patch_count(n, ratio)
    grid = torch.zeros(batch, n)
    for b in range(batch):
        order = torch.randperm(n, generator=generator)
        grid[b, order[:k]] = 1.0
    grid = grid.view(batch, 1, gh, gw)
    mask = grid.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)
    return mask.to(device) if device is not None else mask


def assemble_input(layout: ChannelLayout, noisy: torch.Tensor, *, reference: torch.Tensor | None = None,
                   condition: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Concatenate the groups a layout asks for, in its order; absent ones are zeros (= unknown).

    Absent groups are zeros rather than errors so one code path serves the base layout (only the
    noisy latent), IC-Light (reference = foreground) and IC-Portrait.
    """
    parts = {"noisy": noisy, "reference": reference, "condition": condition, "mask": mask}
    out = []
    b, _, h, w = noisy.shape
    for name, n in layout.groups:
        t = parts.get(name)
        if t is None:
            t = torch.zeros(b, n, h, w, device=noisy.device, dtype=noisy.dtype)
        elif t.shape[0] != b:
            t = t.expand(b, *t.shape[1:]) if t.shape[0] == 1 else t
        if t.shape[1] != n or t.shape[2:] != (h, w):
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected (B, {n}, {h}, {w})")
        out.append(t.to(device=noisy.device, dtype=noisy.dtype))
    return torch.cat(out, dim=1)

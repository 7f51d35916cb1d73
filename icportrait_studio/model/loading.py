"""Load an ``ICPortraitPipeline`` from a local folder, component by component, never from a hub.

Why not ``DiffusionPipeline.from_pretrained`` as is: an SD1.5 snapshot's ``model_index.json`` names
another pipeline class and components we do not use (safety checker), and a base UNet must be
widened (or have the IC-Light offset merged) between loading and use. Loading each part ourselves
with ``local_files_only=True`` also lets a bad folder fail with one clear message *before* torch
spends a minute reading weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from icportrait_studio.model.check import ModelFolderError, require_model_folder
from icportrait_studio.model.conditioning import apply_iclight_offset, widen_unet_input
from icportrait_studio.model.device import cast_module
from icportrait_studio.model.layout import icportrait_layout

log = logging.getLogger(__name__)


def _variant(sub: Path, stem: str) -> str | None:
    """'fp16' when only the fp16 variant of the weights is present (diffusers needs to be told)."""
    plain = any((sub / f"{stem}{ext}").is_file() for ext in (".safetensors", ".bin", ".safetensors.index.json"))
    fp16 = any((sub / f"{stem}.fp16{ext}").is_file() for ext in (".safetensors", ".bin"))
    return "fp16" if fp16 and not plain else None


def load_scheduler(folder: Path, name: str | None = None):
    """The folder's scheduler, or ``name`` (a diffusers class such as 'DPMSolverMultistepScheduler')
    built from the folder's scheduler config (the noise schedule must match the training one)."""
    import diffusers

    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    cls_name = name or config.get("_class_name", "DDIMScheduler")
    cls = getattr(diffusers, cls_name, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise ModelFolderError(f"unknown scheduler {cls_name!r} in {config_path}")
    return cls.from_config(config)


def load_pipeline(cls: type, folder: str | Path, *, torch_dtype: torch.dtype | None = None,
                  layout: str = "auto", scheduler: str | None = None, load_controlnet: bool = True,
                  device: str | torch.device | None = None, **unused: Any):
    """Build ``cls`` (an ``ICPortraitPipeline``) from ``folder``.

    ``layout``: 'auto' widens a base SD1.5 UNet to the IC-Portrait layout, or to IC-Light's 8 channels
    when an ``iclight_sd15_fc.safetensors`` offset lies in the folder (and merges it); 'keep' loads the
    UNet as it is (a plain SD1.5 UNet then runs as img2img). Widening and merging happen in fp32
    before the cast to ``torch_dtype``, so fp16 rounding never touches the merged sum twice.
    """
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if unused:
        log.debug("load_pipeline ignores %s", sorted(unused))
    if layout not in ("auto", "keep"):
        raise ValueError("layout must be 'auto' or 'keep'")
    root = Path(folder).expanduser()
    check = require_model_folder(root)
    dtype = torch_dtype or torch.float32
    common = {"local_files_only": True}
    try:
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=torch.float32,
                                                    variant=_variant(root / "unet", "diffusion_pytorch_model"),
                                                    **common)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=dtype,
                                            variant=_variant(root / "vae", "diffusion_pytorch_model"), **common)
        latent = int(vae.config.latent_channels)
        text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", dtype=dtype,
                                                     variant=_variant(root / "text_encoder", "model"), **common)
        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", **common)
        controlnet = None
        if load_controlnet and "controlnet" in check.present:
            controlnet = ControlNetModel.from_pretrained(
                root, subfolder="controlnet", torch_dtype=dtype,
                variant=_variant(root / "controlnet", "diffusion_pytorch_model"), **common)
    except ModelFolderError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelFolderError(f"could not load the model in {root}: {exc}") from exc

    if layout == "auto" and int(unet.config.in_channels) == latent:
        if check.iclight_offset:
            apply_iclight_offset(unet, check.iclight_offset)
            log.info("merged IC-Light offset %s", check.iclight_offset)
        else:
            widen_unet_input(unet, icportrait_layout(latent).in_channels)
    if unet.dtype != dtype:
        unet = cast_module(unet, dtype)
    pipe = cls(vae=vae, unet=unet, scheduler=load_scheduler(root, scheduler), text_encoder=text_encoder,
               tokenizer=tokenizer, controlnet=controlnet)
    if device is not None:
        pipe = pipe.to(device)
    return pipe

"""``ICPortraitPipeline``: reference-conditioned, render-initialised diffusion refinement.

One denoising pass does what the product needs: start from the physical backend's render (the
condition, noised to ``strength``: img2img), and at every step give the UNet, concatenated to the
noisy latent, the reference photo's latent (identity, skin, hair) and the render's latent (the
requested light and view), plus a mask channel for condition pixels that are unknown. An optional
ControlNet branch takes the same render as a pixel-space image. The same class runs IC-Light (fc)
models, whose only condition is the foreground latent.

Progress and cancel go through ``callback_on_step_end`` (diffusers' convention): the callback may
raise (``CancelledError``) to stop between steps; ``latents_to_preview`` makes cheap previews.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from icportrait_studio.model.check import META_FILE
from icportrait_studio.model.conditioning import assemble_input
from icportrait_studio.model.layout import ChannelLayout, layout_for_in_channels

# Linear map from SD1.5 latents to RGB, good enough for a progress thumbnail (no VAE decode).
_LATENT_RGB = torch.tensor([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                            [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]])

ImageLike = Any  # np.ndarray HxWx3 (float in [0, 1] or uint8), PIL.Image, or torch.Tensor (3,H,W)/(B,3,H,W)


def to_image_tensor(image: ImageLike) -> torch.Tensor:
    """(B, 3, H, W) float32 in [0, 1] from an array, PIL image or tensor (sRGB-encoded values)."""
    if isinstance(image, torch.Tensor):
        t = image.detach().float()
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"an image tensor must be (3,H,W) or (B,3,H,W), got {tuple(image.shape)}")
        return t.clamp(0, 1)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"an image must be HxWx3, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    return t.clamp(0, 1)


def to_mask_tensor(mask: ImageLike) -> torch.Tensor:
    """(B, 1, H, W) float32 in [0, 1] from an HxW array or tensor."""
    if isinstance(mask, torch.Tensor):
        t = mask.detach().float()
    else:
        arr = np.asarray(mask)
        if arr.ndim == 3:
            arr = arr[..., 0]
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if arr.dtype == np.uint8:
            t = t / 255.0
    while t.ndim < 4:
        t = t.unsqueeze(0)
    return t.clamp(0, 1)


def resize_to(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if t.shape[-2:] == (height, width):
        return t
    shrink = height < t.shape[-2] or width < t.shape[-1]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)


@dataclass
class ICPortraitPipelineOutput(BaseOutput):
    """``images``: float32 (B, H, W, 3) in [0, 1] (sRGB-encoded, like the inputs) or a tensor for 'pt'."""

    images: Any
    latents: torch.Tensor | None = None


class ICPortraitPipeline(DiffusionPipeline):
    """Reference + condition in-context diffusion (IC-Portrait), also running IC-Light fc models."""

    model_cpu_offload_seq = "text_encoder->controlnet->unet->vae"
    _optional_components = ["text_encoder", "tokenizer", "controlnet"]  # noqa: RUF012 (diffusers' convention)
    _callback_tensor_inputs = ["latents", "denoised", "prompt_embeds", "negative_prompt_embeds"]  # noqa: RUF012

    def __init__(self, vae, unet, scheduler, text_encoder=None, tokenizer=None, controlnet=None) -> None:
        super().__init__()
        self.register_modules(vae=vae, unet=unet, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer, controlnet=controlnet)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)

    # ---- structure -------------------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def layout(self) -> ChannelLayout:
        layout = layout_for_in_channels(int(self.unet.config.in_channels), self.latent_channels)
        if layout is None:
            raise ValueError(f"a UNet with {self.unet.config.in_channels} input channels fits no known layout")
        return layout

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> ICPortraitPipeline:
        """Load from a *local* folder (never a hub id): see ``loading.load_pipeline`` for the options.

        A missing or incomplete folder raises ``ModelFolderError`` naming what is missing."""
        from icportrait_studio.model.loading import load_pipeline

        if kwargs.pop("local_files_only", True) is not True:
            raise ValueError("ICPortraitPipeline only loads local folders (local_files_only=True)")
        return load_pipeline(cls, pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory: str | Path, safe_serialization: bool = True, **kwargs: Any) -> None:
        """diffusers' layout plus ``icportrait.json`` naming the channel layout (for people and tools)."""
        super().save_pretrained(save_directory, safe_serialization=safe_serialization, **kwargs)
        layout = self.layout
        meta = {"format": 1, "layout": layout.name, "in_channels": layout.in_channels,
                "groups": [list(g) for g in layout.groups], "controlnet": self.controlnet is not None}
        (Path(save_directory) / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    # ---- encoders --------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str | list[str], device: torch.device) -> torch.Tensor:
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("this pipeline has no text encoder/tokenizer: pass prompt_embeds instead of a prompt")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(ids.to(device))[0].to(dtype=self.unet.dtype)

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None,
                      sample: bool = False) -> torch.Tensor:
        """Scaled VAE latents of (B, 3, H, W) images in [0, 1]; the distribution's mode unless ``sample``."""
        x = (images * 2 - 1).to(device=self._execution_device, dtype=self.vae.dtype)
        dist = self.vae.encode(x).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return (z - shift) * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        z = latents.to(self.vae.dtype) / self.vae.config.scaling_factor + shift
        return ((self.vae.decode(z).sample.float() + 1) / 2).clamp(0, 1)

    def latents_to_preview(self, latents: torch.Tensor, decode: bool = False) -> np.ndarray:
        """An hxwx3 float32 sRGB thumbnail of the first latent: linear approximation, or a VAE decode."""
        with torch.no_grad():
            if decode or latents.shape[1] != 4:
                return self.decode_latents(latents[:1])[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
            rgb = torch.einsum("chw,cr->hwr", latents[0].float().cpu(), _LATENT_RGB)
            return ((rgb + 1) / 2).clamp(0, 1).numpy().astype(np.float32)

    def get_timesteps(self, num_inference_steps: int, strength: float, device: torch.device):
        init = min(round(num_inference_steps * strength), num_inference_steps)
        init = max(init, 1)
        t_start = max(num_inference_steps - init, 0)
        timesteps = self.scheduler.timesteps[t_start * self.scheduler.order:]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(t_start * self.scheduler.order)
        return timesteps, num_inference_steps - t_start

    def _step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict:
        params = set(inspect.signature(self.scheduler.step).parameters)
        out: dict = {}
        if "eta" in params:
            out["eta"] = eta
        if "generator" in params:
            out["generator"] = generator
        return out

    def _set_tiling(self, height: int, width: int, vae_tiling: bool | None) -> bool:
        if vae_tiling is None:
            side = 2 * int(self.vae.config.sample_size)
            vae_tiling = height * width > side * side
        if vae_tiling:
            self.vae.enable_tiling()
        else:
            self.vae.disable_tiling()
        return bool(vae_tiling)

    # ---- the denoising loop ----------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        reference: ImageLike | list[ImageLike] | None = None,
        condition: ImageLike | None = None,
        prompt: str | None = "",
        *,
        negative_prompt: str | None = "",
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        init_image: ImageLike | None = None,
        condition_mask: ImageLike | None = None,
        height: int | None = None,
        width: int | None = None,
        strength: float = 0.5,
        num_inference_steps: int = 25,
        guidance_scale: float = 5.0,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        eta: float = 0.0,
        controlnet_conditioning_scale: float = 1.0,
        vae_tiling: bool | None = None,
        output_type: str = "np",
        callback_on_step_end: Any = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ICPortraitPipelineOutput:
        """Refine ``init_image`` (default: ``condition``) towards the condition's light with the reference's looks.

        Images are sRGB-encoded values in [0, 1]. ``strength`` in (0, 1]: how much noise is added to
        the init latent (1 = start from almost pure noise). Several references are run side by side
        in the batch and their noise predictions averaged. ``seed`` (or ``generator``) makes runs
        repeatable on one device. The step callback gets ``(pipe, step, timestep, kwargs)`` (``kwargs``:
        the tensors named in ``callback_on_step_end_tensor_inputs``, default ``latents``; ``denoised`` is
        the current clean-latent estimate) and may return a replacement ``latents``, or raise to stop.
        """
        if not 0.0 < strength <= 1.0:
            raise ValueError("strength must be in (0, 1]")
        if num_inference_steps < 1:
            raise ValueError("num_inference_steps must be at least 1")
        layout = self.layout
        device = self._execution_device
        dtype = self.unet.dtype
        if generator is None and seed is not None:
            generator = torch.Generator("cpu").manual_seed(int(seed))
        refs = reference if isinstance(reference, list) else ([reference] if reference is not None else [])
        cond_img = to_image_tensor(condition) if condition is not None else None
        init_src = init_image if init_image is not None else condition
        if init_src is None:
            init_src = refs[0] if refs else None
        if init_src is None:
            raise ValueError("give a condition (the physical render), an init_image or a reference")
        init_img = to_image_tensor(init_src)
        height = height or init_img.shape[-2]
        width = width or init_img.shape[-1]
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}")
        tiled = self._set_tiling(height, width, vae_tiling)

        # Text: [negative, positive] when guiding, as diffusers' SD pipelines do.
        do_cfg = guidance_scale > 1.0
        if prompt_embeds is None:
            prompt_embeds = self.encode_prompt(prompt or "", device)
        if do_cfg and negative_prompt_embeds is None:
            negative_prompt_embeds = (self.encode_prompt(negative_prompt or "", device)
                                      if self.text_encoder is not None else torch.zeros_like(prompt_embeds))
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)
        text = torch.cat([negative_prompt_embeds.to(device=device, dtype=dtype), prompt_embeds]) if do_cfg \
            else prompt_embeds
        guidance_batch = text.shape[0]

        # Image conditions, encoded once.
        ref_lat = None
        if layout.has("reference") and refs:
            ref_lat = torch.cat([self.encode_images(resize_to(to_image_tensor(r), height, width)) for r in refs])
        n_refs = ref_lat.shape[0] if ref_lat is not None else 1
        cond_lat = mask_lat = None
        h_lat, w_lat = height // self.vae_scale_factor, width // self.vae_scale_factor
        cond_px = resize_to(cond_img, height, width) if cond_img is not None else None
        if layout.has("condition") and cond_px is not None:
            cond_lat = self.encode_images(cond_px)
        if layout.has("mask"):
            if condition_mask is not None:
                mask_lat = F.adaptive_max_pool2d(resize_to(to_mask_tensor(condition_mask), height, width),
                                                 (h_lat, w_lat))
            else:  # no condition at all counts as unknown everywhere; a given one as known everywhere
                mask_lat = torch.full((1, 1, h_lat, w_lat), 0.0 if cond_lat is not None else 1.0)
            mask_lat = mask_lat.to(device=device, dtype=dtype)
            if cond_lat is not None:
                cond_lat = cond_lat * (1 - mask_lat)

        # Initial latent: the render, noised to `strength`.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps, n_steps = self.get_timesteps(num_inference_steps, strength, device)
        init_lat = self.encode_images(resize_to(init_img, height, width)).to(dtype)
        noise = randn_tensor(init_lat.shape, generator=generator, device=device, dtype=dtype)
        latents = self.scheduler.add_noise(init_lat, noise, timesteps[:1])
        step_kwargs = self._step_kwargs(generator, eta)

        # Batch layout: references outermost, guidance halves inside: [r0 neg, r0 pos, r1 neg, r1 pos, ...].
        batch = n_refs * guidance_batch
        text_b = text.repeat(n_refs, 1, 1)
        ref_b = ref_lat.to(dtype).repeat_interleave(guidance_batch, dim=0) if ref_lat is not None else None
        ctrl_img = None
        if self.controlnet is not None:
            ctrl_img = (cond_px if cond_px is not None else resize_to(init_img, height, width))
            ctrl_img = ctrl_img.to(device=device, dtype=self.controlnet.dtype).expand(batch, -1, -1, -1)
        tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=n_steps) as bar:
            for i, t in enumerate(timesteps):
                lat_in = self.scheduler.scale_model_input(latents, t).expand(batch, -1, -1, -1)
                x = assemble_input(layout, lat_in, reference=ref_b, condition=cond_lat, mask=mask_lat)
                extra: dict = {}
                if self.controlnet is not None:
                    down, mid = self.controlnet(lat_in.to(self.controlnet.dtype), t, encoder_hidden_states=text_b,
                                                controlnet_cond=ctrl_img,
                                                conditioning_scale=controlnet_conditioning_scale, return_dict=False)
                    extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
                pred = self.unet(x, t, encoder_hidden_states=text_b, return_dict=False, **extra)[0]
                pred = pred.view(n_refs, guidance_batch, *pred.shape[1:]).mean(dim=0)
                if do_cfg:
                    uncond, cond = pred.chunk(2)
                    pred = uncond + guidance_scale * (cond - uncond)
                stepped = self.scheduler.step(pred, t, latents, **step_kwargs, return_dict=True)
                latents = stepped.prev_sample
                if callback_on_step_end is not None:
                    # 'denoised': the scheduler's estimate of the clean latent (a sharper preview than the
                    # noisy latent), or the latent itself for schedulers that do not report one.
                    denoised = getattr(stepped, "pred_original_sample", None)
                    local = {"latents": latents, "denoised": denoised if denoised is not None else latents,
                             "prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}
                    out = callback_on_step_end(self, i, t, {k: local[k] for k in tensor_inputs}) or {}
                    latents = out.pop("latents", latents)
                bar.update()

        if output_type == "latent":
            images: Any = latents
        else:
            decoded = self.decode_latents(latents)
            images = decoded if output_type == "pt" else decoded.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        self._last_tiled = tiled
        return ICPortraitPipelineOutput(images=images, latents=latents)

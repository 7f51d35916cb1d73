"""The ``diffusion`` backend: the physical render, refined by the IC-Portrait model. Importing this is cheap.

torch and diffusers load on the first ``run`` (or on ``available`` once the cheap checks passed), on
the job manager's worker thread, so the GUI starts without them. The flow of one job:

  physical backend (rig + view)  ->  render = condition and init latent, photo = reference
  ->  ICPortraitPipeline at a working size (≤ 512 px preview, ≤ 1024 px full)
  ->  the refinement goes back onto the full-size render as a smooth gain (so photo detail stays sharp)

Progress fractions: physical 0-0.15, model load 0.15-0.2, denoising 0.2-0.95, decode 0.95-1.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from icportrait_studio.core.request import EditRequest
from icportrait_studio.errors import ICPortraitError
from icportrait_studio.model.check import validate_model_folder
from icportrait_studio.model.device import torch_installed
from icportrait_studio.pipeline.base import Backend, Result, SourceImage
from icportrait_studio.pipeline.progress import CancelToken, Progress, ProgressFn, no_progress

log = logging.getLogger(__name__)

ENV_MODEL_DIR = "ICPORTRAIT_MODEL_DIR"
ENV_ALLOW_CPU = "ICPORTRAIT_DIFFUSION_CPU"
_RATIO_EPS = 0.02  # linear-light floor for the refinement gain, so near-black pixels cannot explode
_RATIO_RANGE = (1 / 8, 8.0)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class DiffusionSettings:
    """What Settings → Models and the quality menu control. Frozen: ``configure`` swaps it whole."""

    model_dir: str | None = None
    allow_cpu: bool = False  # run without CUDA (tests, CI smoke runs): slow with real weights
    device: str | None = None  # None: cuda when available
    dtype: str = "auto"  # auto (bf16 if supported, else fp16) | fp16 | bf16 | fp32; always fp32 on CPU
    preview_steps: int = 12
    full_steps: int = 28
    strength: float = 0.45  # how far from the render the model may go: low keeps identity and layout
    guidance_scale: float = 4.0
    prompt: str = "a portrait photo of a person, detailed skin, natural light"
    negative_prompt: str = "lowres, blurry, deformed, bad anatomy, plastic skin"
    preview_max_side: int = 512
    full_max_side: int = 1024
    preview_every: int = 2  # latent preview every N steps (0 = never)
    controlnet_scale: float = 1.0
    scheduler: str | None = None  # e.g. 'DPMSolverMultistepScheduler'; None: the folder's own

    @classmethod
    def from_env(cls) -> DiffusionSettings:
        return cls(model_dir=os.environ.get(ENV_MODEL_DIR) or None, allow_cpu=_truthy(os.environ.get(ENV_ALLOW_CPU)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DiffusionSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def working_size(height: int, width: int, max_side: int, multiple: int) -> tuple[int, int]:
    """The size the model runs at: at most ``max_side`` on the long side, never upscaled beyond the
    render, rounded to ``multiple`` (VAE factor × UNet depth), aspect ratio kept."""
    scale = min(1.0, max_side / max(height, width))
    h = max(multiple, round(height * scale / multiple) * multiple)
    w = max(multiple, round(width * scale / multiple) * multiple)
    return h, w


def transfer_refinement(render_full: np.ndarray, render_work: np.ndarray, refined_work: np.ndarray) -> np.ndarray:
    """Carry a working-size refinement onto the full-size render as a smooth per-pixel gain.

    Why a gain and not the upscaled model output: the model works at ≤ 1024 px, and upscaling would
    blur a 24 MP photo; the effects it adds (glow, sheen, bounce light) are low-frequency in light, so
    a ratio of linear intensities carries them while the render keeps the photo's detail.
    """
    import cv2

    fh, fw = render_full.shape[:2]
    wh, ww = render_work.shape[:2]
    if wh >= 0.95 * fh and ww >= 0.95 * fw:
        return cv2.resize(refined_work, (fw, fh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    gain = (refined_work + _RATIO_EPS) / (np.maximum(render_work, 0) + _RATIO_EPS)
    gain = np.clip(gain, *_RATIO_RANGE).astype(np.float32)
    gain = cv2.resize(gain, (fw, fh), interpolation=cv2.INTER_CUBIC)
    return (render_full * np.clip(gain, *_RATIO_RANGE)).astype(np.float32)


class DiffusionBackend:
    """The ``Backend`` for the IC-Portrait model; see the module docstring for the flow."""

    name = "diffusion"

    def __init__(self, settings: DiffusionSettings | None = None, *, physical: Backend | None = None) -> None:
        self.settings = settings or DiffusionSettings.from_env()
        self._physical = physical
        self._pipe: Any = None
        self._pipe_key: tuple | None = None
        self._lock = threading.RLock()
        self._cuda: bool | None = None

    # ---- configuration ----------------------------------------------------------------------------
    def configure(self, **changes: Any) -> DiffusionSettings:
        """Change settings (Settings → Models); a different folder, device or dtype drops the loaded model."""
        with self._lock:
            self.settings = replace(self.settings, **changes)
            if self._pipe is not None and self._key() != self._pipe_key:
                self.unload()
            return self.settings

    def unload(self) -> None:
        """Free the model (and its GPU memory)."""
        with self._lock:
            self._pipe, self._pipe_key = None, None
        if "torch" in sys.modules:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _key(self) -> tuple:
        s = self.settings
        return (str(Path(s.model_dir).expanduser().resolve()) if s.model_dir else None, s.device, s.dtype,
                s.allow_cpu, s.scheduler)

    def available(self) -> tuple[bool, str]:
        """(True, where it runs) or (False, why not): torch, a model folder, and CUDA or the CPU flag."""
        s = self.settings
        if not torch_installed():
            return False, "PyTorch is not installed (pip install torch), so the diffusion backend cannot run"
        if not s.model_dir:
            return False, "no diffusion model folder is set (Settings → Models)"
        check = validate_model_folder(s.model_dir)
        if not check.ok:
            return False, check.message
        if not self._has_cuda():
            if s.allow_cpu:
                return True, f"runs on the CPU (forced; slow). {check.message}"
            return False, ("no CUDA GPU found: the diffusion backend needs an NVIDIA GPU "
                           "(the physical backend still works)")
        return True, f"runs on CUDA. {check.message}"

    def _has_cuda(self) -> bool:
        if self._cuda is None:
            if self.settings.device == "cpu":
                return False
            from icportrait_studio.model.device import cuda_available

            self._cuda = cuda_available()
        return self._cuda

    # ---- model ----------------------------------------------------------------------------------
    def pipeline(self, progress: ProgressFn = no_progress) -> Any:
        """The loaded pipeline (loaded on first use, then cached until the settings change)."""
        with self._lock:
            if self._pipe is not None and self._pipe_key == self._key():
                return self._pipe
            ok, why = self.available()
            if not ok:
                raise ICPortraitError(f"diffusion backend unavailable: {why}")
            progress(Progress(0.15, "loading diffusion model"))
            from icportrait_studio.model.device import choose_device
            from icportrait_studio.model.pipeline import ICPortraitPipeline

            s = self.settings
            device = s.device or ("cuda" if self._has_cuda() else "cpu")
            choice = choose_device(device, s.dtype, allow_cpu=s.allow_cpu)
            pipe = ICPortraitPipeline.from_pretrained(s.model_dir, torch_dtype=choice.dtype, scheduler=s.scheduler,
                                                      device=choice.device)
            pipe.set_progress_bar_config(disable=True)
            self._pipe, self._pipe_key = pipe, self._key()
            return pipe

    def _physical_backend(self) -> Backend:
        if self._physical is None:
            from icportrait_studio.pipeline.physical import PhysicalBackend

            self._physical = PhysicalBackend()
        return self._physical

    # ---- a job ----------------------------------------------------------------------------------
    def run(self, request: EditRequest, source: SourceImage, progress: ProgressFn = no_progress,
            cancel: CancelToken | None = None) -> Result:
        import cv2

        from icportrait_studio.imaging.color import linear_to_srgb, srgb_to_linear

        cancel = cancel or CancelToken()
        t0 = time.perf_counter()
        ok, why = self.available()
        if not ok:
            raise ICPortraitError(f"diffusion backend unavailable: {why}")

        def physical_progress(p: Progress) -> None:
            progress(Progress(0.15 * p.fraction, f"physical: {p.stage}", p.preview))

        base = self._physical_backend().run(request, source, physical_progress, cancel)
        cancel.raise_if_cancelled()
        t_phys = time.perf_counter() - t0
        pipe = self.pipeline(progress)
        cancel.raise_if_cancelled()
        t_load = time.perf_counter() - t0 - t_phys

        s = self.settings
        render = np.ascontiguousarray(base.image, dtype=np.float32)
        fh, fw = render.shape[:2]
        multiple = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
        max_side = s.preview_max_side if request.quality == "preview" else s.full_max_side
        wh, ww = working_size(fh, fw, max_side, multiple)
        render_work = cv2.resize(render, (ww, wh), interpolation=cv2.INTER_AREA)
        photo = source.rgb if source.rgb.shape[:2] == (fh, fw) else cv2.resize(source.rgb, (fw, fh),
                                                                               interpolation=cv2.INTER_AREA)
        photo_work = cv2.resize(np.asarray(photo, dtype=np.float32), (ww, wh), interpolation=cv2.INTER_AREA)
        reference = linear_to_srgb(np.clip(photo_work, 0, 1))
        if pipe.layout.name == "iclight-fc" and base.alpha is not None:  # IC-Light wants the subject on grey
            a = cv2.resize(np.asarray(base.alpha, dtype=np.float32), (ww, wh), interpolation=cv2.INTER_AREA)[..., None]
            reference = reference * a + 0.5 * (1 - a)
        condition = linear_to_srgb(np.clip(render_work, 0, 1))
        steps = s.preview_steps if request.quality == "preview" else s.full_steps
        total = max(1, min(steps, round(steps * s.strength))) * int(getattr(pipe.scheduler, "order", 1))

        def on_step(pipe_: Any, i: int, t: Any, kwargs: dict) -> dict:
            cancel.raise_if_cancelled()
            preview = None
            if s.preview_every and ((i + 1) % s.preview_every == 0 or i + 1 == total):
                preview = srgb_to_linear(pipe_.latents_to_preview(kwargs["denoised"]))
            progress(Progress(0.2 + 0.75 * min(1.0, (i + 1) / total), f"refining {i + 1}/{total}", preview))
            return {}

        progress(Progress(0.2, "encoding"))
        t2 = time.perf_counter()
        try:
            out = pipe(reference, condition, s.prompt, negative_prompt=s.negative_prompt, strength=s.strength,
                       num_inference_steps=steps, guidance_scale=s.guidance_scale, seed=request.seed,
                       controlnet_conditioning_scale=s.controlnet_scale, callback_on_step_end=on_step,
                       callback_on_step_end_tensor_inputs=["denoised"])
        except Exception as exc:
            if type(exc).__name__ == "OutOfMemoryError":
                raise ICPortraitError(f"out of GPU memory at {ww}x{wh}: use preview quality, a smaller full size, "
                                      "or close other GPU programs") from exc
            raise
        cancel.raise_if_cancelled()
        t_diff = time.perf_counter() - t2
        progress(Progress(0.97, "compositing"))
        refined = srgb_to_linear(np.clip(out.images[0], 0, 1)).astype(np.float32)
        image = transfer_refinement(render, render_work, refined)
        progress(Progress(1.0, "done"))
        info = {
            "backend": self.name,
            "model": s.model_dir,
            "layout": pipe.layout.name,
            "device": str(pipe.device),
            "dtype": str(pipe.unet.dtype).replace("torch.", ""),
            "working_size": [ww, wh],
            "steps": total,
            "strength": s.strength,
            "guidance_scale": s.guidance_scale,
            "seed": request.seed,
            "timings_ms": {"physical": round(t_phys * 1000, 1), "load": round(t_load * 1000, 1),
                           "diffusion": round(t_diff * 1000, 1),
                           "total": round((time.perf_counter() - t0) * 1000, 1)},
            "physical": {k: v for k, v in base.info.items() if k != "timings_ms"},
            "warnings": list(base.info.get("warnings", [])),
        }
        return Result(request=request, image=np.ascontiguousarray(image, dtype=np.float32), alpha=base.alpha,
                      shading=base.shading, info=info)


def make_diffusion_backend() -> Backend:
    """Registry factory: settings from the environment until the app configures it."""
    return DiffusionBackend()

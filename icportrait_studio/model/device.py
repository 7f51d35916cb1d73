"""Device and dtype choice: fp16/bf16 on CUDA, fp32 on CPU. torch is imported inside functions only.

Why not fp16 on CPU: most CPU kernels are fp32-only or slower in half precision. Why bf16 first on
CUDA when the card supports it: same memory as fp16 but no overflow, so the SD1.5 VAE never turns
a bright highlight into NaNs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any


def torch_installed() -> bool:
    """True when torch can be imported (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def cuda_available() -> bool:
    if not torch_installed():
        return False
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda", "cuda:1", "cpu"
    dtype_name: str  # "float16" | "bfloat16" | "float32"

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype_name)


def choose_device(device: str | None = None, dtype: str = "auto", *, allow_cpu: bool = True) -> DeviceChoice:
    """Pick where the pipeline runs. ``dtype``: auto | fp16 | bf16 | fp32 (fp32 is forced on CPU)."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but no CUDA device is available")
    if device == "cpu" and not allow_cpu:
        raise RuntimeError("no CUDA device, and CPU inference was not allowed")
    if device == "cpu":
        return DeviceChoice("cpu", "float32")
    names = {"fp16": "float16", "float16": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16",
             "fp32": "float32", "float32": "float32"}
    if dtype == "auto":
        return DeviceChoice(device, "bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, fp16, bf16 or fp32")
    return DeviceChoice(device, names[dtype])


def cast_module(module: Any, dtype: Any) -> Any:
    """``module.to(dtype)`` without diffusers 0.42's warning on every cast of one of its models.

    diffusers warns that modules "should be kept in float32: []" whenever a model is cast, even when
    that list is empty; a user then sees a warning about nothing at each model load and training
    start. Models that do name fp32-only modules go through diffusers' own ``to`` (and its warning).
    """
    import torch

    if getattr(module, "_keep_in_fp32_modules", None):
        return module.to(dtype=dtype)
    return torch.nn.Module.to(module, dtype=dtype)

"""The IC-Portrait diffusion model: pipeline, conditioning, datasets, training and the ``diffusion`` backend.

Importing this package is cheap and never imports torch: the folder check (``validate_model_folder``)
and the backend class are plain Python; everything that needs torch/diffusers (the pipeline,
training, tiny test models) is reached through the lazy attributes below or its own submodule.

Importing it also registers the ``diffusion`` backend (once, without replacing a registration the
app already made), so ``get_backend('diffusion')`` works after ``import icportrait_studio.model``.
"""

from __future__ import annotations

import importlib
from typing import Any

from icportrait_studio.model.backend import DiffusionBackend, DiffusionSettings, make_diffusion_backend
from icportrait_studio.model.check import ModelCheck, ModelFolderError, validate_model_folder
from icportrait_studio.model.layout import ChannelLayout, iclight_layout, icportrait_layout

_LAZY = {
    "ICPortraitPipeline": "icportrait_studio.model.pipeline",
    "ICPortraitPipelineOutput": "icportrait_studio.model.pipeline",
    "widen_unet_input": "icportrait_studio.model.conditioning",
    "apply_iclight_offset": "icportrait_studio.model.conditioning",
    "build_controlnet": "icportrait_studio.model.conditioning",
    "patch_mask": "icportrait_studio.model.conditioning",
    "TrainConfig": "icportrait_studio.model.train",
    "Trainer": "icportrait_studio.model.train",
}

__all__ = ["ChannelLayout", "DiffusionBackend", "DiffusionSettings", "ModelCheck", "ModelFolderError",
           "iclight_layout", "icportrait_layout", "make_diffusion_backend", "register", "validate_model_folder",
           *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def register() -> None:
    """Register the ``diffusion`` backend unless something already did (keeps a configured instance)."""
    try:
        from icportrait_studio.pipeline.registry import backend_names, register_backend
    except ImportError:  # the registry is importing us (a cycle): it registers the backend itself
        return
    if "diffusion" not in backend_names():
        register_backend("diffusion", make_diffusion_backend)


register()

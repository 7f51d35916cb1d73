"""``ICPortraitPipeline`` on tiny random models: runs, determinism, save/reload, tiling, folder errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from icportrait_studio.errors import CancelledError  # noqa: E402
from icportrait_studio.model.check import ModelFolderError, validate_model_folder  # noqa: E402
from icportrait_studio.model.pipeline import ICPortraitPipeline  # noqa: E402
from icportrait_studio.model.tiny import save_tiny_model, tiny_pipeline  # noqa: E402

KW = {"strength": 0.7, "num_inference_steps": 4, "guidance_scale": 3.0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((32, 32, 3), dtype=np.float32), rng.random((32, 32, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def pipe() -> ICPortraitPipeline:
    """A tiny IC-Portrait pipeline whose reference/condition/mask channels are 'trained' (non-zero)."""
    p = tiny_pipeline(seed=0, layout="icportrait")
    with torch.no_grad():
        p.unet.conv_in.weight[:, 4:].normal_(0, 0.05, generator=torch.Generator().manual_seed(9))
    return p


def test_pipeline_runs_deterministically_with_step_callbacks(pipe, images) -> None:
    ref, cond = images
    seen: list[int] = []
    previews: list[np.ndarray] = []

    def on_step(p, i, t, kwargs):
        seen.append(i)
        previews.append(p.latents_to_preview(kwargs["latents"]))
        return {}

    out = pipe(ref, cond, "a portrait photo", seed=1, callback_on_step_end=on_step, **KW)
    img = out.images
    assert img.shape == (1, 32, 32, 3) and img.dtype == np.float32
    assert np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1
    assert seen == [0, 1, 2]  # strength 0.7 of 4 steps
    assert previews[0].shape == (16, 16, 3) and previews[0].dtype == np.float32
    again = pipe(ref, cond, "a portrait photo", seed=1, **KW).images
    np.testing.assert_array_equal(img, again)
    other = pipe(ref, cond, "a portrait photo", seed=2, **KW).images
    assert np.abs(other - img).max() > 1e-4
    # A different reference changes the result: the reference channels are wired in.
    zero_ref = pipe(np.zeros_like(ref), cond, "a portrait photo", seed=1, **KW).images
    assert np.abs(zero_ref - img).max() > 1e-5


def test_several_references_prompt_embeds_and_masks(pipe, images) -> None:
    ref, cond = images
    embeds = pipe.encode_prompt("a portrait photo", pipe.device)
    by_text = pipe(ref, cond, "a portrait photo", seed=3, **KW).images
    by_embeds = pipe(ref, cond, None, prompt_embeds=embeds, negative_prompt_embeds=pipe.encode_prompt("", pipe.device),
                     seed=3, **KW).images
    np.testing.assert_allclose(by_text, by_embeds, atol=1e-6)
    two = pipe([ref, ref[::-1].copy()], cond, "a portrait photo", seed=3, **KW).images
    assert two.shape == (1, 32, 32, 3)
    mask = np.zeros((32, 32), np.float32)
    mask[:, :16] = 1
    masked = pipe(ref, cond, "a portrait photo", condition_mask=mask, seed=3, output_type="pt", **KW).images
    assert isinstance(masked, torch.Tensor) and masked.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="multiples"):
        pipe(ref[:31, :31], cond[:31, :31], "x", seed=0, **KW)
    with pytest.raises(ValueError, match="strength"):
        pipe(ref, cond, "x", strength=0.0)


def test_a_raising_step_callback_cancels_mid_run(pipe, images) -> None:
    ref, cond = images
    steps: list[int] = []

    def cancel_at_two(p, i, t, kwargs):
        steps.append(i)
        if i == 1:
            raise CancelledError()
        return {}

    with pytest.raises(CancelledError):
        pipe(ref, cond, "a portrait photo", seed=0, strength=1.0, num_inference_steps=6, guidance_scale=1.0,
             callback_on_step_end=cancel_at_two)
    assert steps == [0, 1]


def test_vae_tiling_for_large_images(pipe) -> None:
    rng = np.random.default_rng(5)
    big = rng.random((96, 80, 3), dtype=np.float32)  # above (2 x the tiny VAE's 32 px sample size)²
    out = pipe(big, big, "a portrait photo", seed=0, strength=0.5, num_inference_steps=2, guidance_scale=1.0)
    assert out.images.shape == (1, 96, 80, 3) and pipe._last_tiled
    small = pipe(big[:32, :32], big[:32, :32], "x", seed=0, strength=0.5, num_inference_steps=2, guidance_scale=1.0)
    assert small.images.shape == (1, 32, 32, 3) and not pipe._last_tiled


def test_saved_and_reloaded_model_gives_identical_outputs(tmp_path: Path, pipe, images) -> None:
    ref, cond = images
    before = pipe(ref, cond, "a portrait photo", seed=4, **KW).images
    pipe.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "icportrait.json").read_text())
    assert meta["layout"] == "icportrait" and meta["in_channels"] == 13
    check = validate_model_folder(tmp_path / "m")
    assert check.ok and check.kind == "icportrait" and check.in_channels == 13
    loaded = ICPortraitPipeline.from_pretrained(tmp_path / "m")
    loaded.set_progress_bar_config(disable=True)
    after = loaded(ref, cond, "a portrait photo", seed=4, **KW).images
    np.testing.assert_array_equal(before, after)


def test_base_sd15_folder_is_widened_and_runs_like_plain_img2img(tmp_path: Path, images) -> None:
    ref, cond = images
    folder = save_tiny_model(tmp_path / "sd15", seed=1, layout="base")
    check = validate_model_folder(folder)
    assert check.ok and check.kind == "sd15" and check.in_channels == 4
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(check.present)
    assert check.estimated_vram_gb > 0
    widened = ICPortraitPipeline.from_pretrained(folder)
    plain = ICPortraitPipeline.from_pretrained(folder, layout="keep")
    assert widened.layout.name == "icportrait" and plain.layout.name == "base"
    for p in (widened, plain):
        p.set_progress_bar_config(disable=True)
    a = widened(ref, cond, "a portrait photo", seed=5, **KW).images
    b = plain(ref, cond, "a portrait photo", seed=5, **KW).images
    np.testing.assert_allclose(a, b, atol=1e-5)  # zero-initialised channels: the base model, unchanged


def test_loading_in_half_precision_casts_without_a_spurious_warning(tmp_path: Path) -> None:
    import logging

    import torch

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    folder = save_tiny_model(tmp_path / "sd15", seed=1, layout="base")
    seen = Collect()
    root = logging.getLogger("diffusers")  # diffusers' loggers do not propagate: listen on its root
    root.addHandler(seen)
    try:
        half = ICPortraitPipeline.from_pretrained(folder, torch_dtype=torch.bfloat16)
    finally:
        root.removeHandler(seen)
    assert half.unet.dtype == torch.bfloat16 and half.vae.dtype == torch.bfloat16
    assert half.unet.conv_in.weight.dtype == torch.bfloat16  # the widened input too
    assert not [m for m in seen.messages if "kept in float32" in m]  # diffusers warns on any cast; we don't


def test_missing_or_partial_folder_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="does not exist"):
        ICPortraitPipeline.from_pretrained(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    check = validate_model_folder(empty)
    assert not check.ok and "unet/ (folder)" in check.missing and "incomplete" in check.message

    folder = save_tiny_model(tmp_path / "m", layout="base")
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(folder / "tokenizer")
    check = validate_model_folder(folder)
    assert not check.ok
    assert "vae" not in check.present and "unet" in check.present
    assert any(m.startswith("vae weights") for m in check.missing)
    assert any(m.startswith("tokenizer") for m in check.missing)
    with pytest.raises(ModelFolderError) as info:
        ICPortraitPipeline.from_pretrained(folder)
    message = str(info.value)
    assert "vae weights (vae/diffusion_pytorch_model.safetensors)" in message and "tokenizer" in message
    assert "unet" not in message.split("missing", 1)[1].split(";")[0].replace("vae", "")  # only what is missing

    damaged = save_tiny_model(tmp_path / "d", layout="base")
    (damaged / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 4)
    check = validate_model_folder(damaged)
    assert not check.ok and any("damaged" in m for m in check.missing)
    with pytest.raises(ValueError, match="local"):
        ICPortraitPipeline.from_pretrained(folder, local_files_only=False)
    odd = save_tiny_model(tmp_path / "odd", layout="base")
    cfg = json.loads((odd / "unet" / "config.json").read_text())
    cfg["in_channels"] = 6
    (odd / "unet" / "config.json").write_text(json.dumps(cfg))
    check = validate_model_folder(odd)
    assert not check.ok and "unsupported UNet input width 6" in check.message
    for value in (None, "x", [4], 4.5, True):  # a hand-edited config: reported, never a traceback
        cfg["in_channels"] = value
        (odd / "unet" / "config.json").write_text(json.dumps(cfg))
        check = validate_model_folder(odd)
        assert not check.ok and "in_channels must be a positive whole number" in check.message

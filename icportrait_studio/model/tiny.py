"""Tiny, randomly initialised models built from configs: for tests, benchmarks and CLI smoke runs.

They have SD1.5's structure (UNet with cross-attention, KL VAE, CLIP text encoder and BPE tokenizer,
a scaled-linear DDIM schedule) at a size that runs a denoising step in milliseconds on a CPU, and
they save to the exact folder layout of a real SD1.5 snapshot, so every loading path is exercised
without downloading anything.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import torch

from icportrait_studio.model.layout import base_layout, layout_by_name

TINY_SAMPLE = 32  # pixels; the tiny VAE downsamples by 2, so latents are 16x16
_WORDS = ("a", "portrait", "photo", "of", "person", "face", "light", "soft", "warm", "cool", "studio", "rim", "hair",
          "skin", "natural", "detailed", "shadow", "glow", "window", "sun", "evening", "dramatic")


def _tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A byte-level-free CLIP BPE vocabulary: lowercase letters, digits, a few whole words."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    merges: list[str] = ["#version: 0.2"]
    for ch in string.ascii_lowercase + string.digits + ".,!?'-":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    for word in _WORDS:  # merge left to right: ((p o) r) ... </w>
        cur = word[0]
        for j, ch in enumerate(word[1:], start=1):
            nxt = ch + ("</w>" if j == len(word) - 1 else "")
            merges.append(f"{cur} {nxt}")
            cur = cur + nxt
            vocab.setdefault(cur, len(vocab))
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps(vocab), encoding="utf-8")
    merges_path.write_text("\n".join(dict.fromkeys(merges)) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def tiny_tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _tokenizer_files(Path(tmp))
        return CLIPTokenizer(str(vocab), str(merges), model_max_length=16)


def tiny_components(seed: int = 0, layout: str = "base", controlnet: bool = False) -> dict:
    """The components of a tiny pipeline; ``layout`` widens the UNet input (zero-initialised)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from icportrait_studio.model.conditioning import build_controlnet, widen_unet_input

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=TINY_SAMPLE // 2, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 64), layers_per_block=1,
        latent_channels=4, norm_num_groups=32, sample_size=TINY_SAMPLE)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=1000, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=tokenizer.model_max_length, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                              steps_offset=1)
    cn = build_controlnet(unet, vae_scale_factor=2) if controlnet else None
    target = layout_by_name(layout)
    if target.in_channels != base_layout().in_channels:
        widen_unet_input(unet, target.in_channels)
    for m in (unet, vae, text_encoder) + ((cn,) if cn is not None else ()):
        m.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler,
            "controlnet": cn}


def tiny_pipeline(seed: int = 0, layout: str = "icportrait", controlnet: bool = False):
    from icportrait_studio.model.pipeline import ICPortraitPipeline

    pipe = ICPortraitPipeline(**tiny_components(seed, layout, controlnet))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_model(folder: str | Path, *, seed: int = 0, layout: str = "base", controlnet: bool = False) -> Path:
    """Write a tiny model folder in SD1.5's layout (``layout='base'``: a 4-channel UNet, like a real
    SD1.5 snapshot; 'icportrait': a widened one, like a trained IC-Portrait folder)."""
    folder = Path(folder)
    pipe = tiny_pipeline(seed, layout, controlnet)
    pipe.save_pretrained(folder)
    _tokenizer_files(folder / "tokenizer")  # SD1.5 snapshots carry vocab.json + merges.txt too
    return folder


def synthetic_portraits(folder: str | Path, n: int = 6, size: int = 48, seed: int = 0) -> list[Path]:
    """Write ``n`` toy "portraits" (a shaded ellipse head on a plain background, each lit from a random
    side): a self-supervised Stage-1 set with real light variation, made in milliseconds."""
    import numpy as np
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    paths = []
    for i in range(n):
        angle = rng.uniform(0, 2 * np.pi)
        nx, ny = (xx - 0.5) / 0.32, (yy - 0.52) / 0.42
        head = nx**2 + ny**2 < 1
        nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
        lx, ly = np.cos(angle), np.sin(angle)
        shade = np.clip(0.25 + 0.75 * (nx * lx + ny * ly + 0.6 * nz), 0.05, 1.0)
        skin = rng.uniform(0.35, 0.95, 3)
        background = rng.uniform(0.1, 0.4, 3)
        img = np.where(head[..., None], skin * shade[..., None], background)
        path = folder / f"portrait_{i:03d}.png"
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths

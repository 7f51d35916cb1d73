"""Diffusion backend benchmark (issue: the IC-Portrait model). Prints its figures.

    .venv/bin/python bench/bench_diffusion.py [--json out.json] [--model DIR] [--max-cpu-step 0.5]

CPU (always): seconds per denoising step of the tiny random model (32² px, guidance on, so a batch
of 2), and seconds per Stage-1 training step (batch 4): a regression guard; the script exits 1 when
the inference step is slower than ``--max-cpu-step``.
GPU (when CUDA is available; skipped cleanly otherwise): 512² and 1024² refinement with
SD1.5-sized weights (``--model DIR`` for a real local folder, else an SD1.5-architecture model built
from its config with random weights: same FLOPs and memory), in bf16/fp16, reporting seconds per
step, end-to-end seconds and peak VRAM (``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SD15_UNET = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280), "cross_attention_dim": 768, "attention_head_dim": 8,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
}
SD15_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 512,
    "block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "scaling_factor": 0.18215,
}


def _step_times(pipe, *args, **kwargs) -> tuple[float, list[float], bool]:
    """(end-to-end seconds, seconds of each denoising step, output all finite), synchronising CUDA at each step."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() and pipe.device.type == "cuda" else (lambda: None)
    stamps: list[float] = []

    def on_step(p, i, t, kw):
        sync()
        stamps.append(time.perf_counter())
        return {}

    sync()
    t0 = time.perf_counter()
    out = pipe(*args, callback_on_step_end=on_step, **kwargs)
    sync()
    total = time.perf_counter() - t0
    return total, list(np.diff(stamps)), bool(np.isfinite(out.images).all())


def bench_cpu(steps: int, repeat: int) -> dict:
    import torch

    from icportrait_studio.model.tiny import tiny_pipeline

    pipe = tiny_pipeline(seed=0, layout="icportrait")
    rng = np.random.default_rng(0)
    ref, cond = rng.random((32, 32, 3), dtype=np.float32), rng.random((32, 32, 3), dtype=np.float32)
    kw = {"strength": 1.0, "num_inference_steps": steps, "guidance_scale": 4.0, "seed": 0}
    _step_times(pipe, ref, cond, "a portrait photo", **kw)  # warm-up
    per_step: list[float] = []
    totals: list[float] = []
    for _ in range(repeat):
        total, times, _ = _step_times(pipe, ref, cond, "a portrait photo", **kw)
        totals.append(total)
        per_step += times
    return {"threads": torch.get_num_threads(), "size": 32, "steps": steps,
            "s_per_step_median": round(statistics.median(per_step), 4),
            "s_per_step_min": round(min(per_step), 4), "s_end_to_end_median": round(statistics.median(totals), 3)}


def bench_cpu_train(steps: int) -> dict:
    from icportrait_studio.model.tiny import save_tiny_model, synthetic_portraits
    from icportrait_studio.model.train import TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as tmp:
        base = save_tiny_model(Path(tmp) / "base")
        synthetic_portraits(Path(tmp) / "data", n=8, size=40)
        cfg = TrainConfig(stage="stage1", data=str(Path(tmp) / "data"), base=str(base), out=str(Path(tmp) / "out"),
                          resolution=32, batch_size=4, patch_size=4, learning_rate=1e-3, lr_warmup_steps=0,
                          num_workers=0, max_steps=steps + 2, checkpoint_every=10_000, log_every=10_000, cpu=True)
        trainer = Trainer(cfg, echo=None)
        trainer.train(max_steps=2, export=False)  # warm-up
        t0 = time.perf_counter()
        result = trainer.train(max_steps=steps + 2, export=False)
        elapsed = time.perf_counter() - t0
    return {"batch": 4, "size": 32, "steps": steps, "s_per_step": round(elapsed / steps, 4),
            "last_loss": round(result.losses[-1], 4)}


def sd15_sized_pipeline(model: str | None, dtype_name: str):
    """A real local model, or an SD1.5-architecture one with random weights (timing needs no weights)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from icportrait_studio.model.conditioning import widen_unet_input
    from icportrait_studio.model.device import cast_module, choose_device
    from icportrait_studio.model.layout import icportrait_layout
    from icportrait_studio.model.pipeline import ICPortraitPipeline

    choice = choose_device("cuda", dtype_name)
    if model:
        pipe = ICPortraitPipeline.from_pretrained(model, torch_dtype=choice.dtype, device=choice.device)
    else:
        with torch.device(choice.device):
            unet = widen_unet_input(UNet2DConditionModel(**SD15_UNET), icportrait_layout().in_channels)
            vae = AutoencoderKL(**SD15_VAE)
        sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
        pipe = ICPortraitPipeline(vae=cast_module(vae, choice.dtype), unet=cast_module(unet, choice.dtype),
                                  scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    return pipe, choice


def bench_gpu(model: str | None, sizes: list[int], steps: int, dtype_name: str) -> dict:
    import torch

    pipe, choice = sd15_sized_pipeline(model, dtype_name)
    embeds = None
    if pipe.text_encoder is None:  # random SD1.5-sized model: CLIP-L-shaped prompt embeddings
        embeds = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(0)).to(choice.device, choice.dtype)
    out: dict = {"device": torch.cuda.get_device_name(0), "dtype": choice.dtype_name,
                 "weights": model or "random SD1.5 architecture", "steps": steps, "sizes": {}}
    rng = np.random.default_rng(0)
    for size in sizes:
        ref, cond = rng.random((size, size, 3), dtype=np.float32), rng.random((size, size, 3), dtype=np.float32)
        kw = {"strength": 1.0, "num_inference_steps": steps, "guidance_scale": 5.0, "seed": 0,
              "prompt_embeds": embeds, "negative_prompt_embeds": None if embeds is None else torch.zeros_like(embeds)}
        prompt = None if embeds is not None else "a portrait photo"
        _step_times(pipe, ref, cond, prompt, **{**kw, "num_inference_steps": 2})  # warm-up (kernels, allocator)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        total, times, finite = _step_times(pipe, ref, cond, prompt, **kw)
        out["sizes"][f"{size}x{size}"] = {
            "s_per_step_median": round(statistics.median(times), 4), "s_end_to_end": round(total, 3),
            "peak_vram_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2),
            "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 1e9, 2), "vae_tiled": pipe._last_tiled,
            "finite": finite}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--steps", type=int, default=10, help="CPU denoising steps per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    ap.add_argument("--max-cpu-step", type=float, default=0.5, help="fail (exit 1) above this many s/step on CPU")
    ap.add_argument("--no-train", action="store_true", help="skip the CPU training-step timing")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU timings (GPU only)")
    ap.add_argument("--model", help="a local model folder for the GPU timings (default: random SD1.5-sized)")
    ap.add_argument("--gpu-sizes", default="512,1024")
    ap.add_argument("--gpu-steps", type=int, default=20)
    ap.add_argument("--dtype", default="auto", help="GPU dtype: auto | fp16 | bf16")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine()}
    cpu = None
    if not args.no_cpu:
        cpu = bench_cpu(args.steps, args.repeat)
        report["cpu_tiny_inference"] = cpu
        print(f"CPU tiny model, 32² px, CFG batch 2, {cpu['threads']} thread(s): "
              f"{cpu['s_per_step_median']:.4f} s/step (min {cpu['s_per_step_min']:.4f}), "
              f"{cpu['s_end_to_end_median']:.3f} s for {cpu['steps']} steps end to end")
    if not args.no_train and not args.no_cpu:
        tr = bench_cpu_train(10)
        report["cpu_tiny_train"] = tr
        print(f"CPU tiny model, Stage-1 training, batch 4 at 32²: {tr['s_per_step']:.4f} s/step")
    if torch.cuda.is_available():
        sizes = [int(s) for s in args.gpu_sizes.split(",") if s]
        gpu = bench_gpu(args.model, sizes, args.gpu_steps, args.dtype)
        report["gpu"] = gpu
        for name, r in gpu["sizes"].items():
            print(f"GPU {gpu['device']} {gpu['dtype']} {name}: {r['s_per_step_median']:.4f} s/step, "
                  f"{r['s_end_to_end']:.2f} s for {gpu['steps']} steps, peak VRAM {r['peak_vram_gb']:.2f} GB "
                  f"(reserved {r['peak_reserved_gb']:.2f} GB){', VAE tiled' if r['vae_tiled'] else ''}"
                  f"{'' if r['finite'] else ', NON-FINITE OUTPUT'}")
    else:
        report["gpu"] = None
        print("GPU: CUDA not available here, skipping the 512² / 1024² refinement timings")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    ok = cpu is None or cpu["s_per_step_median"] <= args.max_cpu_step
    if not ok:
        print(f"REGRESSION: {cpu['s_per_step_median']:.4f} s/step > {args.max_cpu_step} s/step", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

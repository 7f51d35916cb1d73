"""The diffusion model's whole chain at real size on a GPU (issue: the IC-Portrait model). Prints its figures.

    python bench/bench_diffusion_gpu.py --work /tmp/gpu --render R.npz --pairs SYNTH/ [--json out.json]
    python bench/bench_diffusion_gpu.py --tiny --work /tmp/rehearsal --render R.npz --pairs SYNTH/

It runs what a user runs, in order, on a model with SD1.5's architecture and random weights (no
weights can be downloaded where this was written; speed and memory depend on the architecture and
the sizes, not on the weights' values, so these figures hold for a real SD1.5 snapshot):

1. a base folder in SD1.5's layout (fp16 safetensors, like SD1.5's fp16 variant);
2. Stage 1 through the CLI with ``configs/stage1_stitching.json`` (bf16, EMA, gradient checkpointing,
   batch 4 at 512²), shortened: ``--steps`` optimizer steps without gradient accumulation;
3. Stage 2 through ``accelerate launch`` from Stage 1's exported model, on ``icportrait synth`` pairs
   (``--pairs``), with ``configs/stage2_view.yaml`` shortened the same way;
4. the ``diffusion`` backend on Stage 2's model: preview (≤ 512 px) and full (≤ 1024 px) refinement of
   a physical render replayed from ``--render`` (an ``.npz`` of ``render``, ``photo``, ``alpha``, made
   by the physical backend: mediapipe is not needed here), bf16 then fp16, a cancel after 3 steps and
   a run after it.

``--tiny`` rehearses the same chain on the CPU with the tiny test model at 64 px (minutes, no GPU).
``--prepare DIR`` makes the inputs on a machine with the app installed (mediapipe needed): DIR/render.npz
(the sample scaled to 1024², relit by the physical backend) and DIR/synth (``icportrait synth`` pairs at
512 px); carry DIR to the GPU machine and pass ``--render DIR/render.npz --pairs DIR/synth``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CLIP_L = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
          "num_hidden_layers": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
          "projection_dim": 768, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_base_folder(folder: Path, tiny: bool, device: str = "cuda") -> dict:
    """An SD1.5-layout folder: unet/ vae/ text_encoder/ tokenizer/ scheduler/ (random weights)."""
    import torch

    from icportrait_studio.model.device import cast_module
    from icportrait_studio.model.tiny import _tokenizer_files, save_tiny_model

    t0 = time.perf_counter()
    if tiny:
        save_tiny_model(folder)
        return {"seconds": round(time.perf_counter() - t0, 1), "size_gb": _size_gb(folder)}
    from bench_diffusion import SD15_UNET, SD15_VAE
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    with torch.device(device):
        unet, vae = UNet2DConditionModel(**SD15_UNET), AutoencoderKL(**SD15_VAE)
        text = CLIPTextModel(CLIPTextConfig(**CLIP_L))
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    for sub, model in (("unet", unet), ("vae", vae), ("text_encoder", text)):
        cast_module(model, torch.float16).save_pretrained(folder / sub, variant="fp16")
    scheduler.save_pretrained(folder / "scheduler")
    vocab, merges = _tokenizer_files(folder / "tokenizer_src")
    CLIPTokenizer(str(vocab), str(merges), model_max_length=77).save_pretrained(folder / "tokenizer")
    shutil.rmtree(folder / "tokenizer_src")
    (folder / "model_index.json").write_text(json.dumps({  # what an SD1.5 snapshot's index holds
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]}, indent=2), encoding="utf-8")
    del unet, vae, text
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"seconds": round(time.perf_counter() - t0, 1), "size_gb": _size_gb(folder)}


def _size_gb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e9, 2)


def stage1_data(folder: Path, pairs: Path, tiny: bool) -> int:
    """Portraits for Stage 1: the synth set's rendered views (real faces, several lights) plus toy heads."""
    from icportrait_studio.model.tiny import synthetic_portraits

    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for png in sorted(pairs.rglob("view_*.png")):
        if not png.name.endswith(".mask.png"):
            shutil.copy(png, folder / f"{png.parent.name}_{png.name}")
            n += 1
    return n + len(synthetic_portraits(folder / "toy", n=8, size=64 if tiny else 512))


def run_config(base_file: Path, out_file: Path, steps: int, tiny: bool, **extra) -> Path:
    """The shipped config, shortened: ``steps`` optimizer steps, no accumulation, one checkpoint at the end."""
    text = base_file.read_text(encoding="utf-8")
    if base_file.suffix in (".yaml", ".yml"):
        import yaml

        cfg = yaml.safe_load(text)
    else:
        cfg = json.loads(text)
    cfg.update({"max_steps": steps, "gradient_accumulation": 1, "lr_warmup_steps": 2, "checkpoint_every": steps,
                "log_every": max(1, steps // 4), "eval_every": steps // 2})
    if tiny:
        cfg.update({"resolution": 64, "patch_size": 4, "batch_size": 2, "mixed_precision": "no", "cpu": True,
                    "num_workers": 0, "ema": cfg.get("ema", False)})
    cfg.update(extra)
    out_file.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return out_file


def run_training(cmd: list[str], out: Path, log_file: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTHONUNBUFFERED": "1"}
    log("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
    print("\n".join("    " + line for line in tail), flush=True)
    entries = []
    losses = out / "logs" / "losses.jsonl"
    if losses.is_file():
        entries = [json.loads(line) for line in losses.read_text(encoding="utf-8").splitlines() if line.strip()]
    # seconds per optimizer step: differences of the logged elapsed time, skipping the first two
    # steps (kernel selection, allocator growth) and the steps that ran the fixed-noise evaluation
    gaps = [b["elapsed_s"] - a["elapsed_s"] for a, b in itertools.pairwise(entries)
            if "eval_loss" not in b][2:]
    ck = sorted((out / "checkpoints").glob("step-*")) if (out / "checkpoints").is_dir() else []
    return {"exit": proc.returncode, "wall_s": round(wall, 1), "steps": len(entries),
            "s_per_step_median": round(statistics.median(gaps), 3) if gaps else None,
            "peak_vram_gb": max((e.get("peak_vram_gb", 0.0) for e in entries), default=None),
            "first_loss": entries[0]["loss"] if entries else None,
            "last_loss": entries[-1]["loss"] if entries else None,
            "eval_losses": [e["eval_loss"] for e in entries if "eval_loss" in e],
            "checkpoint_gb": _size_gb(ck[-1]) if ck else None,
            "model_exported": (out / "model" / "model_index.json").is_file()}


class ReplayedPhysical:
    """A physical backend that returns a render made earlier (so this machine needs no mediapipe)."""

    name = "physical"

    def __init__(self, render: np.ndarray, alpha: np.ndarray) -> None:
        self.render, self.alpha = render, alpha

    def available(self) -> tuple[bool, str]:
        return True, "replayed render"

    def run(self, request, source, progress, cancel):
        from icportrait_studio.pipeline.base import Result
        from icportrait_studio.pipeline.progress import Progress

        progress(Progress(1.0, "replayed"))
        return Result(request=request, image=self.render, alpha=self.alpha, shading=None, info={"warnings": []})


def bench_backend(model_dir: Path, render_file: Path, tiny: bool, *, dtypes: tuple[str, ...] = ("bf16", "fp16"),
                  scheduler: str | None = None, with_cancel: bool = True) -> dict:
    import torch

    from icportrait_studio.core.lights import Light, LightRig
    from icportrait_studio.core.request import EditRequest
    from icportrait_studio.model.backend import DiffusionBackend, DiffusionSettings
    from icportrait_studio.pipeline.base import SourceImage
    from icportrait_studio.pipeline.progress import CancelledError, CancelToken

    data = np.load(render_file)
    render, photo, alpha = (data[k].astype(np.float32) for k in ("render", "photo", "alpha"))
    if tiny:
        import cv2

        render, photo, alpha = (cv2.resize(a, (128, 128), interpolation=cv2.INTER_AREA) for a in (render, photo, alpha))
    cuda = torch.cuda.is_available() and not tiny
    sizes = {"preview_max_side": 64, "full_max_side": 128} if tiny else {}
    settings = DiffusionSettings(model_dir=str(model_dir), allow_cpu=tiny, device=None if cuda else "cpu",
                                 scheduler=scheduler, **sizes)
    backend = DiffusionBackend(settings, physical=ReplayedPhysical(render, alpha))
    source = SourceImage("gpu-check", photo)
    rig = LightRig(lights=(Light(azimuth=45, elevation=15),))
    report: dict = {"available": backend.available()[1]}

    def one(quality: str, cancel_after: int | None = None) -> dict:
        token, events = CancelToken(), []

        def progress(p) -> None:
            events.append(p)
            if cancel_after is not None and p.stage.startswith(f"refining {cancel_after}/"):
                token.cancel()

        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            res = backend.run(EditRequest("gpu-check", rig, quality=quality), source, progress, token)
        except CancelledError:
            steps_done = sum(1 for e in events if e.stage.startswith("refining"))
            return {"cancelled": True, "steps_before_cancel": steps_done, "s": round(time.perf_counter() - t0, 2)}
        wall = time.perf_counter() - t0
        info = res.info
        return {"quality": quality, "dtype": info["dtype"], "layout": info["layout"],
                "working_size": info["working_size"],
                "steps": info["steps"], "timings_ms": info["timings_ms"], "wall_s": round(wall, 2),
                "finite": bool(np.isfinite(res.image).all()),
                "previews": sum(1 for e in events if e.preview is not None), "progress_events": len(events),
                "peak_vram_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None}

    for dtype in dtypes:
        backend.configure(dtype=dtype)
        runs = [one("preview"), one("preview"), one("full"), one("full")]  # first of each: load / warm-up
        report[dtype] = {"preview_first": runs[0], "preview": runs[1], "full_first": runs[2], "full": runs[3]}
        for name in ("preview", "full"):
            r = report[dtype][name]
            log(f"backend {r['layout']} {dtype} {name} {r['working_size']}: {r['wall_s']:.2f} s, {r['steps']} steps "
                f"(diffusion {r['timings_ms']['diffusion'] / 1000:.2f} s), peak VRAM {r['peak_vram_gb']} GB, "
                f"finite {r['finite']}, {r['previews']} previews; first run (model load) "
                f"{report[dtype][name + '_first']['wall_s']:.2f} s")
    if with_cancel:
        report["cancel"] = one("full", cancel_after=3)
        report["after_cancel"] = one("full")
        log(f"cancel: {report['cancel']}; the next run: finite {report['after_cancel'].get('finite')} "
            f"in {report['after_cancel'].get('wall_s')} s")
    backend.unload()
    return report


def bench_optimizers(base: Path, data: Path, work: Path, steps: int, tiny: bool) -> dict:
    """Stage 1 in-process with the foreach and the fused AdamW: seconds per step and peak memory."""
    import torch

    from icportrait_studio.model.train import Trainer, load_config

    out: dict = {}
    for fused in (False, True):
        run = work / f"optim-{'fused' if fused else 'foreach'}"
        shutil.rmtree(run, ignore_errors=True)
        cfg_file = run_config(ROOT / "configs" / "stage1_stitching.json", work / "optim.json", steps, tiny)
        cfg = load_config(cfg_file, data=str(data), base=str(base), out=str(run), fused_optimizer=fused,
                          eval_every=0, num_workers=0 if tiny else 4)
        trainer = Trainer(cfg, echo=None)
        trainer.setup()
        if torch.cuda.is_available() and not tiny:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = trainer.train(max_steps=steps, export=False)
        wall = time.perf_counter() - t0
        entries = [json.loads(line) for line in (run / "logs" / "losses.jsonl").read_text().splitlines()]
        gaps = [b["elapsed_s"] - a["elapsed_s"] for a, b in itertools.pairwise(entries)][2:]
        out["fused" if fused else "foreach"] = {
            "s_per_step_median": round(statistics.median(gaps), 3) if gaps else None, "wall_s": round(wall, 1),
            "peak_vram_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if torch.cuda.is_available() else None,
            "last_loss": round(result.losses[-1], 4)}
        log(f"AdamW {'fused' if fused else 'foreach'}: {out['fused' if fused else 'foreach']}")
        del trainer
        shutil.rmtree(run, ignore_errors=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return out


def write_iclight_folder(base: Path, folder: Path) -> dict:
    """``base`` plus a random IC-Light-shaped offset file (an 8-channel ``conv_in`` and a small offset on
    every UNet tensor), the base's parts linked rather than copied."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from icportrait_studio.model.loading import _variant

    t0 = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for part in base.iterdir():
        (folder / part.name).symlink_to(part.resolve())
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", variant=_variant(base / "unet",
                                                "diffusion_pytorch_model"), local_files_only=True)
    g = torch.Generator().manual_seed(7)
    offset = {k: (1e-3 * torch.randn(v.shape, generator=g)).to(torch.float16) for k, v in unet.state_dict().items()}
    conv = offset["conv_in.weight"]
    offset["conv_in.weight"] = torch.cat([conv, 1e-2 * torch.randn(conv.shape, generator=g).to(conv.dtype)], dim=1)
    save_file(offset, str(folder / "iclight_sd15_fc.safetensors"))
    return {"seconds": round(time.perf_counter() - t0, 1),
            "offset_gb": round((folder / "iclight_sd15_fc.safetensors").stat().st_size / 1e9, 2)}


def prepare_inputs(folder: Path) -> None:
    """The render to replay and the Stage-2 pairs, made with the physical backend (see the docstring)."""
    import cv2

    from icportrait_studio.core.lights import Light, LightRig
    from icportrait_studio.core.request import EditRequest
    from icportrait_studio.imaging.io import load_image
    from icportrait_studio.pipeline.base import SourceImage
    from icportrait_studio.pipeline.physical import PhysicalBackend

    folder.mkdir(parents=True, exist_ok=True)
    sample = ROOT / "resources" / "samples" / "astronaut.png"
    rgb = cv2.resize(load_image(sample).rgb, (1024, 1024), interpolation=cv2.INTER_CUBIC).clip(0, None)
    rig = LightRig(lights=(Light(azimuth=45, elevation=15), Light(azimuth=-120, elevation=10, intensity=0.6)))
    res = PhysicalBackend(identity_check=False).run(EditRequest("gpu-check", rig), SourceImage("gpu-check", rgb))
    alpha = res.alpha if res.alpha is not None else np.ones(rgb.shape[:2], np.float32)
    np.savez_compressed(folder / "render.npz", render=res.image.astype(np.float16), photo=rgb.astype(np.float16),
                        alpha=alpha.astype(np.float16))
    shutil.rmtree(folder / "synth", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "icportrait_studio.cli", "synth", str(sample), "-o", str(folder / "synth"),
                    "--size", "512", "--yaw=-20,0,20", "--pitch", "0,10", "--rigs", "original,loop", "--no-identity",
                    "-q"], check=True, cwd=ROOT)
    log(f"inputs written to {folder}: render.npz, synth/")


def main() -> int:
    if "--prepare" in sys.argv:
        prepare_inputs(Path(sys.argv[sys.argv.index("--prepare") + 1]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="a scratch folder (several GB at real size)")
    ap.add_argument("--render", required=True, help=".npz with render, photo, alpha (linear float)")
    ap.add_argument("--pairs", required=True, help="an `icportrait synth` dataset folder")
    ap.add_argument("--steps", type=int, default=24, help="optimizer steps of each training stage")
    ap.add_argument("--tiny", action="store_true", help="rehearse on the CPU with the tiny model")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--only", default="base,stage1,stage2,backend",
                    help="any of base, stage1, stage2, backend, optim, controlnet, iclight")
    ap.add_argument("--prepare", metavar="DIR", help="only write the inputs (render.npz, synth/) to DIR, then stop")
    args = ap.parse_args()
    import torch

    only = set(args.only.split(","))
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --tiny for the CPU rehearsal", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"python": platform.python_version(), "torch": torch.__version__, "tiny": args.tiny,
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor()}
    base, s1, s2 = work / "sd15-random", work / "stage1", work / "stage2"

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")

    if "base" in only:
        shutil.rmtree(base, ignore_errors=True)
        report["base"] = write_base_folder(base, args.tiny)
        log(f"base folder: {report['base']}")
        save()
    launcher = [sys.executable, "-m", "icportrait_studio.cli"]
    if "stage1" in only:
        shutil.rmtree(s1, ignore_errors=True)
        n = stage1_data(work / "portraits", Path(args.pairs), args.tiny)
        cfg = run_config(ROOT / "configs" / "stage1_stitching.json", work / "stage1.json", args.steps, args.tiny)
        report["stage1"] = run_training([*launcher, "train", "stage1", "--data", str(work / "portraits"), "--base",
                                         str(base), "--out", str(s1), "--config", str(cfg)],
                                        s1, work / "stage1.log")
        report["stage1"]["images"] = n
        log(f"stage 1: {report['stage1']}")
        save()
        shutil.rmtree(s1 / "checkpoints", ignore_errors=True)  # measured; the disk is needed for stage 2
    if "stage2" in only:
        shutil.rmtree(s2, ignore_errors=True)
        cfg = run_config(ROOT / "configs" / "stage2_view.yaml", work / "stage2.json", args.steps, args.tiny,
                         gradient_checkpointing=False)
        accel = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
                 "--mixed_precision", "no" if args.tiny else "bf16", "--dynamo_backend", "no"]
        if args.tiny:
            accel.append("--cpu")
        report["stage2"] = run_training([*accel, "-m", "icportrait_studio.cli", "train", "stage2", "--data", args.pairs,
                                         "--base", str(s1 / "model"), "--out", str(s2), "--config", str(cfg)],
                                        s2, work / "stage2.log")
        log(f"stage 2: {report['stage2']}")
        save()
    if "optim" in only:
        if not (work / "portraits").is_dir():
            stage1_data(work / "portraits", Path(args.pairs), args.tiny)
        report["optim"] = bench_optimizers(base, work / "portraits", work, args.steps, args.tiny)
        save()
    if "backend" in only:
        report["backend"] = bench_backend(s2 / "model", Path(args.render), args.tiny)
        save()
    if "controlnet" in only:  # Stage 2 with the ControlNet branch, straight from the base; DPM-Solver at inference
        s2c = work / "stage2-controlnet"
        shutil.rmtree(s2c, ignore_errors=True)
        cfg = run_config(ROOT / "configs" / "stage2_view.yaml", work / "stage2c.json", args.steps, args.tiny,
                         controlnet=True, ema=False)
        report["controlnet_train"] = run_training([*launcher, "train", "stage2", "--data", args.pairs, "--base",
                                                   str(base), "--out", str(s2c), "--config", str(cfg)],
                                                  s2c, work / "stage2c.log")
        log(f"stage 2 + ControlNet: {report['controlnet_train']}")
        shutil.rmtree(s2c / "checkpoints", ignore_errors=True)
        save()
        report["controlnet_backend"] = bench_backend(s2c / "model", Path(args.render), args.tiny,
                                                     scheduler="DPMSolverMultistepScheduler", with_cancel=False)
        save()
    if "iclight" in only:
        ic = work / "sd15-iclight"
        report["iclight_folder"] = write_iclight_folder(base, ic)
        log(f"IC-Light folder: {report['iclight_folder']}")
        report["iclight_backend"] = bench_backend(ic, Path(args.render), args.tiny, dtypes=("bf16",), with_cancel=False)
        save()
    ok = all(report.get(k, {}).get("exit", 0) == 0 for k in ("stage1", "stage2", "controlnet_train"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Training the IC-Portrait model with ``accelerate`` (one or many GPUs; CPU for smoke runs).

Stage 1, lighting-aware stitching (self-supervised, any folder of portraits): the UNet denoises the
target photo's latent given the reference latent and the target's latent with ``mask_ratio`` of its
patches zeroed (MAE-style). The visible patches carry the target's light, the reference the person's
looks, so the model learns to relight a reference from sparse evidence of the light.
Stage 2, view-consistent adaptation (``icportrait synth`` pairs): the condition is the reference
warped to the target pose by the synthesized flow, with a mask of the pixels the warp did not reach.

Determinism: the noise, timesteps, masks and VAE samples of micro-batch ``k`` come from a generator
seeded with ``(seed, k, process)``, the data order from ``(seed, epoch)``, so a run resumed from a
checkpoint continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from icportrait_studio.errors import InputError
from icportrait_studio.imaging.atomic import atomic_write_text
from icportrait_studio.model.conditioning import assemble_input, build_controlnet, patch_mask, widen_unet_input
from icportrait_studio.model.data import SeededSampler, make_dataset
from icportrait_studio.model.device import cast_module
from icportrait_studio.model.layout import icportrait_layout

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
LOSS_LOG = "losses.jsonl"


@dataclass
class TrainConfig:
    """Every training knob; load from JSON/YAML with ``load_config`` (unknown keys are an error)."""

    stage: str = "stage1"
    data: str = ""
    base: str = ""  # a local SD1.5 / IC-Light / IC-Portrait model folder
    out: str = ""
    resolution: int = 512
    batch_size: int = 4
    gradient_accumulation: int = 1
    learning_rate: float = 1e-5
    lr_scheduler: str = "constant_with_warmup"
    lr_warmup_steps: int = 500
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    max_steps: int = 20000
    mask_ratio: float = 0.8  # share of patches hidden from the Stage-1 condition
    patch_size: int = 16  # pixels; a multiple of the VAE's downsampling (8 for SD1.5)
    prompt: str = "a portrait photo of a person"
    prompt_dropout: float = 0.1  # empty prompt this often, so text guidance works at inference
    reference_jitter: float = 0.05  # Stage 1, single-photo references: geometric jitter (fraction of size)
    light_disturb: float = 1.0  # Stage 1, single-photo references: strength of the light change
    background_weight: float = 1.0  # Stage 2: loss weight outside the subject mask
    noise_offset: float = 0.0
    snr_gamma: float = 0.0  # Min-SNR loss weighting (0 = off; 5 is the usual value)
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False
    controlnet: bool = False  # also train a ControlNet branch on the condition image
    ema: bool = False
    ema_decay: float = 0.9999
    fused_optimizer: bool | None = None  # one fused AdamW kernel (None: on CUDA, where it is faster)
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    eval_every: int = 0  # fixed-noise validation loss every N steps (0 = off)
    seed: int = 0
    num_workers: int = 2
    cpu: bool = False  # force the CPU even with a GPU (smoke runs)

    def validate(self) -> TrainConfig:
        if self.stage not in ("stage1", "stage2"):
            raise InputError(f"stage must be stage1 or stage2, not {self.stage!r}")
        for name in ("data", "base", "out"):
            if not getattr(self, name):
                raise InputError(f"training needs --{name} (or '{name}' in the config file)")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise InputError("mask_ratio must be in [0, 1)")
        if self.patch_size < 1 or self.resolution % self.patch_size:
            raise InputError(f"resolution {self.resolution} is not a multiple of patch_size {self.patch_size}")
        for name in ("batch_size", "gradient_accumulation", "max_steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise InputError("mixed_precision must be no, fp16 or bf16")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**data)


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A config from a JSON or YAML file, with ``overrides`` (None values ignored) on top."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read config {p}: {exc}") from exc
        try:
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:  # json and yaml raise different types; both mean "not a config"
            raise InputError(f"config {p} is not valid {p.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError(f"config {p} must hold a mapping of options")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(data)


@dataclass
class TrainResult:
    steps: int
    losses: list[float] = field(default_factory=list)  # one per optimizer step of this run
    model_dir: str | None = None
    last_checkpoint: str | None = None


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint (its state file is written last, so a crash mid-save is skipped)."""
    root = Path(out) / "checkpoints"
    done = [d for d in root.glob("step-*") if (d / STATE_FILE).is_file()] if root.is_dir() else []
    return max(done, key=lambda d: int(d.name.split("-")[1]), default=None)


class Trainer:
    """Stage 1 / Stage 2 training loop; ``train()`` sets everything up on first use."""

    def __init__(self, config: TrainConfig, *, echo: Callable[[str], None] | None = print) -> None:
        self.cfg = config.validate()
        self.echo = echo or (lambda _msg: None)
        self.out = Path(config.out)
        self.step = 0
        self.micro = 0
        self._ready = False

    # ---- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        if self._ready:
            return
        from accelerate import Accelerator
        from accelerate.utils import GradientAccumulationPlugin, set_seed
        from diffusers import DDPMScheduler
        from diffusers.optimization import get_scheduler
        from torch.utils.data import DataLoader

        from icportrait_studio.model.pipeline import ICPortraitPipeline

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        plugin = GradientAccumulationPlugin(num_steps=cfg.gradient_accumulation, sync_with_dataloader=False)
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_plugin=plugin,
                               cpu=cfg.cpu, project_dir=str(self.out))
        set_seed(cfg.seed)
        pipe = ICPortraitPipeline.from_pretrained(cfg.base, layout="auto")
        self.pipe = pipe
        self.layout = icportrait_layout(pipe.latent_channels)
        unet = widen_unet_input(pipe.unet, self.layout.in_channels)  # an IC-Light base keeps its 8 channels
        self.vae_factor = pipe.vae_scale_factor
        if cfg.patch_size % self.vae_factor:
            raise InputError(f"patch_size {cfg.patch_size} must be a multiple of the VAE factor {self.vae_factor}")
        self.weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.mixed_precision]
        device = self.acc.device
        pipe.vae.requires_grad_(False).to(device).eval()
        if self.weight_dtype != torch.float32:  # frozen parts run in the mixed-precision dtype
            cast_module(pipe.vae, self.weight_dtype)
        pipe.text_encoder.requires_grad_(False).to(device).eval()
        with torch.no_grad():
            self.prompt_embeds = pipe.encode_prompt(cfg.prompt, device).float()
            self.empty_embeds = pipe.encode_prompt("", device).float()
        pipe.text_encoder.to("cpu")
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        controlnet = pipe.controlnet
        if cfg.controlnet and controlnet is None:
            controlnet = build_controlnet(unet, self.vae_factor, pipe.latent_channels)
        if not cfg.controlnet:
            controlnet = None
        unet.train()
        params = list(unet.parameters())
        if controlnet is not None:
            controlnet.train()
            params += list(controlnet.parameters())
        if cfg.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            if controlnet is not None:
                controlnet.enable_gradient_checkpointing()
        # Why fused on CUDA: one kernel for the whole update instead of a chain of foreach passes:
        # 0.30 instead of 0.37 s per Stage-1 step on an H100 (SD1.5 size, batch 4 at 512²), the same
        # losses, the same peak memory (bench/RESULTS.md). It needs the parameters on the GPU first.
        fused = cfg.fused_optimizer if cfg.fused_optimizer is not None else device.type == "cuda"
        if fused:
            for m in (unet, controlnet):
                if m is not None:
                    m.to(device)
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                      **({"fused": True} if fused else {}))
        procs = self.acc.num_processes
        lr_sched = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps * procs,
                                 num_training_steps=cfg.max_steps * procs)
        self.dataset = make_dataset(cfg.stage, cfg.data, cfg.resolution, seed=cfg.seed,
                                    reference_jitter=cfg.reference_jitter, light_disturb=cfg.light_disturb)
        if len(self.dataset) < cfg.batch_size * procs:
            raise InputError(f"{len(self.dataset)} training samples are fewer than one batch "
                             f"({cfg.batch_size} × {procs} process(es))")
        loader = DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=SeededSampler(len(self.dataset), cfg.seed),
                            drop_last=True, num_workers=cfg.num_workers, persistent_workers=False)
        if controlnet is not None:
            unet, controlnet, optimizer, loader, lr_sched = self.acc.prepare(unet, controlnet, optimizer, loader,
                                                                             lr_sched)
        else:
            unet, optimizer, loader, lr_sched = self.acc.prepare(unet, optimizer, loader, lr_sched)
        self.unet, self.controlnet, self.optimizer, self.loader, self.lr_sched = (unet, controlnet, optimizer,
                                                                                  loader, lr_sched)
        self.params = params
        self.ema = None
        if cfg.ema:
            from diffusers.training_utils import EMAModel

            base = self.acc.unwrap_model(unet)
            self.ema = EMAModel(base.parameters(), decay=cfg.ema_decay, model_cls=type(base), model_config=base.config)
            self.ema.to(device)
            self.acc.register_for_checkpointing(self.ema)
        self._ready = True

    # ---- the loss -------------------------------------------------------------------------------
    def _encode(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = (images.to(self.acc.device, dtype=self.weight_dtype) * 2 - 1)
        z = self.pipe.vae.encode(x).latent_dist.sample(generator=g)
        shift = getattr(self.pipe.vae.config, "shift_factor", None) or 0.0
        return ((z - shift) * self.pipe.vae.config.scaling_factor).float()

    def _randn(self, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
        return torch.randn(shape, generator=g).to(self.acc.device)

    def compute_loss(self, batch: dict[str, torch.Tensor], g: torch.Generator,
                     timesteps: torch.Tensor | None = None) -> torch.Tensor:
        """The denoising loss of one batch; all randomness drawn from ``g`` (CPU generator)."""
        cfg, dev = self.cfg, self.acc.device
        target = batch["target"]
        b = target.shape[0]
        with torch.no_grad():
            z_t = self._encode(target, g)
            z_r = self._encode(batch["reference"], g)
            h, w = z_t.shape[-2:]
            if cfg.stage == "stage1":
                mask = patch_mask(b, h, w, cfg.patch_size // self.vae_factor, cfg.mask_ratio, generator=g).to(dev)
                z_c = z_t * (1 - mask)
                ctrl = target.to(dev) * (1 - F.interpolate(mask, size=target.shape[-2:], mode="nearest"))
            else:
                vis = batch["visibility"].to(dev)
                mask = 1 - (-F.max_pool2d(-vis, self.vae_factor))  # a latent pixel is known if all its pixels are
                z_c = self._encode(batch["condition"], g) * (1 - mask)
                ctrl = batch["condition"].to(dev)
        noise = self._randn(tuple(z_t.shape), g)
        if cfg.noise_offset:
            noise = noise + cfg.noise_offset * self._randn((b, z_t.shape[1], 1, 1), g)
        if timesteps is None:
            timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (b,), generator=g)
        t = timesteps.to(dev).long()
        noisy = self.noise_scheduler.add_noise(z_t, noise, t)
        x = assemble_input(self.layout, noisy, reference=z_r, condition=z_c, mask=mask)
        drop = (torch.rand(b, generator=g) < cfg.prompt_dropout).to(dev).view(b, 1, 1)
        text = torch.where(drop, self.empty_embeds.expand(b, -1, -1), self.prompt_embeds.expand(b, -1, -1))
        extra: dict = {}
        if self.controlnet is not None:
            down, mid = self.controlnet(noisy, t, encoder_hidden_states=text, controlnet_cond=ctrl, return_dict=False)
            extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        pred = self.unet(x, t, encoder_hidden_states=text, return_dict=False, **extra)[0]
        kind = self.noise_scheduler.config.prediction_type
        goal = noise if kind == "epsilon" else self.noise_scheduler.get_velocity(z_t, noise, t)
        err = (pred.float() - goal.float()) ** 2
        weight = torch.ones_like(err[:, :1])
        if cfg.stage == "stage2" and cfg.background_weight != 1.0 and "loss_mask" in batch:
            fg = F.adaptive_avg_pool2d(batch["loss_mask"].to(dev), (h, w))
            weight = fg + cfg.background_weight * (1 - fg)
        per_sample = (err * weight).mean(dim=(1, 2, 3)) / weight.mean(dim=(1, 2, 3)).clamp_min(1e-6)
        if cfg.snr_gamma > 0:
            from diffusers.training_utils import compute_snr

            snr = compute_snr(self.noise_scheduler, t)
            snr_w = torch.clamp(snr, max=cfg.snr_gamma) / (snr if kind == "epsilon" else snr + 1)
            per_sample = per_sample * snr_w
        return per_sample.mean()

    def _generator(self, micro: int) -> torch.Generator:
        seed = (self.cfg.seed * 1_000_003 + micro * 1_009 + self.acc.process_index) % (2**63)
        return torch.Generator().manual_seed(seed)

    def fixed_batch(self, n: int | None = None) -> dict[str, torch.Tensor]:
        """The first ``n`` samples (epoch 0), stacked: a validation batch that never changes."""
        self.setup()
        epoch = self.dataset.epoch
        self.dataset.set_epoch(0)
        items = [self.dataset[i] for i in range(min(n or self.cfg.batch_size, len(self.dataset)))]
        self.dataset.set_epoch(epoch)
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, torch.Tensor] | None = None, seed: int = 1234,
                 timesteps: tuple[int, ...] = (50, 200, 400, 600, 800, 950)) -> float:
        """Loss with fixed noise, masks and timesteps: comparable across steps, unlike the training loss."""
        self.setup()
        batch = batch if batch is not None else self.fixed_batch()
        b = batch["target"].shape[0]
        losses = []
        for t in timesteps:
            g = torch.Generator().manual_seed(seed + t)
            losses.append(float(self.compute_loss(batch, g, torch.full((b,), t, dtype=torch.long))))
        return sum(losses) / len(losses)

    # ---- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        ck = self.out / "checkpoints" / f"step-{self.step:07d}"
        self.acc.save_state(str(ck))
        if self.acc.is_main_process:
            state = {"step": self.step, "micro": self.micro, "config": self.cfg.to_dict(), "time": time.time()}
            atomic_write_text(ck / STATE_FILE, json.dumps(state, indent=2))
            done = sorted((d for d in ck.parent.glob("step-*") if (d / STATE_FILE).is_file()),
                          key=lambda d: int(d.name.split("-")[1]))
            for old in done[: max(0, len(done) - self.cfg.keep_checkpoints)]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()
        return ck

    def resume(self) -> bool:
        """Load the newest checkpoint under ``out``; False when there is none (a fresh start)."""
        self.setup()
        ck = latest_checkpoint(self.out)
        if ck is None:
            return False
        self.acc.load_state(str(ck))
        state = json.loads((ck / STATE_FILE).read_text(encoding="utf-8"))
        self.step, self.micro = int(state["step"]), int(state["micro"])
        self.acc.step = 0  # checkpoints are taken at optimizer-step boundaries
        self.echo(f"resumed from {ck} at step {self.step}")
        return True

    def export(self, folder: str | Path | None = None) -> Path:
        """Save the trained model as an ``ICPortraitPipeline`` folder (EMA weights when EMA is on)."""
        from icportrait_studio.model.pipeline import ICPortraitPipeline

        folder = Path(folder or self.out / "model")
        unet = self.acc.unwrap_model(self.unet)
        if self.ema is not None:
            self.ema.store(unet.parameters())
            self.ema.copy_to(unet.parameters())
        try:
            if self.acc.is_main_process:
                controlnet = self.acc.unwrap_model(self.controlnet) if self.controlnet is not None else None
                pipe = ICPortraitPipeline(vae=self.pipe.vae, unet=unet, scheduler=self.pipe.scheduler,
                                          text_encoder=self.pipe.text_encoder, tokenizer=self.pipe.tokenizer,
                                          controlnet=controlnet)
                pipe.save_pretrained(folder)
        finally:
            if self.ema is not None:
                self.ema.restore(unet.parameters())
        self.acc.wait_for_everyone()
        return folder

    # ---- the loop -------------------------------------------------------------------------------
    def train(self, max_steps: int | None = None, *, resume: bool = False, export: bool = True) -> TrainResult:
        self.setup()
        cfg = self.cfg
        if resume:
            self.resume()
        max_steps = max_steps or cfg.max_steps
        per_epoch = len(self.loader)
        if per_epoch == 0:
            raise InputError("the data loader is empty")
        losses: list[float] = []
        pending: list[float] = []
        last_ck: Path | None = None
        log_path = self.out / "logs" / LOSS_LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.echo(f"training {cfg.stage} on {len(self.dataset)} samples, {self.acc.num_processes} process(es) on "
                  f"{self.acc.device}, steps {self.step} -> {max_steps}")
        while self.step < max_steps:
            epoch, skip = divmod(self.micro, per_epoch)
            self.dataset.set_epoch(epoch)
            loader = self.acc.skip_first_batches(self.loader, skip) if skip else self.loader
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            for batch in loader:
                g = self._generator(self.micro)
                with self.acc.accumulate(*(m for m in (self.unet, self.controlnet) if m is not None)):
                    loss = self.compute_loss(batch, g)
                    self.acc.backward(loss)
                    if self.acc.sync_gradients and cfg.max_grad_norm > 0:
                        self.acc.clip_grad_norm_(self.params, cfg.max_grad_norm)
                    self.optimizer.step()
                    self.lr_sched.step()
                    self.optimizer.zero_grad(set_to_none=True)
                self.micro += 1
                pending.append(float(loss.detach()))
                if not self.acc.sync_gradients:
                    continue
                self.step += 1
                if self.ema is not None:
                    self.ema.step(self.acc.unwrap_model(self.unet).parameters())
                value = float(self.acc.gather(torch.tensor(sum(pending) / len(pending),
                                                           device=self.acc.device)).mean())
                pending.clear()
                losses.append(value)
                self._log(log_path, value, t0, len(losses))
                if self.step % cfg.checkpoint_every == 0 or self.step >= max_steps:
                    last_ck = self.save_checkpoint()
                if self.step >= max_steps:
                    break
        model_dir = str(self.export()) if export else None
        self.echo(f"done: {self.step} steps" + (f", model saved to {model_dir}" if model_dir else ""))
        return TrainResult(steps=self.step, losses=losses, model_dir=model_dir,
                           last_checkpoint=str(last_ck) if last_ck else None)

    def _log(self, path: Path, loss: float, t0: float, done: int) -> None:
        cfg = self.cfg
        entry: dict[str, Any] = {"step": self.step, "loss": round(loss, 6), "lr": self.lr_sched.get_last_lr()[0],
                                 "elapsed_s": round(time.perf_counter() - t0, 3)}
        if self.acc.device.type == "cuda":  # what a user sizing a batch for their card needs to know
            entry["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(self.acc.device) / 1e9, 2)
        if cfg.eval_every and self.step % cfg.eval_every == 0:
            entry["eval_loss"] = round(self.evaluate(), 6)
        if not self.acc.is_main_process:
            return
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        if self.step % cfg.log_every == 0 or "eval_loss" in entry:
            rate = done / max(1e-9, time.perf_counter() - t0)
            extra = f" eval {entry['eval_loss']:.4f}" if "eval_loss" in entry else ""
            extra += f" peak VRAM {entry['peak_vram_gb']:.1f} GB" if "peak_vram_gb" in entry else ""
            self.echo(f"step {self.step}/{cfg.max_steps} loss {loss:.4f}{extra} lr {entry['lr']:.2e} "
                      f"({rate:.2f} steps/s)")
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} at step {self.step}: lower the learning rate "
                                     "or use bf16 instead of fp16")


def train(config: TrainConfig, *, resume: bool = False, echo: Callable[[str], None] | None = print) -> TrainResult:
    """Run a whole training job from a config (what ``icportrait train`` calls)."""
    trainer = Trainer(config, echo=echo)
    trainer.setup()
    if trainer.acc.is_main_process:
        atomic_write_text(trainer.out / "config.json", json.dumps(config.to_dict(), indent=2))
    return trainer.train(resume=resume)

"""Training data: any folder of portraits (Stage 1) and ``icportrait synth`` pairs (Stage 2).

Samples are dicts of float32 tensors in [0, 1] (sRGB-encoded, what the VAE expects), CHW:
  stage 1: ``target`` (the photo) and ``reference`` (another photo of the person when the folder
           groups people in sub-folders, else the same photo with its light and framing disturbed,
           so the model must take the light from the visible target patches, not the reference);
  stage 2: ``target`` (the rendered view), ``reference`` (the source photo), ``condition`` (the
           reference warped to the target pose with the synthesized flow), ``visibility`` (1 where
           the warp put a pixel) and ``loss_mask`` (the target's subject mask, ones when absent).
Randomness comes from ``numpy.random.default_rng((seed, epoch, index))``: a sample is the same
whenever it is drawn again, which is what makes resumed training repeat the uninterrupted run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from icportrait_studio.errors import InputError

MANIFEST_FORMAT = "icportrait-view-pairs"  # what `icportrait synth` writes (icportrait_studio/synth/dataset.py)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def load_srgb(path: str | Path) -> np.ndarray:
    """An image as HxWx3 float32 sRGB-encoded values in [0, 1] (EXIF orientation, 16-bit, ICC handled)."""
    from icportrait_studio.imaging.color import linear_to_srgb
    from icportrait_studio.imaging.io import load_image

    return np.clip(linear_to_srgb(load_image(path).rgb), 0.0, 1.0)


def load_mask(path: str | Path) -> np.ndarray:
    """A mask as HxW float32 in [0, 1] (its alpha when it has one, else its grey level)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            band = im.getchannel("A") if "A" in im.getbands() else im.convert("L")
            return np.asarray(band, dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read mask {path}: {exc}") from exc


def center_crop_resize(img: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Scale the short side to ``size`` and crop the middle square (portraits are roughly centred)."""
    h, w = img.shape[:2]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    out = cv2.resize(img, (nw, nh), interpolation=interpolation if s < 1 else cv2.INTER_CUBIC)
    y, x = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(out[y:y + size, x:x + size])


def to_chw(img: np.ndarray) -> torch.Tensor:
    a = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    if a.ndim == 2:
        a = a[..., None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def disturb_light(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Change an image's apparent lighting: global gain, colour cast, and a smooth directional ramp.

    Used to make Stage-1 references when only one photo per person exists; the geometry stays, the
    light does not, so copying the reference's light into the output is penalised by the loss.
    """
    h, w = img.shape[:2]
    gain = np.exp(rng.normal(0, 0.35 * strength))
    cast = np.exp(rng.normal(0, 0.12 * strength, size=3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xx / max(w - 1, 1) - 0.5) * math.cos(angle) + (yy / max(h - 1, 1) - 0.5) * math.sin(angle))
    ramp = 1.0 + rng.uniform(0.3, 1.2) * strength * ramp
    out = img * gain * cast[None, None, :] * np.clip(ramp, 0.1, None)[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def jitter(img: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """A small random similarity transform (and a coin-flip mirror): the reference is not pixel-aligned."""
    h, w = img.shape[:2]
    if amount <= 0:
        return img
    angle = rng.uniform(-10, 10) * amount / 0.05
    scale = 1.0 + rng.uniform(-amount, amount)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += rng.uniform(-amount, amount, size=2) * (w, h)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out[:, ::-1].copy() if rng.random() < 0.5 else out


class EpochSeeded:
    """Mixin: the epoch number the datasets' per-sample RNG depends on."""

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))


class PortraitFolderDataset(EpochSeeded, Dataset):
    """Stage 1: every image under ``root`` (recursively). Sub-folders are taken to hold one person each."""

    def __init__(self, root: str | Path, resolution: int, *, seed: int = 0, reference_jitter: float = 0.05,
                 light_disturb: float = 1.0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"training data folder {self.root} does not exist")
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if not self.paths:
            raise InputError(f"no images ({', '.join(IMAGE_EXTS)}) found under {self.root}")
        self.resolution, self.seed = resolution, seed
        self.reference_jitter, self.light_disturb = reference_jitter, light_disturb
        groups: dict[Path, list[int]] = {}
        for i, p in enumerate(self.paths):
            groups.setdefault(p.parent, []).append(i)
        # Only sub-folders of root are "people"; loose files in root each stand alone.
        self.group_of = [groups[p.parent] if p.parent != self.root else [i] for i, p in enumerate(self.paths)]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        target = center_crop_resize(load_srgb(self.paths[index]), self.resolution)
        others = [j for j in self.group_of[index] if j != index]
        if others:
            ref = center_crop_resize(load_srgb(self.paths[others[int(rng.integers(len(others)))]]), self.resolution)
            ref = jitter(ref, rng, self.reference_jitter * 0.5)
        else:
            ref = disturb_light(jitter(target, rng, self.reference_jitter), rng, self.light_disturb)
        return {"target": to_chw(target), "reference": to_chw(ref)}


def warp_by_flow(reference: np.ndarray, flow: np.ndarray, out_shape: tuple[int, int] | None = None,
                 convention: str = "forward") -> tuple[np.ndarray, np.ndarray]:
    """Warp ``reference`` into the target pose; returns (warped HxWx3, visibility HxW in {0, 1}).

    ``forward`` (what ``icportrait synth`` writes): ``flow[y, x]`` on the reference grid is the offset
    from reference pixel (x, y) to where it lands in the target; NaN = not visible there. Pixels are
    splatted bilinearly and normalised by their weights; target pixels that receive less than half a
    pixel's weight count as not visible (holes, disocclusions). ``backward``: ``flow`` lives on the
    target grid and points to where to sample the reference (NaN = nothing to sample).
    """
    flow = np.asarray(flow, dtype=np.float32)
    h, w = reference.shape[:2]
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise InputError(f"a flow must be HxWx2, got shape {flow.shape}")
    if convention == "backward":
        th, tw = flow.shape[:2]
        valid = np.isfinite(flow).all(axis=2)
        gx, gy = np.meshgrid(np.arange(tw, dtype=np.float32), np.arange(th, dtype=np.float32))
        mx, my = gx + np.nan_to_num(flow[..., 0]), gy + np.nan_to_num(flow[..., 1])
        inside = valid & (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        warped = cv2.remap(reference, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        vis = inside.astype(np.float32)
        return (warped * vis[..., None]).astype(np.float32), vis
    if convention != "forward":
        raise InputError(f"unknown flow convention {convention!r} (forward or backward)")
    if flow.shape[:2] != (h, w):
        raise InputError(f"a forward flow must match the reference size {w}x{h}, got {flow.shape[1]}x{flow.shape[0]}")
    th, tw = out_shape or (h, w)
    valid = np.isfinite(flow).all(axis=2)
    ys, xs = np.nonzero(valid)
    tx, ty = xs + flow[ys, xs, 0], ys + flow[ys, xs, 1]
    colors = reference[ys, xs].astype(np.float32)
    acc = np.zeros((th * tw, 3), np.float64)
    wsum = np.zeros(th * tw, np.float64)
    x0, y0 = np.floor(tx).astype(np.int64), np.floor(ty).astype(np.int64)
    fx, fy = tx - x0, ty - y0
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        cx, cy = x0 + dx, y0 + dy
        ok = (cx >= 0) & (cx < tw) & (cy >= 0) & (cy < th) & (wgt > 0)
        idx = cy[ok] * tw + cx[ok]
        np.add.at(wsum, idx, wgt[ok])
        np.add.at(acc, idx, colors[ok] * wgt[ok, None])
    vis = (wsum >= 0.5).astype(np.float32)
    warped = np.where(wsum[:, None] > 0, acc / np.maximum(wsum, 1e-8)[:, None], 0.0) * vis[:, None]
    return warped.reshape(th, tw, 3).astype(np.float32), vis.reshape(th, tw)


def _entry(sample: dict, key: str, required: bool = True) -> str | None:
    for k in (key, f"{key}_path"):
        if isinstance(sample.get(k), str):
            return sample[k]
    if required:
        raise InputError(f"manifest sample lacks {key!r} (or {key}_path): {sorted(sample)}")
    return None


class SynthPairsDataset(EpochSeeded, Dataset):
    """Stage 2: the pairs ``icportrait synth`` writes, listed in ``manifest.json`` (paths relative to it).

    The manifest is a list of samples or ``{"samples": [...], "flow_convention": "forward"}``; each
    sample names ``reference``, ``target``, ``flow`` (.npy float16 HxWx2) and optionally ``mask``,
    with ``yaw``, ``pitch`` and ``rig`` kept as metadata.
    """

    def __init__(self, root: str | Path, resolution: int, *, seed: int = 0) -> None:
        root = Path(root)
        manifest = root / "manifest.json" if root.is_dir() else root
        if not manifest.is_file():
            raise InputError(f"no manifest.json in {root} (make one with `icportrait synth`)")
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read {manifest}: {exc}") from exc
        if isinstance(data, dict) and data.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT:
            raise InputError(f"{manifest} is a {data.get('format')!r} manifest, not {MANIFEST_FORMAT!r}")
        samples = data.get("samples") if isinstance(data, dict) else data
        if not isinstance(samples, list) or not samples:
            raise InputError(f"{manifest} lists no samples")
        self.base = manifest.parent
        self.convention = data.get("flow_convention", "forward") if isinstance(data, dict) else "forward"
        self.samples = samples
        self.resolution, self.seed = resolution, seed
        for i, s in enumerate(samples):
            for key in ("reference", "target", "flow"):
                p = self.base / str(_entry(s, key))
                if not p.is_file():
                    raise InputError(f"manifest sample {i}: {key} file {p} is missing")

    def __len__(self) -> int:
        return len(self.samples)

    def meta(self, index: int) -> dict:
        s = self.samples[index]
        return {"yaw": float(s.get("yaw", 0.0)), "pitch": float(s.get("pitch", 0.0)), "rig": s.get("rig", {})}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = self.samples[index]
        ref = load_srgb(self.base / str(_entry(s, "reference")))
        target = load_srgb(self.base / str(_entry(s, "target")))
        flow = np.load(self.base / str(_entry(s, "flow"))).astype(np.float32)
        mask_name = _entry(s, "mask", required=False)
        mask = load_mask(self.base / mask_name) if mask_name else np.ones(target.shape[:2], np.float32)
        if mask.shape != target.shape[:2]:
            mask = cv2.resize(mask, (target.shape[1], target.shape[0]), interpolation=cv2.INTER_LINEAR)
        warped, vis = warp_by_flow(ref, flow, target.shape[:2], self.convention)
        r = self.resolution
        return {
            "target": to_chw(center_crop_resize(target, r)),
            "reference": to_chw(center_crop_resize(ref, r)),
            "condition": to_chw(center_crop_resize(warped, r)),
            # Nearest-ish: a partly covered pixel counts as unknown, so the model never trusts a smear.
            "visibility": to_chw((center_crop_resize(vis, r, cv2.INTER_AREA) > 0.999).astype(np.float32)),
            "loss_mask": to_chw(center_crop_resize(mask, r, cv2.INTER_AREA)),
        }


class SeededSampler(EpochSeeded, Sampler[int]):
    """A shuffling sampler whose order depends only on (seed, epoch): resumable without saved state."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng((self.seed, self.epoch)).permutation(self.n).tolist())


def make_dataset(stage: str, data: str | Path, resolution: int, *, seed: int = 0,
                 reference_jitter: float = 0.05, light_disturb: float = 1.0) -> Dataset:
    if stage == "stage1":
        return PortraitFolderDataset(data, resolution, seed=seed, reference_jitter=reference_jitter,
                                     light_disturb=light_disturb)
    if stage == "stage2":
        return SynthPairsDataset(data, resolution, seed=seed)
    raise InputError(f"unknown training stage {stage!r} (stage1 or stage2)")

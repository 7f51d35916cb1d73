"""Synthesised view-consistent pairs: the data the diffusion model's view adaptation trains on.

For every photo, the physical backend renders a grid of views (yaw × pitch) × light rigs, and the
warp that produced each view gives exact correspondences from the reference photo to it.

Layout of a dataset folder::

    DATASET/
      manifest.json
      <photo stem>/reference.png                  the photo, resized (sRGB, 8-bit)
      <photo stem>/view_y+20_p-10.flow.npy        reference → view flow (shared by all rigs of a view)
      <photo stem>/view_y+20_p-10.mask.png        the person's alpha in that view (8-bit)
      <photo stem>/view_y+20_p-10_<rig>.png       the target: the view, relit by <rig> (sRGB, 8-bit)

``manifest.json`` is a JSON object::

    {
      "format": "icportrait-view-pairs", "version": 1, "flow_convention": "forward",
      "flow": "float16 HxWx2 .npy: per reference pixel (x, y), the offset (dx, dy) in pixels to where
               that point appears in the target; NaN where it is not visible in the target",
      "samples": [
        {
          "reference": "astronaut/reference.png",      # paths relative to the dataset folder
          "target": "astronaut/view_y+20_p+00_loop.png",
          "flow": "astronaut/view_y+20_p+00.flow.npy",
          "mask": "astronaut/view_y+20_p+00.mask.png",
          "yaw": 20.0, "pitch": 0.0,                   # degrees; +yaw faces image right, +pitch up
          "lights_follow": "camera",
          "rig_name": "loop",
          "rig": {...},                                # LightRig.to_dict(): the target's lighting
          "identity_distance": 0.31,                   # face-embedding distance reference → target, or null
          "filled_fraction": 0.02,                     # share of the view synthesised (never seen)
          "size": [512, 512],                          # (w, h) of reference, target, flow and mask
          "source": "/photos/astronaut.png"
        }, ...
      ]
    }

A target pixel at ``p + flow[p]`` shows the reference point ``p`` (sample the target there to
align it to the reference; splat the reference along it to align it to the target). The flow is
computed at the warp's working size, which equals ``size`` for photos up to 512 px (``--size``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from icportrait_studio.core.lights import LightRig
from icportrait_studio.core.view import ViewPose
from icportrait_studio.errors import InputError

FORMAT = "icportrait-view-pairs"
VERSION = 1
FLOW_DOC = ("float16 HxWx2 .npy: per reference pixel (x, y), the offset (dx, dy) in pixels to where that point "
            "appears in the target; NaN where it is not visible in the target")
DEFAULT_YAWS = (-30.0, -15.0, 0.0, 15.0, 30.0)
DEFAULT_PITCHES = (-15.0, 0.0, 15.0)
DEFAULT_RIGS = ("original", "loop", "split", "rim")


@dataclass
class SynthConfig:
    """What to render per photo."""

    yaws: tuple[float, ...] = DEFAULT_YAWS
    pitches: tuple[float, ...] = DEFAULT_PITCHES
    rigs: tuple[tuple[str, LightRig], ...] = field(default_factory=tuple)  # (name, rig); empty: DEFAULT_RIGS
    size: int = 512  # long side of every image in the dataset
    lights_follow: str = "camera"
    identity: bool = True

    def resolved_rigs(self) -> tuple[tuple[str, LightRig], ...]:
        return self.rigs or tuple((n, rig_by_name(n)) for n in DEFAULT_RIGS)


def rig_by_name(name: str) -> LightRig:
    """A preset's rig, or ``original`` for the photo's own light (no relight)."""
    if name == "original":
        return LightRig(keep_original=1.0, name="original")
    from icportrait_studio.core.presets import load_preset

    return load_preset(name).rig


def _tag(yaw: float, pitch: float) -> str:
    return f"view_y{yaw:+03.0f}_p{pitch:+03.0f}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "rig"


def _save_png(path: Path, rgb_linear: np.ndarray) -> None:
    from icportrait_studio.imaging.io import save_image

    save_image(path, np.clip(rgb_linear, 0.0, 1.0), bit_depth=8)


def _save_mask(path: Path, alpha: np.ndarray) -> None:
    from icportrait_studio.imaging.atomic import atomic_write

    a8 = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)

    def write(tmp: str) -> None:
        if not cv2.imwrite(tmp, a8):  # OpenCV reports a failed write by its return value only
            raise OSError(f"could not encode {path.name}")

    atomic_write(path, write, suffix=".png")


def _save_flow(path: Path, flow: np.ndarray) -> None:
    from icportrait_studio.imaging.atomic import atomic_write

    atomic_write(path, lambda tmp: np.save(tmp, flow.astype(np.float16), allow_pickle=False), suffix=".npy")


def _at_size(arr: np.ndarray, size: tuple[int, int], *, is_flow: bool = False) -> np.ndarray:
    """Resample a working-size field to the dataset's size (flows: nearest, with values rescaled)."""
    w, h = size
    if arr.shape[1] == w and arr.shape[0] == h:
        return arr
    if is_flow:
        s = w / arr.shape[1]
        return cv2.resize(arr, (w, h), interpolation=cv2.INTER_NEAREST) * np.float32(s)
    return cv2.resize(arr, (w, h), interpolation=cv2.INTER_LINEAR)


def synthesize(photos: list[str | Path], out_dir: str | Path, config: SynthConfig | None = None, *,
               log: Callable[[str], None] = lambda _m: None) -> dict:
    """Render the dataset into ``out_dir`` and write its manifest; returns the manifest."""
    from icportrait_studio.core.request import EditRequest
    from icportrait_studio.geometry.view_warp import backward_warp, forward_flow
    from icportrait_studio.imaging.io import load_image
    from icportrait_studio.pipeline.base import SourceImage
    from icportrait_studio.pipeline.physical import PhysicalBackend, why_not_turnable

    config = config or SynthConfig()
    rigs = config.resolved_rigs()
    views = [ViewPose(y, p, config.lights_follow) for p in config.pitches for y in config.yaws]  # validates angles
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backend = PhysicalBackend(identity_check=config.identity)
    samples: list[dict] = []
    stems: set[str] = set()
    for photo in photos:
        loaded = load_image(photo)
        rgb = loaded.rgb
        s = min(1.0, config.size / max(rgb.shape[:2]))
        if s < 1.0:
            rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))),
                             interpolation=cv2.INTER_AREA)
        stem = _safe(Path(photo).stem)
        while stem in stems:
            stem += "_"
        stems.add(stem)
        source = SourceImage(f"synth:{photo}", np.ascontiguousarray(rgb, np.float32))
        analysis = backend.analysis(source)
        refusal = why_not_turnable(analysis)
        if refusal is not None:
            log(f"{photo}: {refusal}, skipped")
            continue
        size = (rgb.shape[1], rgb.shape[0])
        ref_rel = f"{stem}/reference.png"
        _save_png(out / ref_rel, rgb)
        vctx = backend.view_context(source, analysis, "full", rgb)
        for view in views:
            tag = _tag(view.yaw, view.pitch)
            warp = backward_warp(vctx.geometry, view.yaw, view.pitch)
            flow = _at_size(forward_flow(vctx.geometry, warp), size, is_flow=True)
            alpha = warp.person_alpha(vctx.geometry.matte)
            flow_rel, mask_rel = f"{stem}/{tag}.flow.npy", f"{stem}/{tag}.mask.png"
            _save_flow(out / flow_rel, flow)
            _save_mask(out / mask_rel, _at_size(alpha, size))
            filled = float(warp.filled.sum()) / float(np.prod(warp.shape)) if not warp.identity else 0.0
            for rig_name, rig in rigs:
                res = backend.run(EditRequest(source.image_id, rig, view=view, quality="full"), source)
                tgt_rel = f"{stem}/{tag}_{_safe(rig_name)}.png"
                _save_png(out / tgt_rel, res.image)
                samples.append({
                    "reference": ref_rel, "target": tgt_rel, "flow": flow_rel, "mask": mask_rel,
                    "yaw": view.yaw, "pitch": view.pitch, "lights_follow": view.lights_follow,
                    "rig_name": rig_name, "rig": rig.to_dict(),
                    "identity_distance": res.info.get("identity_distance"),
                    "filled_fraction": round(filled, 4), "size": list(size), "source": str(photo),
                })
                log(f"{tgt_rel} (identity distance {res.info.get('identity_distance')})")
        backend.forget(source.image_id)
    if not samples:
        raise InputError("no samples: none of the photos had a face")
    manifest = {"format": FORMAT, "version": VERSION, "flow_convention": "forward", "flow": FLOW_DOC,
                "samples": samples}
    text = json.dumps(manifest, indent=2)
    from icportrait_studio.imaging.atomic import atomic_write_text

    atomic_write_text(out / "manifest.json", text)
    return manifest

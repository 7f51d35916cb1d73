"""What limits relighting accuracy on the Yale dev set: encoding and geometry (figures in RESULTS.md).

    .venv/bin/python bench/yale_diagnostics.py [--subjects 4] [--source A-025E+00]

For each subject the frontal photo (or ``--source``'s) is relit toward the 15 benchmark lights and scored like
``../shared/bench/relight_eval.py`` (gain-fitted si-MSE and SSIM), three ways:

  mesh, linear   the engine as it is, the photo decoded as linear light (``--input-encoding linear``)
  PS, linear     the same engine with per-pixel normals from photometric stereo, fitted on the subject's
                 49 other photos (neither the input nor any target is used): a ceiling for geometry
  PS, sRGB       photometric stereo and the engine both reading the photos as sRGB (what the exact
                 benchmark command does); with the linear-fitted normals instead, see the last row

This is a diagnostic, not a method: photometric stereo needs dozens of photos under known lights.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from icportrait_studio.core.lights import Light, LightRig  # noqa: E402
from icportrait_studio.geometry.analysis import analyze  # noqa: E402
from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear  # noqa: E402
from icportrait_studio.lighting.relight import prepare, relight_image  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "yaleB-dev"
SOURCE = "A+000E+00"
TARGETS = ["A+050E+00", "A-050E+00", "A+025E+00", "A-025E+00", "A+000E+45", "A+000E-35", "A+035E+15", "A-035E+15",
           "A+060E-20", "A-060E-20", "A+070E+45", "A-070E+45", "A+035E+40", "A+085E+20", "A-085E+20"]


def angles(tag: str) -> tuple[int, int]:
    """Yale tag -> (azimuth, elevation), +azimuth = light from the image right (Yale's is the subject's)."""
    m = re.match(r"A([+-]\d+)E([+-]\d+)", tag)
    assert m is not None
    return -int(m.group(1)), int(m.group(2))


def direction(tag: str) -> np.ndarray:
    az, el = np.radians(angles(tag))
    return np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])


def load(subject: str, tag: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / subject / f"{subject}_P00{tag}.pgm").convert("L"))


def score(out8: np.ndarray, gt8: np.ndarray) -> tuple[float, float]:
    out, gt = out8.astype(np.float64) / 255, gt8.astype(np.float64) / 255
    o = np.clip(out * (out * gt).sum() / max((out * out).sum(), 1e-12), 0, 1)
    return float(((o - gt) ** 2).mean()), float(structural_similarity(o, gt, data_range=1.0))


def photometric_normals(subject: str, encoding: str = "linear") -> np.ndarray:
    """Per-pixel unit normals (HxWx3, camera space) by least squares on the unshadowed, unclipped photos."""
    skip = set(TARGETS) | {SOURCE}
    tags = [re.search(r"P00(A.*)\.pgm", p.name).group(1) for p in sorted((DATA / subject).glob("*.pgm"))  # type: ignore[union-attr]
            if "Ambient" not in p.name]
    tags = [t for t in tags if t not in skip]
    stack = np.stack([load(subject, t).astype(np.float64) / 255 for t in tags])
    if encoding == "srgb":
        stack = decode_to_linear(stack.astype(np.float32)).astype(np.float64)
    lights = np.stack([direction(t) for t in tags])
    k, h, w = stack.shape
    obs = stack.reshape(k, -1)
    use = (obs > 0.03) & (obs < 0.95)
    b = np.zeros((3, h * w))
    for p in range(h * w):
        wgt = use[:, p].astype(np.float64)
        if wgt.sum() >= 4:
            b[:, p] = np.linalg.lstsq(lights * wgt[:, None], obs[:, p] * wgt, rcond=None)[0]
    n = b.T.reshape(h, w, 3)
    return n / (np.linalg.norm(n, axis=2, keepdims=True) + 1e-9)


def run(subject: str, encoding: str, normals: np.ndarray | None) -> list[tuple[float, float]]:
    gray = load(subject, SOURCE)
    rgb8 = np.repeat(gray[..., None], 3, axis=2)
    lin = (rgb8.astype(np.float32) / 255) if encoding == "linear" else decode_to_linear(rgb8)
    analysis = analyze(decode_to_linear(rgb8))  # the face mesh sees the photo as a viewer shows it
    if normals is not None:
        good = np.isfinite(normals).all(axis=2) & (np.abs(normals).sum(axis=2) > 0)
        # the relight shades with ``shading_normals`` when the analysis has them: replace both
        analysis = dataclasses.replace(analysis, normals=np.where(good[..., None], normals, analysis.normals)
                                       .astype(np.float32), shading_normals=None)
    return relight_scores(subject, lin, analysis, [t for t in TARGETS if t != SOURCE], encoding)


def relight_scores(subject: str, lin: np.ndarray, analysis, targets: list[str], encoding: str
                   ) -> list[tuple[float, float]]:
    """``lin`` (a photo of ``subject`` read with ``encoding``) relit toward each of ``targets`` as the CLI
    does, written back as the CLI writes it, and scored against the real photo under that light."""
    ctx = prepare(lin, analysis)
    out = []
    for t in targets:
        az, el = angles(t)
        img, _ = relight_image(lin, ctx, LightRig(lights=(Light(azimuth=az, elevation=el),)), analysis)
        enc = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8) if encoding == "linear" else encode_from_linear(img, 8)
        out.append(score(np.asarray(Image.fromarray(enc).convert("L")), load(subject, t)))
    return out


def main() -> None:
    global SOURCE
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--source", default=SOURCE, help="Yale tag of the input photo's light")
    args = ap.parse_args()
    SOURCE = args.source
    subjects = sorted(p.name for p in DATA.glob("yaleB*"))[: args.subjects]
    rows: dict[str, list[tuple[float, float]]] = {"mesh, linear": [], "mesh, sRGB": [], "PS, linear": [],
                                                  "PS, sRGB": [], "PS (linear fit), sRGB": []}
    for s in subjects:
        ps = photometric_normals(s)
        rows["mesh, linear"] += run(s, "linear", None)
        rows["mesh, sRGB"] += run(s, "srgb", None)
        rows["PS, linear"] += run(s, "linear", ps)
        rows["PS, sRGB"] += run(s, "srgb", photometric_normals(s, "srgb"))
        rows["PS (linear fit), sRGB"] += run(s, "srgb", ps)
    print(f"subjects: {', '.join(subjects)}; input {SOURCE}; {len(TARGETS) - (SOURCE in TARGETS)} target lights")
    for name, vals in rows.items():
        print(f"  {name:22s} si-MSE {np.mean([v[0] for v in vals]):.4f}   SSIM {np.mean([v[1] for v in vals]):.3f}")


if __name__ == "__main__":
    main()

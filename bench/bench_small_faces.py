"""Faces small in their frame: found or not, working size, analysis / relight / turn times (figures only).

    .venv/bin/python bench/bench_small_faces.py [--json out.json]

The bundled sample is pasted into plain grey canvases: a 3000×512 banner (face ~92 px), a 2000×3000
full-length frame (face ~108 px), a 4000×2600 frame (face ~54 px); and, for the cost of the search when
there is a person but no face, the sample with its face covered at 512², 1024² and 3000². Each row is
one process-warm run (models loaded first): analysis, the first full relight (it prepares the shading
context) and a later one with a new rig, the first full turn (it builds the view geometry) and a later
one. No targets: the issue asks for none; RESULTS.md records the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from icportrait_studio.core.lights import Light, LightRig  # noqa: E402
from icportrait_studio.core.request import EditRequest  # noqa: E402
from icportrait_studio.core.view import ViewPose  # noqa: E402
from icportrait_studio.geometry.analysis import analyze  # noqa: E402
from icportrait_studio.imaging.io import load_image  # noqa: E402
from icportrait_studio.pipeline.base import SourceImage  # noqa: E402
from icportrait_studio.pipeline.physical import PhysicalBackend  # noqa: E402

SAMPLE = ROOT / "resources" / "samples" / "astronaut.png"


def pasted(sample: np.ndarray, canvas: tuple[int, int], side: int, at: tuple[int, int]) -> np.ndarray:
    w, h = canvas
    out = np.full((h, w, 3), 0.25, np.float32)
    x, y = at
    out[y:y + side, x:x + side] = cv2.resize(sample, (side, side), interpolation=cv2.INTER_AREA)
    return out


def rig(i: int) -> LightRig:
    return LightRig(lights=(Light(azimuth=-50 + 0.01 * i, elevation=20),))


def row(name: str, rgb: np.ndarray) -> dict:
    be = PhysicalBackend(identity_check=False)
    src = SourceImage(name, rgb)
    t = time.perf_counter()
    a = be.analysis(src)
    out: dict = {"size": f"{rgb.shape[1]}x{rgb.shape[0]}", "face_found": a.has_face,
                 "working_size": f"{a.geo_size[0]}x{a.geo_size[1]}",
                 "analysis_s": round(time.perf_counter() - t, 3)}
    if not a.has_face:
        return out
    out["face_px_working"] = round(a.face_width, 1)
    times = []
    for i in range(2):
        t = time.perf_counter()
        be.run(EditRequest(name, rig(i)), src)
        times.append(round(time.perf_counter() - t, 3))
    out["relight_first_s"], out["relight_later_s"] = times
    times, warned = [], False
    for i, yaw in enumerate((20.0, 25.0)):
        t = time.perf_counter()
        res = be.run(EditRequest(name, rig(10 + i), view=ViewPose(yaw)), src)
        times.append(round(time.perf_counter() - t, 3))
        warned = warned or any("too small to turn" in w for w in res.info["warnings"])
    out["turn_first_s"], out["turn_later_s"] = times
    out["turn_refused"] = warned
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    sample = load_image(SAMPLE).rgb
    analyze(sample)  # load the face and segmentation models
    res = {
        "banner_3000x512": row("banner", pasted(sample, (3000, 512), 512, (1200, 0))),
        "full_length_2000x3000": row("tall", pasted(sample, (2000, 3000), 600, (700, 400))),
        "small_4000x2600": row("small", pasted(sample, (4000, 2600), 300, (2600, 900))),
    }
    covered = sample.copy()
    covered[60:260, 170:350] = 0.3  # a person, no face
    for size in (512, 1024, 3000):
        img = cv2.resize(covered, (size, size), interpolation=cv2.INTER_CUBIC)
        res[f"no_face_person_{size}"] = row(f"covered{size}", img)
    for k, v in res.items():
        print(f"{k:24s} {json.dumps(v)}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

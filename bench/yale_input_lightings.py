"""Relighting accuracy with each Yale lighting as the input photo (figures in RESULTS.md, sessions 11-12).

    .venv/bin/python bench/yale_input_lightings.py [--encoding srgb|linear] [--sources A+000E+00,A-025E+00]

The benchmark (``../shared/bench/relight_eval.py``) scores the frontal photo and, with ``--source``, one
other; the issue says other input lightings are scored the same way elsewhere. This runs the engine as
the CLI runs it (the photo decoded as sRGB, as the benchmark's exact command does, or as linear light),
in process, for every one of the 64 lightings as the input, relit toward the benchmark's 15 target lights
and scored like the benchmark (gain-fitted si-MSE and SSIM). It prints one row per input lighting (with
the photos analysed without a face) and the means: over all 64, and over the 37 within ±60° azimuth and
±45° elevation. About 8 minutes on the 2-core development VM.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yale_diagnostics as yd  # (puts the project on the path)

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.geometry.analysis import analyze
from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear
from icportrait_studio.lighting.relight import prepare, relight_image


def input_lightings() -> list[str]:
    """The Yale tags of the first subject's photos (the ambient-only frame left out)."""
    first = sorted(p for p in yd.DATA.glob("yaleB*") if p.is_dir())[0]
    tag = re.compile(r"_P00(A[+-]\d+E[+-]\d+)\.pgm$")
    return sorted({m.group(1) for p in first.glob("*.pgm") if (m := tag.search(p.name))})


def score_source(subjects: list[str], source: str, encoding: str) -> tuple[float, float, int]:
    """(mean si-MSE, mean SSIM, photos without a face) over ``subjects`` × the targets other than ``source``."""
    targets = [t for t in yd.TARGETS if t != source]
    scores, faceless = [], 0
    for subject in subjects:
        rgb8 = np.repeat(yd.load(subject, source)[..., None], 3, axis=2)
        linear = decode_to_linear(rgb8) if encoding == "srgb" else rgb8.astype(np.float32) / 255.0
        analysis = analyze(linear)  # as the CLI does: on the photo as it was decoded
        faceless += analysis.landmarks is None
        ctx = prepare(linear, analysis)
        for tag in targets:
            az, el = yd.angles(tag)
            img, _ = relight_image(linear, ctx, LightRig(lights=(Light(azimuth=az, elevation=el),)), analysis)
            if encoding == "srgb":
                out8 = encode_from_linear(img, 8)
            else:  # written as the CLI writes a linear-read photo's result: the values it read
                out8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
            scores.append(yd.score(np.asarray(Image.fromarray(out8).convert("L")), yd.load(subject, tag)))
    a = np.array(scores)
    return float(a[:, 0].mean()), float(a[:, 1].mean()), faceless


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoding", choices=("srgb", "linear"), default="srgb")
    ap.add_argument("--sources", help="comma-separated Yale tags (default: all 64 lightings)")
    ap.add_argument("--subjects", type=int, default=99)
    args = ap.parse_args()
    subjects = sorted(p.name for p in yd.DATA.glob("yaleB*") if p.is_dir())[: args.subjects]
    sources = args.sources.split(",") if args.sources else input_lightings()
    t0 = time.perf_counter()
    rows = {}
    for source in sources:
        rows[source] = score_source(subjects, source, args.encoding)
        mse, ssim, faceless = rows[source]
        print(f"{source}  {mse:.4f} {ssim:.3f}  no face {faceless}", flush=True)

    def near(tag: str) -> bool:
        az, el = yd.angles(tag)
        return abs(az) <= 60 and abs(el) <= 45

    for name, keys in (("all", list(rows)), ("within ±60° / ±45°", [k for k in rows if near(k)])):
        if keys:
            print(f"mean over {name} ({len(keys)}): {statistics.mean(rows[k][0] for k in keys):.4f} / "
                  f"{statistics.mean(rows[k][1] for k in keys):.3f}")
    print(f"photos without a face: {sum(r[2] for r in rows.values())} of {len(rows) * len(subjects)}; "
          f"{time.perf_counter() - t0:.0f} s ({args.encoding})")


if __name__ == "__main__":
    main()

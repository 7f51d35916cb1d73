"""Relighting accuracy with each Yale lighting as the input photo (figures in RESULTS.md, sessions 11-12).

    .venv/bin/python bench/yale_input_lightings.py [--encoding srgb|linear] [--sources A+000E+00,A-025E+00]

The benchmark (``../shared/bench/relight_eval.py``) scores the frontal photo and, with ``--source``, one
other; the issue says other input lightings are scored the same way elsewhere. This runs the engine as
the CLI runs it (the photo decoded as sRGB, as the benchmark's exact command does, or as linear light),
in process, for every one of the 64 lightings as the input, relit toward the benchmark's 15 target lights
and scored like the benchmark (gain-fitted si-MSE and SSIM). It prints one row per input lighting (with
the photos analysed without a face) and the means: over all 64, and over the 37 within ±60° azimuth and
±45° elevation. About 8 minutes on the 2-core development VM.

``--spread`` instead checks the landmarks alone (no relighting, ~1 minute): a subject does not move
between the lightings of a sitting, so each photo's landmarks should lie where the sitting's well-lit
photos (|azimuth|, |elevation| ≤ 20°) put them; it prints the mean distance from their median, in face
widths, per subject and over all photos, and the worst photos.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yale_diagnostics as yd  # (puts the project on the path)

from icportrait_studio.geometry.analysis import analyze
from icportrait_studio.imaging.color import decode_to_linear


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
        scores += yd.relight_scores(subject, linear, analysis, targets, encoding)
    a = np.array(scores)
    return float(a[:, 0].mean()), float(a[:, 1].mean()), faceless


def landmark_spread(subjects: list[str], sources: list[str]) -> None:
    """Print how far each photo's landmarks lie from its sitting's well-lit median (see the docstring)."""
    spread: dict[tuple[str, str], float] = {}
    for subject in subjects:
        found = {t: analyze(decode_to_linear(np.repeat(yd.load(subject, t)[..., None], 3, axis=2))).landmarks
                 for t in sources}
        well = [t for t in sources if found[t] is not None and max(map(abs, yd.angles(t))) <= 20]
        if not well:
            continue
        ref = np.median(np.stack([found[t] for t in well]), axis=0)[:, :2]
        width = float(np.ptp(ref[:, 0]))
        for t in sources:
            lm = found[t]
            off = np.nan if lm is None else np.linalg.norm(lm[:, :2] - ref, axis=1).mean() / width
            spread[(subject, t)] = float(off)
        print(f"{subject}  {np.nanmean([spread[(subject, t)] for t in sources]):.4f}", flush=True)
    values = np.array(list(spread.values()))
    print(f"mean {np.nanmean(values):.4f} face widths over {np.isfinite(values).sum()} photos "
          f"({np.isnan(values).sum()} without a face)")
    for key in sorted(spread, key=lambda k: -np.nan_to_num(spread[k], nan=9.0))[:5]:
        print(f"  {key[0]} {key[1]}  {spread[key]:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoding", choices=("srgb", "linear"), default="srgb")
    ap.add_argument("--sources", help="comma-separated Yale tags (default: all 64 lightings)")
    ap.add_argument("--subjects", type=int, default=99)
    ap.add_argument("--spread", action="store_true", help="check the landmarks' spread instead (no relighting)")
    args = ap.parse_args()
    subjects = sorted(p.name for p in yd.DATA.glob("yaleB*") if p.is_dir())[: args.subjects]
    sources = args.sources.split(",") if args.sources else input_lightings()
    if args.spread:
        landmark_spread(subjects, sources)
        return
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

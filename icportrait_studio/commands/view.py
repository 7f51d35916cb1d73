"""``icportrait view``: turn the head in one photo (and relight it in the same pass).

    icportrait view INPUT -o OUT --yaw DEG --pitch DEG [--light SPEC]... [--preset NAME] [--rig FILE]
                    [--lights-follow camera|head] [--report r.json]

+yaw turns the face toward the image's right, +pitch tilts it up. Without a light the photo keeps its
own lighting. Every run prints the identity distance between the input and the result (the face
embedding distance; above 0.5 the result may no longer look like the person).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

from icportrait_studio.cli import add_encoding_argument, add_rig_arguments


def register(subparsers) -> None:
    from icportrait_studio.core.view import MAX_PITCH, MAX_YAW

    v = subparsers.add_parser("view", help="turn the head (yaw/pitch) in a photo, optionally relighting it")
    v.add_argument("input", metavar="INPUT")
    v.add_argument("-o", "--output", required=True, help="output file (.png, .jpg, .tif, .webp)")
    v.add_argument("--yaw", type=float, default=0.0,
                   help=f"degrees, -{MAX_YAW:g}..{MAX_YAW:g}; + turns the face toward the image's right")
    v.add_argument("--pitch", type=float, default=0.0,
                   help=f"degrees, -{MAX_PITCH:g}..{MAX_PITCH:g}; + tilts the face up")
    v.add_argument("--lights-follow", choices=("camera", "head"), default="camera",
                   help="the rig's lights fixed to the camera (default) or turning with the head; without "
                        "--light/--preset/--rig the photo keeps its own lighting, which turns with the head")
    add_rig_arguments(v)  # relight too, in the same job
    add_encoding_argument(v, "the result is written in the same encoding")
    v.add_argument("--to-srgb", action="store_true",
                   help="write the result converted to sRGB, with sRGB's profile (for the web)")
    v.add_argument("--report", help="write the view, rig, identity distance, timings and warnings to this JSON file")
    v.add_argument("-q", "--quiet", action="store_true")
    v.set_defaults(func=cmd_view)


def _rig(args: argparse.Namespace):
    from icportrait_studio.core.lights import LightRig

    if args.light or args.preset or args.rig:
        from icportrait_studio.cli import rig_from_args

        return rig_from_args(args)
    return LightRig(keep_original=1.0, name="original light")  # a pure view change


def cmd_view(args: argparse.Namespace) -> int:
    from icportrait_studio import __version__
    from icportrait_studio.cli import output_paths
    from icportrait_studio.core.view import ViewPose
    from icportrait_studio.errors import ICPortraitError

    try:
        view = ViewPose(args.yaw, args.pitch, args.lights_follow)
        rig = _rig(args)
        (output,) = output_paths([args.input], args.output)
    except ICPortraitError as exc:
        print(f"icportrait: error: {exc}", file=sys.stderr)
        return 2

    from icportrait_studio.api import relight_file
    from icportrait_studio.identity import IDENTITY_WARN, identity_available

    report: dict = {"version": __version__, "input": args.input, "output": str(output), "view": view.to_dict(),
                    "rig": rig.to_dict()}
    t0 = time.perf_counter()
    code = 0
    try:
        res = relight_file(args.input, output, rig, view=view, encoding=args.input_encoding, to_srgb=args.to_srgb)
        dist = res.info.get("identity_distance")
        report.update(status="ok", identity_distance=dist, identity_warn=IDENTITY_WARN,
                      timings_ms=res.info.get("timings_ms", {}), warnings=res.info.get("warnings", []),
                      view_info=res.info.get("view"), faces_found=res.info["analysis"]["faces_found"],
                      landmarks_carried=res.info.get("landmarks_carried", False), encoding=res.info.get("encoding"))
        for w in report["warnings"]:
            print(f"icportrait: {args.input}: warning: {w}", file=sys.stderr)
        if dist is None:
            ok, why = identity_available()
            ident = "identity distance n/a" + ("" if ok else f" ({why})")
        else:
            ident = f"identity distance {dist:.3f}"
            if dist > IDENTITY_WARN:
                print(f"icportrait: {args.input}: warning: identity distance {dist:.2f} is above {IDENTITY_WARN}: "
                      "the result may not look like the same person", file=sys.stderr)
        report["view_applied"] = res.info.get("view") is not None
        if not args.quiet:
            # a refused turn (no face, a face too small) is said on the result's own line too, not only in
            # the warning above it: the file was written relit but not turned
            turned = f"yaw {view.yaw:+g}°, pitch {view.pitch:+g}°" if report["view_applied"] else "view unchanged"
            print(f"{args.input} -> {output} ({turned}, {ident}, {(time.perf_counter() - t0) * 1000:.0f} ms)")
    except ICPortraitError as exc:
        code = 1
        report.update(status="failed", error=str(exc))
        print(f"icportrait: {args.input}: error: {exc}", file=sys.stderr)
    except Exception as exc:  # an engine bug: report it, never a bare traceback
        code = 1
        report.update(status="failed", error=f"internal error: {type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
        print(f"icportrait: {args.input}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
    if args.report:
        from icportrait_studio.imaging.atomic import atomic_write_text

        atomic_write_text(args.report, json.dumps(report, indent=2))
    return code

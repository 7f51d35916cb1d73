"""``icportrait synth``: render view-consistent training pairs (views × light rigs, with flows).

    icportrait synth PHOTOS... -o DATASET [--yaw LIST] [--pitch LIST] [--rigs LIST] [--size PX]
                     [--lights-follow camera|head] [--no-identity]

The dataset layout and the manifest format are documented in ``icportrait_studio.synth.dataset``.
"""

from __future__ import annotations

import argparse
import sys


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def register(subparsers) -> None:
    s = subparsers.add_parser("synth", help="render view-consistent training pairs (views × rigs, flows, manifest)")
    s.add_argument("photos", nargs="+", metavar="PHOTO")
    s.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder (created)")
    s.add_argument("--yaw", type=_floats, default=None, metavar="LIST",
                   help="yaw angles in degrees, comma-separated (default -30,-15,0,15,30); write --yaw=-30,30 "
                        "when the list starts with a minus")
    s.add_argument("--pitch", type=_floats, default=None, metavar="LIST",
                   help="pitch angles in degrees, comma-separated (default -15,0,15)")
    s.add_argument("--rigs", default=None, metavar="LIST",
                   help="preset names, comma-separated; 'original' keeps the photo's light "
                        "(default original,loop,split,rim)")
    s.add_argument("--size", type=int, default=512, help="long side of the dataset's images (default 512)")
    s.add_argument("--lights-follow", choices=("camera", "head"), default="camera")
    s.add_argument("--no-identity", action="store_true", help="skip the identity distance (faster)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
    from icportrait_studio.errors import ICPortraitError
    from icportrait_studio.synth.dataset import DEFAULT_PITCHES, DEFAULT_YAWS, SynthConfig, rig_by_name, synthesize

    try:
        if not 32 <= args.size <= 4096:
            raise ICPortraitError("--size must be within 32..4096")
        names = [n.strip() for n in (args.rigs or "").split(",") if n.strip()]
        config = SynthConfig(yaws=args.yaw or DEFAULT_YAWS, pitches=args.pitch or DEFAULT_PITCHES,
                             rigs=tuple((n, rig_by_name(n)) for n in names), size=args.size,
                             lights_follow=args.lights_follow, identity=not args.no_identity)
        manifest = synthesize(args.photos, args.output, config,
                              log=(lambda m: None) if args.quiet else (lambda m: print(m, flush=True)))
    except ICPortraitError as exc:
        print(f"icportrait: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"{len(manifest['samples'])} samples -> {args.output}/manifest.json")
    return 0

"""``icportrait model check DIR`` (no torch) and ``icportrait model tiny DIR`` (a tiny random model for smoke runs)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("model", help="check a local diffusion model folder, or write a tiny test model")
    sub = p.add_subparsers(dest="model_command", required=True)
    c = sub.add_parser("check", help="is this folder a usable model? (what is there, what is missing, VRAM)")
    c.add_argument("folder")
    c.add_argument("--json", action="store_true", help="print the check as JSON")
    c.set_defaults(func=cmd_check)
    t = sub.add_parser("tiny", help="write a tiny randomly initialised model folder (tests, CI smoke runs)")
    t.add_argument("folder")
    t.add_argument("--layout", choices=["base", "icportrait"], default="base",
                   help="base: a 4-channel UNet like an SD1.5 snapshot; icportrait: already widened")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_tiny)


def cmd_check(args: argparse.Namespace) -> int:
    from icportrait_studio.model.check import validate_model_folder

    check = validate_model_folder(args.folder)
    if args.json:
        print(json.dumps(check.to_dict(), indent=2))
    else:
        print(check.message)
        if check.present:
            print("present: " + ", ".join(check.present))
        if check.missing:
            print("missing: " + ", ".join(check.missing))
    return 0 if check.ok else 1


def cmd_tiny(args: argparse.Namespace) -> int:
    try:
        from icportrait_studio.model.tiny import save_tiny_model
    except ImportError as exc:
        print(f"icportrait: error: needs torch, diffusers and transformers: {exc}", file=sys.stderr)
        return 2
    folder = save_tiny_model(args.folder, seed=args.seed, layout=args.layout)
    print(f"wrote a tiny {args.layout} model to {folder}")
    return 0

"""``icportrait train stage1|stage2``: train the IC-Portrait model (torch loads inside the handler only).

One GPU: ``icportrait train stage1 --data photos/ --base sd15/ --out runs/s1``.
Several GPUs: ``accelerate launch -m icportrait_studio.cli train stage1 ...`` (same arguments).
Options not on the command line go in ``--config`` (JSON or YAML; see ``configs/``); the command
line wins over the file.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the IC-Portrait diffusion model (stage1: lighting-aware stitching; "
                      "stage2: view-consistent adaptation on `icportrait synth` pairs)")
    p.add_argument("stage", choices=["stage1", "stage2"])
    p.add_argument("--data", help="stage1: a folder of portraits (sub-folders = one person each); "
                                  "stage2: a folder with manifest.json from `icportrait synth`")
    p.add_argument("--base", help="a local model folder to start from (SD1.5, IC-Light or IC-Portrait)")
    p.add_argument("--out", help="output folder: checkpoints/, logs/losses.jsonl, model/")
    p.add_argument("--config", help="a JSON or YAML file of training options (see configs/)")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--resolution", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, dest="learning_rate")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"])
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=None, help="keep an EMA of the weights")
    p.add_argument("--cpu", action="store_true", default=None, help="train on the CPU even when a GPU is present")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from icportrait_studio.errors import ICPortraitError

    try:
        from icportrait_studio.model.train import load_config, train
    except ImportError as exc:  # torch/diffusers/accelerate missing
        print(f"icportrait: error: training needs torch, diffusers and accelerate: {exc}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config, stage=args.stage, data=args.data, base=args.base, out=args.out,
                             max_steps=args.max_steps, resolution=args.resolution, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, mixed_precision=args.mixed_precision, ema=args.ema,
                             cpu=args.cpu, seed=args.seed)
        result = train(config, resume=args.resume)
    except ICPortraitError as exc:
        print(f"icportrait: error: {exc}", file=sys.stderr)
        return 2
    if result.losses:
        print(f"final loss {result.losses[-1]:.4f} after {result.steps} steps")
    return 0

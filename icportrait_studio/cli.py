"""The ``icportrait`` command. Messages for people on stderr, never a traceback for bad input.

    icportrait relight INPUT... -o OUT [--light SPEC]... [--preset NAME] [--rig rig.json]
                      [--ambient F] [--keep-original F] [--input-encoding auto|srgb|linear]
                      [--report report.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from icportrait_studio import __version__
from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.errors import ICPortraitError, InputError

log = logging.getLogger("icportrait")

OUTPUT_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
# = icportrait_studio.imaging.encoding.ENCODINGS, spelled out so building the parser imports no numpy/cv2
INPUT_ENCODINGS = ("auto", "srgb", "linear")


def rig_from_args(args: argparse.Namespace) -> LightRig:
    """The rig the options of :func:`add_rig_arguments` describe (preset or rig file, plus --light flags)."""
    from icportrait_studio.core.presets import load_preset

    if args.preset and args.rig:
        raise InputError("use either --preset or --rig, not both")
    base = load_preset(args.preset).rig if args.preset else LightRig.load(args.rig) if args.rig else LightRig()
    lights = list(base.lights) + [Light.parse(s) for s in args.light or []]
    if not lights:
        raise InputError("no light given: add --light \"azimuth=40,elevation=20\", --preset NAME or --rig FILE")
    changes = {"lights": tuple(lights)}
    if args.ambient is not None:
        changes["ambient"] = args.ambient
    if args.keep_original is not None:
        changes["keep_original"] = args.keep_original
    if args.relight_background:
        changes["relight_background"] = True
    if args.specular is not None:
        changes["specular"] = args.specular
    if args.keep_catchlights:
        changes["catchlights"] = False
    if args.keep_texture:
        changes["keep_texture"] = True
    data = base.to_dict()
    data.update({k: v for k, v in changes.items() if k != "lights"})
    data["lights"] = [lt.to_dict() for lt in lights]
    return LightRig.from_dict(data)


def output_paths(inputs: list[str], out: str) -> list[Path]:
    """One input: ``out`` is the file. Several: ``out`` is a folder and each result is ``<stem>.png``."""
    out_path = Path(out)
    if len(inputs) == 1 and not out_path.is_dir() and not out.endswith(os.sep):
        if out_path.suffix.lower() not in OUTPUT_EXTS:
            raise InputError(f"-o {out}: unknown output format; use one of {', '.join(OUTPUT_EXTS)}")
        return [out_path]
    stems = [Path(p).stem for p in inputs]
    dupes = {s for s in stems if stems.count(s) > 1}
    if dupes:
        raise InputError(f"several inputs share the name(s) {', '.join(sorted(dupes))}: outputs would overwrite")
    return [out_path / f"{s}.png" for s in stems]


def add_rig_arguments(p: argparse.ArgumentParser) -> None:
    """The rig options every command that lights a photo shares (read back by :func:`rig_from_args`)."""
    p.add_argument("--light", action="append", metavar="SPEC",
                   help='"azimuth=50,elevation=0[,intensity=1][,color=#ffd8b0][,size=0.1][,kind=point,distance=1.5]";'
                        " repeat for more lights (+azimuth = from the image's right, +elevation = from above)")
    p.add_argument("--preset", help="a preset rig by name (see `icportrait presets`)")
    p.add_argument("--rig", help="a rig JSON file")
    p.add_argument("--ambient", type=float, help="uniform fill light (default 0.05)")
    p.add_argument("--keep-original", type=float, help="mix of the photo's own light, 0..1 (default 0)")
    p.add_argument("--specular", type=float, help="skin specular strength (default 0.15)")
    p.add_argument("--relight-background", action="store_true", help="light the background too")
    p.add_argument("--keep-catchlights", action="store_true",
                   help="leave the eyes' catchlights as the photo has them (default: moved to the rig's lights)")
    p.add_argument("--keep-texture", action="store_true",
                   help="where the rig brightens the face far beyond the photo's light, keep the photo's own fine "
                        "skin detail (default: the other side's skin, which leaves no trace of the photo's shadow)")


def add_encoding_argument(p: argparse.ArgumentParser, written: str = "outputs are written in the same encoding"
                          ) -> None:
    """``--input-encoding``, for every command that reads a photo to light it."""
    p.add_argument("--input-encoding", choices=INPUT_ENCODINGS, default="auto",
                   help="how the input's pixel values map to light: auto (default: the file's gAMA chunk or ICC"
                        " profile, else sRGB), srgb, or linear for linear captures such as machine-vision/Yale"
                        f" images; {written}")


def cmd_relight(args: argparse.Namespace) -> int:
    from icportrait_studio.pipeline.batch import BatchItem, relight_item

    try:
        rig = rig_from_args(args)
        outputs = output_paths(args.inputs, args.output)
    except ICPortraitError as exc:
        print(f"icportrait: error: {exc}", file=sys.stderr)
        return 2
    report: dict = {"version": __version__, "rig": rig.to_dict(), "images": []}
    failed = 0
    for inp, outp in zip(args.inputs, outputs, strict=True):
        done = relight_item(BatchItem(Path(inp), outp), rig, encoding=args.input_encoding, to_srgb=args.to_srgb)
        entry: dict = {"input": inp, "output": str(outp)}
        if done.ok:
            res = done.info
            entry.update(status="ok", encoding=res.get("encoding"), timings_ms=res.get("timings_ms", {}),
                         landmarks_carried=res.get("landmarks_carried", False), warnings=done.warnings,
                         source_light=res.get("source_light"), faces_found=res["analysis"]["faces_found"])
            for w in done.warnings:
                print(f"icportrait: {inp}: warning: {w}", file=sys.stderr)
            if not args.quiet:
                print(f"{inp} -> {outp} ({done.seconds * 1000:.0f} ms)")
        else:
            failed += 1
            entry.update(status="failed", error=done.error)
            if done.traceback:
                entry["traceback"] = done.traceback
            print(f"icportrait: {inp}: {'' if done.traceback else 'error: '}{done.error}", file=sys.stderr)
        report["images"].append(entry)
    if args.report:
        from icportrait_studio.imaging.atomic import atomic_write_text

        atomic_write_text(args.report, json.dumps(report, indent=2))
    if failed and len(args.inputs) > 1:
        print(f"icportrait: {failed} of {len(args.inputs)} images failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_presets(args: argparse.Namespace) -> int:
    from icportrait_studio.core.presets import list_presets

    for p in list_presets():
        print(f"{p.name:12} {p.description}")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from icportrait_studio.__main__ import launch

    return launch(args.image)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="icportrait", description="3D-aware portrait relighting (IC-Portrait Studio)")
    ap.add_argument("--version", action="version", version=f"icportrait {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("relight", help="relight one or more photos with a light rig")
    r.add_argument("inputs", nargs="+", metavar="INPUT")
    r.add_argument("-o", "--output", required=True, help="output file (one input) or folder (several)")
    add_rig_arguments(r)
    add_encoding_argument(r)
    r.add_argument("--to-srgb", action="store_true",
                   help="write the results converted to sRGB, with sRGB's profile (for the web), instead of in "
                        "each photo's own profile and encoding")
    r.add_argument("--report", help="write per-image timings, warnings and encodings to this JSON file")
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(func=cmd_relight)

    p = sub.add_parser("presets", help="list the light-rig presets")
    p.set_defaults(func=cmd_presets)

    a = sub.add_parser("app", help="open the desktop app")
    a.add_argument("image", nargs="?")
    a.set_defaults(func=cmd_app)

    from icportrait_studio.commands import register_all

    register_all(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ICPortraitError as exc:
        print(f"icportrait: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("icportrait: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

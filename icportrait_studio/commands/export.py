"""``icportrait export INPUT -o OUT.psd|.ora|.tif``: relight and write a layered file for an editor.

The layers are Original, Relit and Shading (hidden, a retouching aid), written by the exporter plugin
that handles the output's extension. Cheap to import: everything heavy loads inside the handler.
"""

from __future__ import annotations

import argparse
import sys

from icportrait_studio.cli import add_encoding_argument, add_rig_arguments


def has_rig_arguments(args: argparse.Namespace) -> bool:
    return bool(args.light or args.preset or args.rig)


def render(rgb, alpha, rig, image_id: str, tone: float | None = None):  # -> pipeline.base.Result
    """Relight with the physical backend (the one that also returns the shading for the Shading layer);
    ``tone`` as ``SourceImage.tone``."""
    from icportrait_studio.core.request import EditRequest
    from icportrait_studio.pipeline.base import SourceImage
    from icportrait_studio.pipeline.registry import get_backend

    request = EditRequest(image_id=image_id, rig=rig)
    return get_backend("physical").run(request, SourceImage(image_id, rgb, alpha, tone=tone))


def print_plugin_messages(registry) -> None:
    for m in registry.messages:
        if m.level != "info":
            print(f"icportrait: plugin: {m.text}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    from icportrait_studio.plugins.export import build_document, export_document, exporter_for, exporters
    from icportrait_studio.plugins.registry import default_registry

    registry = default_registry()
    if args.list_formats:
        for exp in exporters(registry):
            print(f"{', '.join(exp.extensions):14} {exp.name}  [{exp.contribution.plugin}]")
        print_plugin_messages(registry)
        return 0
    if not args.input or not args.output:
        print("icportrait export: error: INPUT and -o OUT are required", file=sys.stderr)
        return 2
    from icportrait_studio.cli import rig_from_args
    from icportrait_studio.imaging.io import load_image

    exporter_for(args.output, registry)  # fail on an unknown extension before the slow part
    rig = rig_from_args(args)
    loaded = load_image(args.input, encoding=args.input_encoding)
    from icportrait_studio.imaging.scene_tone import scene_gamma

    result = render(loaded.rgb, loaded.alpha, rig, str(args.input), scene_gamma(loaded.icc_profile, loaded.encoding))
    depth = args.bit_depth or loaded.bit_depth
    icc = loaded.icc_profile if loaded.encoding == "srgb" else None  # layers are written sRGB-encoded
    doc = build_document(loaded.rgb, relit=result.image, shading=None if args.no_shading else result.shading,
                         alpha=loaded.alpha, icc_profile=icc, bit_depth=16 if depth >= 16 else 8)
    for w in [*loaded.warnings, *result.info.get("warnings", [])]:
        print(f"icportrait: {args.input}: warning: {w}", file=sys.stderr)
    try:
        export_document(args.output, doc, registry)
    finally:
        print_plugin_messages(registry)
    if not args.quiet:
        print(f"{args.input} -> {args.output} ({', '.join(layer.name for layer in doc.layers)})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="relight and write a layered PSD, OpenRaster or 16-bit TIFF file",
                              description="Write Original, Relit and Shading layers for Photoshop, GIMP, Krita or "
                                          "Affinity. The format follows the extension of -o.")
    p.add_argument("input", nargs="?", metavar="INPUT")
    p.add_argument("-o", "--output", metavar="OUT", help="OUT.psd, OUT.ora or OUT.tif")
    add_rig_arguments(p)
    add_encoding_argument(p, "the layers are written sRGB-encoded either way")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), help="layer bit depth (default: the input's)")
    p.add_argument("--no-shading", action="store_true", help="leave out the Shading layer")
    p.add_argument("--list-formats", action="store_true", help="list the formats the exporter plugins provide")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_export)

"""``icportrait edit FILE``: be another application's external editor (Lightroom "Edit In", darktable).

The host passes a file and waits for it to change. With the desktop app this opens FILE in "external
editor" mode: saving writes the result back to the same path, atomically, in the same format and bit
depth (``plugins.edit_target.EditTarget``); ``--exit-on-close`` quits when the window closes, which
hosts that wait for the editor process expect. With a rig (``--preset``, ``--light``, ``--rig``) or
``--headless`` it relights FILE in place without a window, for scripts and hosts without a display.
"""

from __future__ import annotations

import argparse
import inspect
import sys

from icportrait_studio.cli import add_rig_arguments
from icportrait_studio.commands.export import has_rig_arguments


def _app_supports_edit_target():  # -> run_app or None
    try:
        from icportrait_studio.ui.app import run_app
    except ImportError:
        return None
    try:
        params = inspect.signature(run_app).parameters
    except (TypeError, ValueError):
        return None
    accepts_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return run_app if ("edit_target" in params or accepts_kwargs) else None


def cmd_edit(args: argparse.Namespace) -> int:
    from icportrait_studio.plugins.edit_target import EditTarget

    target = EditTarget.open(args.file)
    if not (args.headless or has_rig_arguments(args)):
        run_app = _app_supports_edit_target()
        if run_app is None:
            print("icportrait edit: error: this build's desktop app cannot act as an external editor yet; "
                  "give --preset NAME, --light SPEC or --rig FILE to relight the file in place", file=sys.stderr)
            return 2
        kwargs = {"edit_target": target}
        if "exit_on_close" in inspect.signature(run_app).parameters:
            kwargs["exit_on_close"] = args.exit_on_close
        return int(run_app(str(target.path), **kwargs) or 0)

    from icportrait_studio.cli import rig_from_args
    from icportrait_studio.commands.export import render

    rig = rig_from_args(args)
    result = render(target.image.rgb, target.image.alpha, rig, str(target.path))
    for w in [*target.image.warnings, *result.info.get("warnings", [])]:
        print(f"icportrait: {args.file}: warning: {w}", file=sys.stderr)
    target.write_back(result.image, result.alpha)
    if not args.quiet:
        print(f"{args.file}: relit in place ({target.bit_depth}-bit)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("edit", help="edit FILE in place (as Lightroom's or darktable's external editor)",
                              description="Open FILE for editing and write the result back to the same path on save "
                                          "(atomically; 16-bit TIFF stays 16-bit). With a rig option, or --headless, "
                                          "relight it in place without a window.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--exit-on-close", action="store_true",
                   help="quit when the window closes (for hosts that wait for the editor to exit)")
    p.add_argument("--headless", action="store_true", help="no window: relight FILE in place and exit")
    add_rig_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_edit)

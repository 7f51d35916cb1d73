"""Before Qt starts on Linux: is there a screen to show the window on, and can Qt's xcb plugin load?

Qt's own message for both cases is "could not load the Qt platform plugin ... Reinstalling the
application may fix this problem", and it then aborts: a user on an SSH session without a display, or on
a fresh desktop without the one system library Qt 6.5+ needs for X11 (libxcb-cursor0), learns nothing
from it. This module words the cause and the fix. Qt-free: it runs before PySide6 is imported.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable, Mapping

XCB_CURSOR_HINT = ("Qt needs the system library libxcb-cursor0 to show windows on X11 (Debian/Ubuntu: "
                   "sudo apt install libxcb-cursor0; Fedora: sudo dnf install xcb-util-cursor; "
                   "Arch: sudo pacman -S xcb-util-cursor)")


def display_problem(env: Mapping[str, str] | None = None, platform: str | None = None,
                    find_library: Callable[[str], str | None] = ctypes.util.find_library) -> tuple[str, bool] | None:
    """(message, fatal) when the app cannot, or may not, open its window; None when all looks well.

    Fatal: no display at all (the app cannot start; the command line still works). Not fatal: X11 without
    libxcb-cursor as the loader sees it (a library in an unusual place would be missed, so it is a hint
    printed before Qt tries)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    qpa = env.get("QT_QPA_PLATFORM", "")
    if qpa and not qpa.startswith(("xcb", "wayland")):
        return None  # offscreen, vnc, eglfs...: the user chose a platform that needs no desktop
    x11, wayland = bool(env.get("DISPLAY")), bool(env.get("WAYLAND_DISPLAY"))
    if not (x11 or wayland):
        return ("No display to show the window on (neither DISPLAY nor WAYLAND_DISPLAY is set): start the app "
                "from a desktop session, or use the command line, which needs none "
                "(icportrait relight PHOTO -o OUT --preset loop).", True)
    uses_xcb = qpa.startswith("xcb") or (not qpa and not wayland)
    if uses_xcb and find_library("xcb-cursor") is None:
        return XCB_CURSOR_HINT, False
    return None

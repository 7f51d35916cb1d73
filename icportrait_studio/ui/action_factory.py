"""One way to build a menu/toolbar action: its shortcut shown in the tooltip, its tip on the status bar.

Its own module (not ``actions``) so the feature modules that ``actions`` imports (layered export,
masks, dialogs) can build their actions the same way without an import cycle.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from icportrait_studio.ui.panels import icon


def make_action(parent: QWidget, text: str, shortcut: str | list[str] | QKeySequence.StandardKey | None = None,
                tip: str = "", icon_name: str = "", checkable: bool = False) -> QAction:
    """A QAction with ``shortcut`` (one key sequence, several, or a standard key), ``tip`` (the text when
    empty) as status tip and as tooltip with the keys appended, and an icon from the app's set."""
    a = QAction(text, parent)
    if isinstance(shortcut, list):
        a.setShortcuts([QKeySequence(s) for s in shortcut])
    elif shortcut is not None:
        a.setShortcut(QKeySequence(shortcut))
    keys = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    a.setToolTip(f"{tip or text}  ({keys})" if keys else (tip or text))
    a.setStatusTip(tip or text)
    if icon_name:
        a.setIcon(icon(icon_name))
    a.setCheckable(checkable)
    return a

"""Scrolling a panel must not edit it: a wheel over an unfocused spin box, slider or list scrolls the panel.

Qt hands wheel events to whatever control is under the pointer, so scrolling down the light panel
turned the azimuth, intensity and preset boxes it passed over (each one an undo step and a relight).
A control takes wheel steps once it has focus (a click or Tab), as in most editors.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QWidget,
)

GUARDED = (QAbstractSpinBox, QAbstractSlider, QComboBox)


class WheelGuard(QObject):
    """Passes a wheel event over an unfocused control to the scroll area's scroll bar instead."""

    def __init__(self, area: QAbstractScrollArea) -> None:
        super().__init__(area)
        self._area = area

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            QApplication.sendEvent(self._area.verticalScrollBar(), event)
            return True
        return False


def guard_wheel(content: QWidget, area: QAbstractScrollArea, guard: WheelGuard | None = None) -> WheelGuard:
    """Guard every control inside ``content`` (shown in ``area``) against stray wheel edits; pass the
    ``guard`` an area already has to guard rows added to it later (a list's item widgets)."""
    guard = guard or WheelGuard(area)
    for widget in [content, *content.findChildren(QWidget)]:
        if isinstance(widget, GUARDED) and not isinstance(widget, QScrollBar):  # a bar scrolls, as it should
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            widget.installEventFilter(guard)
    return guard

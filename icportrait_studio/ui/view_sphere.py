"""The view sphere: drag a little head to choose the new head pose (yaw / pitch).

Dragging is relative (the pose changes by the mouse travel, not by where you click), so a click never
makes the head jump: dragging by the sphere's radius turns the head by ``MAX_YAW`` degrees. Right and
up are positive, matching :class:`~icportrait_studio.core.view.ViewPose` (+yaw turns the face toward the
image's right, +pitch tilts it up).
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPalette, QPen, QRadialGradient
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from icportrait_studio.core.view import MAX_PITCH, MAX_YAW


def clamp_view(yaw: float, pitch: float) -> tuple[float, float]:
    """Clamp a pose into the range the view-change backend supports."""
    return max(-MAX_YAW, min(MAX_YAW, float(yaw))), max(-MAX_PITCH, min(MAX_PITCH, float(pitch)))


def _rotate(point: tuple[float, float, float], yaw: float, pitch: float) -> tuple[float, float, float]:
    """Rotate a head-space point by pitch (about x, +up) then yaw (about y, +toward image right)."""
    x, y, z = point
    p, w = math.radians(pitch), math.radians(yaw)
    y, z = y * math.cos(p) + z * math.sin(p), -y * math.sin(p) + z * math.cos(p)
    x, z = x * math.cos(w) + z * math.sin(w), -x * math.sin(w) + z * math.cos(w)
    return x, y, z


class ViewSphere(QWidget):
    """A sphere with a head glyph whose face follows the pose; drag it to turn the head."""

    viewChanged = Signal(float, float)
    viewFinished = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._yaw = 0.0
        self._pitch = 0.0
        self._press: QPointF | None = None
        self._press_view = (0.0, 0.0)
        self._moved = False
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self.setToolTip("Drag to turn the head (left/right: yaw, up/down: pitch); double-click to reset.")

    def setView(self, yaw: float, pitch: float) -> None:
        """Show a pose (clamped to the supported range) without emitting anything."""
        self._yaw, self._pitch = clamp_view(yaw, pitch)
        self.update()

    def view(self) -> tuple[float, float]:
        return self._yaw, self._pitch

    def sizeHint(self) -> QSize:
        return QSize(120, 120)

    def minimumSizeHint(self) -> QSize:
        return QSize(64, 64)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return width

    def _radius(self) -> float:
        return max(8.0, min(self.width(), self.height()) / 2.0 - 4.0)

    def _center(self) -> QPointF:
        return QPointF(self.width() / 2.0, self.height() / 2.0)

    def _project(self, point: tuple[float, float, float], scale: float) -> tuple[QPointF, float]:
        """Screen position (orthographic) and depth of a head-space point rotated by the current pose."""
        x, y, z = _rotate(point, self._yaw, self._pitch)
        c = self._center()
        return QPointF(c.x() + x * scale, c.y() - y * scale), z

    # ---------------------------------------------------------------- events
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        self._press, self._press_view, self._moved = event.position(), (self._yaw, self._pitch), False
        self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is None:
            return
        per_px = MAX_YAW / self._radius()
        d = event.position() - self._press
        view = clamp_view(self._press_view[0] + d.x() * per_px, self._press_view[1] - d.y() * per_px)
        if view != (self._yaw, self._pitch):
            self._yaw, self._pitch = view
            self._moved = True
            self.update()
            self.viewChanged.emit(*view)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return super().mouseReleaseEvent(event)
        self.mouseMoveEvent(event)
        self._press = None
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        if self._moved:
            self.viewFinished.emit(self._yaw, self._pitch)
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mouseDoubleClickEvent(event)
        self._press = None
        self._commit(0.0, 0.0)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Arrow keys turn the head by 1° (Shift: 5°); Home resets."""
        step = 5.0 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1.0
        deltas = {Qt.Key.Key_Left: (-step, 0.0), Qt.Key.Key_Right: (step, 0.0),
                  Qt.Key.Key_Up: (0.0, step), Qt.Key.Key_Down: (0.0, -step)}
        if event.key() == Qt.Key.Key_Home:
            self._commit(0.0, 0.0)
        elif event.key() in deltas:
            d_yaw, d_pitch = deltas[event.key()]  # type: ignore[index]
            self._commit(self._yaw + d_yaw, self._pitch + d_pitch)
        else:
            super().keyPressEvent(event)

    def _commit(self, yaw: float, pitch: float) -> None:
        self.setView(yaw, pitch)
        self.viewChanged.emit(self._yaw, self._pitch)
        self.viewFinished.emit(self._yaw, self._pitch)

    # -------------------------------------------------------------- painting
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        c, r = self._center(), self._radius()
        grad = QRadialGradient(QPointF(c.x() - 0.35 * r, c.y() - 0.4 * r), 1.5 * r)
        grad.setColorAt(0.0, QColor(250, 250, 250))
        grad.setColorAt(0.6, QColor(175, 178, 184))
        grad.setColorAt(1.0, QColor(80, 82, 88))
        p.setPen(QPen(self.palette().color(QPalette.ColorRole.Mid), 1.0))
        p.setBrush(grad)
        p.drawEllipse(c, r, r)
        self._paint_head(p, 0.62 * r)
        p.end()

    def _paint_head(self, p: QPainter, scale: float) -> None:
        """Head outline plus features (eyes, nose, mouth) placed on a rotated head and drawn if they face us."""
        accent = self.palette().color(QPalette.ColorRole.Highlight)
        p.setPen(QPen(QColor(40, 40, 45), 1.5))
        p.setBrush(QColor(222, 200, 182))
        c = self._center()
        p.drawEllipse(QRectF(c.x() - 0.8 * scale, c.y() - scale, 1.6 * scale, 2.0 * scale))
        p.setBrush(QColor(40, 40, 45))
        for eye in ((-0.32, 0.25, 0.9), (0.32, 0.25, 0.9)):
            pos, depth = self._project(eye, scale)
            if depth > 0:
                p.drawEllipse(pos, 0.08 * scale, 0.06 * scale)
        mouth_l, dl = self._project((-0.22, -0.45, 0.87), scale)
        mouth_r, dr = self._project((0.22, -0.45, 0.87), scale)
        if dl > 0 and dr > 0:
            p.drawLine(mouth_l, mouth_r)
        base, _ = self._project((0.0, -0.1, 0.95), scale)
        tip, _ = self._project((0.0, -0.1, 1.35), scale)
        p.setPen(QPen(accent, 2.5, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawLine(base, tip)
        p.setBrush(accent)
        p.drawEllipse(tip, 2.5, 2.5)


class ViewSpherePanel(QWidget):
    """The view sphere with numeric yaw / pitch fields, a 'lights follow head' switch and a reset button."""

    viewChanged = Signal(float, float)
    viewFinished = Signal(float, float)
    lightsFollowChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sphere = ViewSphere(self)
        self.yaw_spin = self._spin(MAX_YAW, "Yaw: + turns the face toward the image's right")
        self.pitch_spin = self._spin(MAX_PITCH, "Pitch: + tilts the face up")
        self.follow_check = QCheckBox("Lights follow head", self)
        self.follow_check.setToolTip("On: the rig turns with the head. Off: lights stay fixed like studio lights.")
        self.reset_button = QPushButton("Reset view", self)
        form = QFormLayout()
        form.addRow("Yaw", self.yaw_spin)
        form.addRow("Pitch", self.pitch_spin)
        side = QVBoxLayout()
        side.addLayout(form)
        side.addWidget(self.follow_check)
        side.addWidget(self.reset_button)
        side.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.sphere, 1)
        layout.addLayout(side)
        self.sphere.viewChanged.connect(self._on_sphere_changed)
        self.sphere.viewFinished.connect(self._on_sphere_finished)
        self.yaw_spin.valueChanged.connect(self._on_spin)
        self.pitch_spin.valueChanged.connect(self._on_spin)
        self.follow_check.toggled.connect(self.lightsFollowChanged)
        self.reset_button.clicked.connect(self.reset)

    def _spin(self, limit: float, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setRange(-limit, limit)
        spin.setDecimals(1)
        spin.setSingleStep(1.0)
        spin.setSuffix("°")
        spin.setKeyboardTracking(False)  # commit on Enter / focus-out, not on every keystroke
        spin.setToolTip(tip)
        return spin

    def setView(self, yaw: float, pitch: float) -> None:
        """Show a pose without emitting anything."""
        self.sphere.setView(yaw, pitch)
        self._sync_spins()

    def view(self) -> tuple[float, float]:
        return self.sphere.view()

    def lightsFollow(self) -> bool:
        return self.follow_check.isChecked()

    def setLightsFollow(self, follow: bool) -> None:
        """Set the switch without emitting ``lightsFollowChanged``."""
        blocked = self.follow_check.blockSignals(True)
        self.follow_check.setChecked(follow)
        self.follow_check.blockSignals(blocked)

    def reset(self) -> None:
        """Back to the photo's own pose (emits both signals)."""
        self.setView(0.0, 0.0)
        self.viewChanged.emit(0.0, 0.0)
        self.viewFinished.emit(0.0, 0.0)

    def _sync_spins(self) -> None:
        yaw, pitch = self.sphere.view()
        for spin, value in ((self.yaw_spin, yaw), (self.pitch_spin, pitch)):
            blocked = spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(blocked)

    def _on_sphere_changed(self, yaw: float, pitch: float) -> None:
        self._sync_spins()
        self.viewChanged.emit(yaw, pitch)

    def _on_sphere_finished(self, yaw: float, pitch: float) -> None:
        self._sync_spins()
        self.viewFinished.emit(yaw, pitch)

    def _on_spin(self, _value: float) -> None:
        self.sphere.setView(self.yaw_spin.value(), self.pitch_spin.value())
        yaw, pitch = self.sphere.view()
        self.viewChanged.emit(yaw, pitch)
        self.viewFinished.emit(yaw, pitch)

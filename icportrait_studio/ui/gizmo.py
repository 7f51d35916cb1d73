"""The light-rig gizmo: a shaded sphere with one draggable handle per light.

Mapping ("unfolded" azimuthal-equidistant view of the whole sphere of directions). A light direction
``d`` (camera space: +x image right, +y up, +z toward the camera) sits at the angle
``theta = acos(d.z)`` from the camera axis and at the angle ``phi = atan2(d.y, d.x)`` around it. Its handle is
drawn at distance ``r = theta / 180° * R`` from the disc centre in the screen direction ``(cos phi, -sin phi)``.

* the centre is a light straight from the camera (azimuth 0, elevation 0);
* the dashed circle at ``r = R/2`` is the silhouette (theta = 90°): everything inside it lights the
  visible (front) hemisphere, and those handles are drawn solid;
* the outer ring ``R/2 < r <= R`` holds back-hemisphere lights (rim / hair lights), drawn hollow and dashed;
  the outer rim ``r = R`` is the point straight behind the head.

Unlike an orthographic projection, every direction is reachable with the mouse and no two directions
share a point (except the single back pole). The shading image uses the same mapping, so a light's
highlight is centred under its handle.

The gizmo never mutates the rig: it reports what the user asked for (``lightMoved``, ``lightAddRequested``,
...) and whoever owns the rig answers with :meth:`LightRigGizmo.setRig`. While a drag is in progress it
keeps a local override of the dragged light so the handle follows the mouse even before the owner replies.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QHelpEvent,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QRadialGradient,
    QTransform,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from icportrait_studio.core.lights import Light, LightRig, angles_from_direction, color_to_hex, direction_from_angles

SHADING_RES = 96
"""Side of the per-pixel shading image; small because it is recomputed on every drag step."""
BACK_DIMMING = 0.45
"""Brightness factor of the back ring, so it reads as 'behind the head'."""
DRAG_THRESHOLD_PX = 3.0
"""A press must travel this far before it becomes a drag: a plain click only selects."""


def wrap_azimuth(azimuth: float) -> float:
    """Bring an azimuth into (-180, 180]."""
    a = (azimuth + 180.0) % 360.0 - 180.0
    return 180.0 if a <= -180.0 else a


def shade_sphere(rig: LightRig, res: int = SHADING_RES) -> np.ndarray:
    """Lambert shading of a grey unit sphere under ``rig`` in the unfolded mapping, as RGBA uint8 (res, res, 4).

    Point lights are treated as directional here: the gizmo is about direction, and the head-radius
    falloff would only make far lights look dim. ``size`` widens the terminator (wrap lighting) the way
    a soft box does.
    """
    coords = (np.arange(res, dtype=np.float32) + 0.5) / res * 2.0 - 1.0
    sx, sy = np.meshgrid(coords, -coords)
    r = np.hypot(sx, sy)
    inside = r <= 1.0
    theta = np.clip(r, 0.0, 1.0) * np.pi
    phi = np.arctan2(sy, sx)
    sin_t = np.sin(theta)
    normals = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), np.cos(theta)], axis=-1)
    radiance = np.full((res, res, 3), float(rig.ambient), dtype=np.float32)
    for light in rig.lights:
        if not light.enabled or light.intensity <= 0:
            continue
        wrap = 0.6 * light.size
        ndl = normals @ np.asarray(light.direction, dtype=np.float32)
        diffuse = np.clip((ndl + wrap) / (1.0 + wrap), 0.0, None)
        radiance += diffuse[..., None] * (light.intensity * np.asarray(light.color, dtype=np.float32))
    value = np.clip(0.82 * radiance, 0.0, 1.0) ** (1.0 / 2.2)
    value[r > 0.5] *= BACK_DIMMING
    rgba = np.zeros((res, res, 4), dtype=np.uint8)
    rgba[..., :3] = np.round(value * 255.0).astype(np.uint8)
    rgba[..., 3] = np.where(inside, 255, 0).astype(np.uint8)
    return rgba


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    """Copy an (h, w, 4) uint8 array into a QImage that owns its memory."""
    h, w = rgba.shape[:2]
    data = np.ascontiguousarray(rgba).tobytes()
    return QImage(data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


class LightRigGizmo(QWidget):
    """Direct-manipulation view of a :class:`LightRig` (see the module docstring for the mapping)."""

    selectionChanged = Signal(int)
    lightMoved = Signal(int, float, float)
    dragFinished = Signal(int)
    lightAddRequested = Signal(float, float)
    lightRemoveRequested = Signal(int)
    ghostAdopted = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rig = LightRig()
        self._selected = -1
        self._override: dict[int, tuple[float, float]] = {}
        self._ghost: tuple[float, float] | None = None
        self._press_pos: QPointF | None = None
        self._press_index = -1
        self._dragging = False
        self._shading_key: tuple[LightRig, int] | None = None
        self._shading: QImage | None = None
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setToolTip(
            "Light directions, seen from the camera. Inside the dashed circle: lights in front of the face;"
            " outer ring: lights behind it.\nDrag a handle to move it (Shift: keep it level), double-click to"
            " add a light, Delete removes the selected one, arrow keys nudge it (Shift: 10°)."
        )

    # ----------------------------------------------------------------- model
    def setRig(self, rig: LightRig) -> None:
        """Show ``rig``; the drag override is dropped because the owner's answer supersedes it."""
        self._rig = rig
        self._override.clear()
        n = len(rig.lights)
        if self._selected >= n:
            self._set_selected(n - 1)
        if self._press_index >= n:
            self._press_index, self._dragging = -1, False
        self.update()

    def rig(self) -> LightRig:
        return self._rig

    def selectedIndex(self) -> int:
        return self._selected

    def setSelectedIndex(self, index: int) -> None:
        """Select light ``index`` (-1 for none); emits ``selectionChanged`` when it changes."""
        self._set_selected(index if 0 <= index < len(self._rig.lights) else -1)

    def setGhost(self, azimuth: float, elevation: float) -> None:
        """Show the estimated source light as a dashed ghost handle; clicking it emits ``ghostAdopted``."""
        self._ghost = (wrap_azimuth(azimuth), max(-90.0, min(90.0, elevation)))
        self.update()

    def clearGhost(self) -> None:
        self._ghost = None
        self.update()

    def ghost(self) -> tuple[float, float] | None:
        return self._ghost

    def _set_selected(self, index: int) -> None:
        if index != self._selected:
            self._selected = index
            self.update()
            self.selectionChanged.emit(index)

    def _angles(self, index: int) -> tuple[float, float]:
        if index in self._override:
            return self._override[index]
        light = self._rig.lights[index]
        return light.azimuth, light.elevation

    def _effective_rig(self) -> LightRig:
        """The rig as drawn: the owner's rig with the drag override applied."""
        if not self._override:
            return self._rig
        lights = list(self._rig.lights)
        for i, (az, el) in self._override.items():
            if i < len(lights):
                lights[i] = replace(lights[i], azimuth=az, elevation=el)
        return self._rig.with_lights(lights)

    # -------------------------------------------------------------- geometry
    def _center(self) -> QPointF:
        return QPointF(self.width() / 2.0, self.height() / 2.0)

    def _radius(self) -> float:
        """Disc radius R, leaving room for the largest handle at the rim."""
        return max(8.0, min(self.width(), self.height()) / 2.0 - 12.0)

    def pointFor(self, azimuth: float, elevation: float) -> QPointF:
        """Widget coordinates of a direction in the unfolded mapping."""
        x, y, z = direction_from_angles(azimuth, elevation)
        theta = math.acos(max(-1.0, min(1.0, z)))
        phi = math.atan2(y, x)
        r = theta / math.pi * self._radius()
        c = self._center()
        return QPointF(c.x() + r * math.cos(phi), c.y() - r * math.sin(phi))

    def anglesAt(self, point: QPointF) -> tuple[float, float]:
        """(azimuth, elevation) under a widget point; points beyond the disc clamp to its rim."""
        c, big_r = self._center(), self._radius()
        dx, dy = (point.x() - c.x()) / big_r, -(point.y() - c.y()) / big_r
        theta = min(1.0, math.hypot(dx, dy)) * math.pi
        phi = math.atan2(dy, dx)
        s = math.sin(theta)
        az, el = angles_from_direction(s * math.cos(phi), s * math.sin(phi), math.cos(theta))
        return wrap_azimuth(az), max(-90.0, min(90.0, el))

    def handlePosition(self, index: int) -> QPointF:
        """Widget coordinates of light ``index``'s handle (as drawn, including a drag in progress)."""
        return self.pointFor(*self._angles(index))

    def _handle_radius(self, light: Light) -> float:
        scale = min(1.0, self._radius() / 100.0)
        return max(4.0, (5.0 + 7.0 * light.size) * scale)

    def _is_back(self, azimuth: float, elevation: float) -> bool:
        return direction_from_angles(azimuth, elevation)[2] < 0.0

    def _light_at(self, pos: QPointF) -> int:
        """Index of the handle under ``pos`` (the selected one wins ties, then the nearest), or -1."""
        best, best_d = -1, math.inf
        for i, light in enumerate(self._rig.lights):
            p = self.handlePosition(i)
            d = math.hypot(p.x() - pos.x(), p.y() - pos.y())
            if d <= self._handle_radius(light) + 4.0 and (d < best_d or i == self._selected):
                best, best_d = i, (-1.0 if i == self._selected else d)
        return best

    def _ghost_at(self, pos: QPointF) -> bool:
        if self._ghost is None:
            return False
        p = self.pointFor(*self._ghost)
        return math.hypot(p.x() - pos.x(), p.y() - pos.y()) <= 12.0

    def _inside_disc(self, pos: QPointF) -> bool:
        c = self._center()
        return math.hypot(pos.x() - c.x(), pos.y() - c.y()) <= self._radius() + 2.0

    # ----------------------------------------------------------------- sizes
    def sizeHint(self) -> QSize:
        return QSize(240, 240)

    def minimumSizeHint(self) -> QSize:
        return QSize(120, 120)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return width

    # ---------------------------------------------------------------- events
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        pos = event.position()
        index = self._light_at(pos)
        if index >= 0:
            self._set_selected(index)
            self._press_pos, self._press_index, self._dragging = pos, index, False
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._ghost_at(pos):
            self.ghostAdopted.emit(*self._ghost)  # type: ignore[misc]
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._press_index < 0 or self._press_pos is None:
            hover = self._light_at(pos) >= 0 or self._ghost_at(pos)
            self.setCursor(Qt.CursorShape.OpenHandCursor if hover else Qt.CursorShape.ArrowCursor)
            return
        moved = math.hypot(pos.x() - self._press_pos.x(), pos.y() - self._press_pos.y())
        if not self._dragging and moved < DRAG_THRESHOLD_PX:
            return
        self._dragging = True
        self._drag_to(pos, bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._press_index < 0:
            return super().mouseReleaseEvent(event)
        index, dragging = self._press_index, self._dragging
        if dragging:
            self._drag_to(event.position(), bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
        self._press_index, self._press_pos, self._dragging = -1, None, False
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        if dragging:
            self.dragFinished.emit(index)
        event.accept()

    def _drag_to(self, pos: QPointF, level: bool) -> None:
        """Move the pressed light under the cursor (Shift keeps it at elevation 0) and report it."""
        az, el = self.anglesAt(pos)
        if level:
            el = 0.0
        index = self._press_index
        if self._angles(index) == (az, el):
            return
        self._override[index] = (az, el)
        self.update()
        self.lightMoved.emit(index, az, el)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if event.button() == Qt.MouseButton.LeftButton and self._light_at(pos) < 0 and self._inside_disc(pos):
            self.lightAddRequested.emit(*self.anglesAt(pos))
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, index = event.key(), self._selected
        if index < 0:
            return super().keyPressEvent(event)
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.lightRemoveRequested.emit(index)
            return
        step = 10.0 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1.0
        deltas = {Qt.Key.Key_Left: (-step, 0.0), Qt.Key.Key_Right: (step, 0.0),
                  Qt.Key.Key_Up: (0.0, step), Qt.Key.Key_Down: (0.0, -step)}
        if key not in deltas:
            return super().keyPressEvent(event)
        az, el = self._angles(index)
        d_az, d_el = deltas[key]
        az, el = wrap_azimuth(az + d_az), max(-90.0, min(90.0, el + d_el))
        self._override[index] = (az, el)
        self.update()
        self.lightMoved.emit(index, az, el)
        self.dragFinished.emit(index)

    def event(self, event: QEvent) -> bool:
        """Per-handle tooltips; elsewhere the widget's general help text."""
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            pos = QPointF(event.pos())
            index = self._light_at(pos)
            if index >= 0:
                light, (az, el) = self._rig.lights[index], self._angles(index)
                side = "behind" if self._is_back(az, el) else "front"
                QToolTip.showText(event.globalPos(), f"Light {index + 1} ({light.kind}, {side}): azimuth {az:.0f}°,"
                                  f" elevation {el:.0f}°, intensity {light.intensity:.2f}", self)
                return True
            if self._ghost_at(pos) and self._ghost is not None:
                QToolTip.showText(event.globalPos(), f"Estimated light in the photo: azimuth {self._ghost[0]:.0f}°,"
                                  f" elevation {self._ghost[1]:.0f}° (click to adopt)", self)
                return True
        return super().event(event)

    # -------------------------------------------------------------- painting
    def _shading_image(self, size: int) -> QImage:
        """The per-pixel shading of the drawn rig, scaled to ``size``; cached until the rig or size changes."""
        rig = self._effective_rig()
        # while a handle is dragged the sphere is re-shaded on every mouse move, on the GUI thread that
        # also repaints the canvas: shade at half resolution then, and at full quality once released
        res = SHADING_RES // 2 if self._dragging else SHADING_RES
        key = (rig, size, res)
        if self._shading is None or self._shading_key != key:
            small = rgba_to_qimage(shade_sphere(rig, res))
            self._shading = small.scaled(size, size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)
            self._shading_key = key
        return self._shading

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        c, big_r = self._center(), self._radius()
        self._paint_sphere(p, c, big_r)
        if self._ghost is not None:
            self._paint_ghost(p, *self._ghost)
        order = [i for i in range(len(self._rig.lights)) if i != self._selected]
        order += [self._selected] if self._selected >= 0 else []
        for i in order:
            self._paint_handle(p, i)
        p.end()

    def _paint_sphere(self, p: QPainter, c: QPointF, big_r: float) -> None:
        size = max(1, round(2 * big_r))
        disc = QRectF(c.x() - big_r, c.y() - big_r, 2 * big_r, 2 * big_r)
        brush = QBrush(self._shading_image(size))
        brush.setTransform(QTransform.fromTranslate(disc.x(), disc.y()))
        p.setPen(QPen(self.palette().color(QPalette.ColorRole.Mid), 1.0))
        p.setBrush(brush)
        p.drawEllipse(disc)
        # A soft darkening toward the silhouette gives the front hemisphere its roundness.
        half = big_r / 2.0
        grad = QRadialGradient(c, half)
        grad.setColorAt(0.0, QColor(0, 0, 0, 0))
        grad.setColorAt(0.8, QColor(0, 0, 0, 10))
        grad.setColorAt(1.0, QColor(0, 0, 0, 70))
        p.setBrush(QBrush(grad))
        silhouette = QPen(self.palette().color(QPalette.ColorRole.Light), 1.2, Qt.PenStyle.DashLine)
        p.setPen(silhouette)
        p.drawEllipse(c, half, half)
        axis = QPen(QColor(128, 128, 128, 90), 1.0, Qt.PenStyle.DotLine)
        p.setPen(axis)
        p.drawLine(QPointF(c.x() - big_r, c.y()), QPointF(c.x() + big_r, c.y()))
        p.drawLine(QPointF(c.x(), c.y() - big_r), QPointF(c.x(), c.y() + big_r))

    def _paint_handle(self, p: QPainter, index: int) -> None:
        light = self._rig.lights[index]
        az, el = self._angles(index)
        pos, rad = self.pointFor(az, el), self._handle_radius(light)
        color = QColor(color_to_hex(light.color))
        outline = QColor(20, 20, 20) if color.lightnessF() > 0.5 else QColor(235, 235, 235)
        p.setOpacity(1.0 if light.enabled else 0.45)
        if self._is_back(az, el):
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(outline, 3.5))
            p.drawEllipse(pos, rad, rad)
            p.setPen(QPen(color, 2.0, Qt.PenStyle.DashLine))
            p.drawEllipse(pos, rad, rad)
        else:
            p.setBrush(color)
            p.setPen(QPen(outline, 1.5))
            p.drawEllipse(pos, rad, rad)
        if index == self._selected:
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 2.5))
            p.drawEllipse(pos, rad + 4.0, rad + 4.0)
        p.setPen(self.palette().color(QPalette.ColorRole.Text))
        p.drawText(QPointF(pos.x() + rad + 3.0, pos.y() - rad), str(index + 1))
        p.setOpacity(1.0)

    def _paint_ghost(self, p: QPainter, azimuth: float, elevation: float) -> None:
        pos = self.pointFor(azimuth, elevation)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(0, 0, 0, 160), 3.0))
        p.drawEllipse(pos, 8.0, 8.0)
        p.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 1.8, Qt.PenStyle.DashLine))
        p.drawEllipse(pos, 8.0, 8.0)
        p.drawLine(QPointF(pos.x() - 3, pos.y()), QPointF(pos.x() + 3, pos.y()))
        p.drawLine(QPointF(pos.x(), pos.y() - 3), QPointF(pos.x(), pos.y() + 3))

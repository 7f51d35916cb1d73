"""The image canvas: the layer stack on a QGraphicsView with zoom, pan, before/after and overlays.

The stack is painted by one item (``StackItem``) rather than one pixmap item per layer so that the
before/after split is a single clip, and so a layer that only has a small preview render is simply
drawn into the full document rectangle (Qt scales it) until the full render arrives. Large layers are
drawn from cached reduced copies ("mip" levels) when zoomed out: drawing a 12-megapixel image
scaled down on every repaint would make panning stutter.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

MIN_ZOOM, MAX_ZOOM = 0.02, 32.0
OVERLAYS = ("none", "normals", "shading", "matte")


def array_to_qimage(arr: np.ndarray, native: bool | None = None) -> QImage:
    """Wrap an (h, w[, 3|4]) uint8 array as a QImage without copying; the caller keeps ``arr`` alive.

    ``native``: 4-channel pixels from ``encode_display`` in Qt's 32-bit layout; True = they carry
    (premultiplied) alpha, False = opaque. None: plain RGB / straight RGBA byte order (overlays).
    """
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    channels = arr.shape[2] if arr.ndim == 3 else 1
    if channels == 4 and native is not None:
        fmt = QImage.Format.Format_ARGB32_Premultiplied if native else QImage.Format.Format_RGB32
    else:
        fmt = {1: QImage.Format.Format_Grayscale8, 3: QImage.Format.Format_RGB888,
               4: QImage.Format.Format_RGBA8888}[channels]
    return QImage(arr.data, w, h, channels * w, fmt)


@dataclass
class DisplayLayer:
    """What the canvas shows for one layer: 8-bit display pixels plus the layer's blend settings."""

    uid: int
    kind: str
    array: np.ndarray  # uint8 (h, w, 4) from encode_display (or plain RGB): owns the memory ``image`` shows
    has_alpha: bool = False
    visible: bool = True
    opacity: float = 1.0
    request_id: int = 0
    image: QImage = field(init=False)
    _mips: dict[int, QImage] = field(default_factory=dict, init=False, repr=False)
    _mip_arrays: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._native = self.has_alpha if self.array.ndim == 3 and self.array.shape[2] == 4 else None
        self.image = array_to_qimage(self.array, self._native)

    def level_for(self, screen_width: float) -> QImage:
        """A cached copy at 1/2^k size, the smallest still at least as wide as it appears on screen.

        Made with OpenCV's area filter straight from the full array (one pass, multi-threaded, ~15 ms
        for 12 MP) the first time a zoom level needs it."""
        level, w = 0, self.image.width()
        while w / 2 >= max(screen_width, 64) and level < 6:
            w /= 2
            level += 1
        if level == 0:
            return self.image
        if level not in self._mips:
            import cv2

            h0, w0 = self.array.shape[:2]
            size = (max(1, round(w0 / (1 << level))), max(1, round(h0 / (1 << level))))
            small = np.ascontiguousarray(cv2.resize(self.array, size, interpolation=cv2.INTER_AREA))
            self._mip_arrays[level] = small
            self._mips[level] = array_to_qimage(small, self._native)
        return self._mips[level]

    def patch_mips(self, box: tuple[int, int, int, int]) -> None:
        """Bring the cached zoom levels up to date after ``array[y0:y1, x0:x1]`` changed in place."""
        import cv2

        x0, y0, x1, y1 = box
        for level, small in self._mip_arrays.items():
            f = 1 << level
            sh, sw = small.shape[:2]
            lx0, ly0 = x0 // f, y0 // f
            lx1, ly1 = min(sw, -(-x1 // f)), min(sh, -(-y1 // f))
            src = self.array[ly0 * f:ly1 * f, lx0 * f:lx1 * f]
            if lx1 > lx0 and ly1 > ly0 and src.size:
                small[ly0:ly1, lx0:lx1] = cv2.resize(src, (lx1 - lx0, ly1 - ly0), interpolation=cv2.INTER_AREA)


class StackItem(QGraphicsItem):
    """Paints the layer stack of the open document into the rectangle (0, 0, width, height)."""

    def __init__(self) -> None:
        super().__init__()
        self.size = (0, 0)
        self.layers: list[DisplayLayer] = []
        self.show_before = False
        self.split = False
        self.split_pos = 0.5
        self.has_alpha = False
        self._checker = _checker_brush()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, *self.size)

    def base(self) -> DisplayLayer | None:
        return next((la for la in self.layers if la.kind == "base"), None)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        w, h = self.size
        if not w or not h:
            return
        rect = QRectF(0, 0, w, h)
        scale = option.levelOfDetailFromTransform(painter.worldTransform())
        smooth = scale < 2.0  # past 200 % show real pixels, like any editor
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        if self.has_alpha:
            brush = QBrush(self._checker)
            brush.setTransform(QTransform.fromScale(1 / scale, 1 / scale))
            painter.fillRect(rect, brush)
        screen_w = w * scale
        base = self.base()
        if self.show_before:
            if base is not None:
                painter.drawImage(rect, base.level_for(screen_w))
            return
        if self.split and base is not None:
            cut = w * self.split_pos
            painter.save()
            painter.setClipRect(QRectF(0, 0, cut, h))
            painter.drawImage(rect, base.level_for(screen_w))
            painter.restore()
            painter.setClipRect(QRectF(cut, 0, w - cut, h))
        shown = [la for la in self.layers if la.visible and la.opacity > 0]
        # Start at the topmost layer that hides everything below it (opaque, no alpha): the photo under
        # a full relit layer need not be drawn, which halves the cost of every repaint during a drag.
        first = max((i for i, la in enumerate(shown) if la.opacity >= 1.0 and not la.image.hasAlphaChannel()),
                    default=0)
        for layer in shown[first:]:
            painter.setOpacity(layer.opacity)
            painter.drawImage(rect, layer.level_for(screen_w))
        painter.setOpacity(1.0)


class OverlayImageItem(QGraphicsItem):
    """A small analysis image (normals, shading, matte) stretched over the document rectangle."""

    def __init__(self) -> None:
        super().__init__()
        self.size = (0, 0)
        self.array: np.ndarray | None = None
        self.image: QImage | None = None

    def set_image(self, rgba: np.ndarray | None, size: tuple[int, int]) -> None:
        self.prepareGeometryChange()
        self.size = size
        self.array = None if rgba is None else np.ascontiguousarray(rgba)
        self.image = None if self.array is None else array_to_qimage(self.array)
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, *self.size)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self.image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(QRectF(0, 0, *self.size), self.image)


class Canvas(QGraphicsView):
    """The central editor view. Emits ``painted(request_id)`` after each repaint (for latency checks)."""

    zoomChanged = Signal(float)
    splitChanged = Signal(float)
    painted = Signal(int)
    filesDropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.stack = StackItem()
        self.overlay = OverlayImageItem()
        self.overlay.setOpacity(0.85)
        self.mesh = QGraphicsPathItem()
        pen = QPen(QColor(80, 220, 255, 150), 0)  # width 0: one device pixel at any zoom
        self.mesh.setPen(pen)
        for z, item in enumerate((self.stack, self.overlay, self.mesh)):
            item.setZValue(z)
            self.scene().addItem(item)
        self.overlay.setVisible(False)
        self.mesh.setVisible(False)
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        # No scroll bars, as in photo editors: pan with space-drag or the middle button.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.viewport().grabGesture(Qt.GestureType.PinchGesture)
        self.setToolTip("")
        self._fit_mode = True
        self._pan_from: QPointF | None = None
        self._space = False
        self._split_drag = False
        self.empty_text = "Open a portrait to start\n\nCtrl+O, drop an image here, or pick a recent file"
        self.displayed_request_id = 0
        self.last_paint_time = 0.0

    # --- content ---------------------------------------------------------------------------------------

    def set_document(self, size: tuple[int, int] | None, has_alpha: bool = False) -> None:
        """Start showing a document of ``size`` (None: the empty state)."""
        self.stack.prepareGeometryChange()
        self.stack.size = size or (0, 0)
        self.stack.layers = []
        self.stack.has_alpha = has_alpha
        self.overlay.set_image(None, size or (0, 0))
        self.mesh.setPath(QPainterPath())
        self.displayed_request_id = 0
        w, h = size or (0, 0)
        margin = max(w, h) * 0.1
        self.setSceneRect(QRectF(-margin, -margin, w + 2 * margin, h + 2 * margin) if size else QRectF())
        self.fit()

    def has_document(self) -> bool:
        return self.stack.size != (0, 0)

    def set_layers(self, layers: list[DisplayLayer]) -> None:
        self.stack.layers = layers
        relit = next((la for la in layers if la.kind == "relit"), None)
        self.displayed_request_id = relit.request_id if relit is not None else 0
        self.viewport().update()

    def set_before(self, on: bool) -> None:
        self.stack.show_before = on
        self.viewport().update()

    def set_split(self, on: bool) -> None:
        self.stack.split = on
        self.viewport().update()

    def set_split_pos(self, pos: float) -> None:
        self.stack.split_pos = min(1.0, max(0.0, pos))
        self.viewport().update()
        self.splitChanged.emit(self.stack.split_pos)

    def set_overlay(self, kind: str, rgba: np.ndarray | None) -> None:
        """Show one analysis image over the photo (``kind`` in OVERLAYS; 'none' hides it)."""
        self.overlay.set_image(rgba if kind != "none" else None, self.stack.size)
        self.overlay.setVisible(kind != "none" and rgba is not None)

    def set_mesh(self, points: np.ndarray | None, edges: np.ndarray | None, visible: bool) -> None:
        """Face-mesh overlay: ``points`` (N, 2) in document pixels, ``edges`` (E, 2) index pairs."""
        path = QPainterPath()
        if points is not None and edges is not None:
            for a, b in edges:
                path.moveTo(float(points[a, 0]), float(points[a, 1]))
                path.lineTo(float(points[b, 0]), float(points[b, 1]))
        self.mesh.setPath(path)
        self.mesh.setVisible(visible and points is not None)

    # --- zoom ---------------------------------------------------------------------------------------------

    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        """Zoom so the whole image fits the view (F)."""
        self._fit_mode = True
        if not self.has_document():
            self.resetTransform()
            return
        rect = self.stack.boundingRect()
        view = self.viewport().rect().adjusted(16, 16, -16, -16)
        if view.width() <= 0 or view.height() <= 0:
            return
        s = min(view.width() / rect.width(), view.height() / rect.height())
        self.setTransform(QTransform.fromScale(s, s))
        self.centerOn(rect.center())
        self.zoomChanged.emit(s)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Absolute zoom (1.0 = 100 %, one image pixel per screen pixel), around ``anchor`` (scene point)."""
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        self._fit_mode = False
        center = anchor if anchor is not None else self.mapToScene(self.viewport().rect().center())
        self.setTransform(QTransform.fromScale(zoom, zoom))
        self.centerOn(center)
        self.zoomChanged.emit(zoom)

    def zoom_by(self, factor: float) -> None:
        z = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom() * factor))
        if z == self.zoom():
            return
        self._fit_mode = False
        self.scale(z / self.zoom(), z / self.zoom())
        self.zoomChanged.emit(self.zoom())

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.pixelDelta().y()
        if delta:
            self.zoom_by(math.pow(1.0015, delta))
        event.accept()

    def viewportEvent(self, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.NativeGesture and isinstance(event, QNativeGestureEvent)
                and event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture):
            self.zoom_by(1.0 + event.value())
            return True
        if event.type() == QEvent.Type.Gesture:
            pinch = event.gesture(Qt.GestureType.PinchGesture)  # type: ignore[attr-defined]
            if pinch is not None:
                self.zoom_by(pinch.scaleFactor())
                return True
        return super().viewportEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    # --- pan and split handle -----------------------------------------------------------------------------

    def _near_split(self, pos: QPointF) -> bool:
        if not (self.stack.split and self.has_document()) or self.stack.show_before:
            return False
        x = self.mapFromScene(QPointF(self.stack.size[0] * self.stack.split_pos, 0)).x()
        return abs(pos.x() - x) <= 8

    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if event.button() == Qt.MouseButton.MiddleButton or (event.button() == Qt.MouseButton.LeftButton
                                                            and self._space):
            self._pan_from = pos
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self._near_split(pos):
            self._split_drag = True
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._pan_from is not None:
            d = pos - self._pan_from
            self._pan_from = pos
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - round(d.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(d.y()))
            return
        if self._split_drag:
            w = self.stack.size[0]
            self.set_split_pos(self.mapToScene(pos.toPoint()).x() / w if w else 0.5)
            return
        near = self._near_split(pos)
        self.viewport().setCursor(Qt.CursorShape.SplitHCursor if near else (
            Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.ArrowCursor))
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None or self._split_drag:
            self._pan_from, self._split_drag = None, False
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def _set_space(self, down: bool) -> None:
        self._space = down
        if not down:
            self._pan_from = None
        self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if down else Qt.CursorShape.ArrowCursor)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        """Space-to-pan works while the pointer is over the image, whichever widget has the keyboard focus
        (the filter is installed on the application only between enter and leave), except in text fields."""
        kind = event.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == Qt.Key.Key_Space:  # type: ignore[attr-defined]
            from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit

            if isinstance(QApplication.focusWidget(), QLineEdit | QAbstractSpinBox):
                return False
            if not event.isAutoRepeat():  # type: ignore[attr-defined]
                self._set_space(kind == QEvent.Type.KeyPress)
            return True
        return False

    def enterEvent(self, event) -> None:
        from PySide6.QtWidgets import QApplication

        QApplication.instance().installEventFilter(self)
        super().enterEvent(event)

    def leaveEvent(self, event) -> None:
        from PySide6.QtWidgets import QApplication

        QApplication.instance().removeEventFilter(self)
        if self._space and self._pan_from is None:
            self._set_space(False)
        super().leaveEvent(event)

    # --- drop -----------------------------------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.filesDropped.emit(paths)

    # --- painting -------------------------------------------------------------------------------------------

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, QColor("#161719"))

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        painter.save()
        painter.resetTransform()
        vp = self.viewport().rect()
        if not self.has_document():
            painter.setPen(QColor("#8a8f98"))
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() * 1.25)
            painter.setFont(font)
            painter.drawText(vp, Qt.AlignmentFlag.AlignCenter, self.empty_text)
        elif self.stack.show_before:
            _badge(painter, QPointF(14, 14), "BEFORE  (B)")
        elif self.stack.split:
            top = self.mapFromScene(QPointF(self.stack.size[0] * self.stack.split_pos, 0))
            bottom = self.mapFromScene(QPointF(self.stack.size[0] * self.stack.split_pos, self.stack.size[1]))
            x = top.x()
            painter.setPen(QPen(QColor(255, 255, 255, 220), 1.5))
            painter.drawLine(QPointF(x, max(0, top.y())), QPointF(x, min(vp.height(), bottom.y())))
            cy = (max(0, top.y()) + min(vp.height(), bottom.y())) / 2
            painter.setBrush(QColor(30, 31, 34, 230))
            painter.drawEllipse(QPointF(x, cy), 11, 11)
            painter.drawText(QRectF(x - 11, cy - 11, 22, 22), Qt.AlignmentFlag.AlignCenter, "⇔")
            _badge(painter, QPointF(x - 10 - _badge_width(painter, "BEFORE"), max(8, top.y() + 8)), "BEFORE")
            _badge(painter, QPointF(x + 10, max(8, top.y() + 8)), "AFTER")
        painter.restore()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        self.last_paint_time = time.perf_counter()
        self.painted.emit(self.displayed_request_id)


def _badge_width(painter: QPainter, text: str) -> float:
    return painter.fontMetrics().horizontalAdvance(text) + 14


def _badge(painter: QPainter, at: QPointF, text: str) -> None:
    metrics = painter.fontMetrics()
    w = _badge_width(painter, text)
    h = metrics.height() + 6
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(20, 21, 24, 200))
    painter.drawRoundedRect(QRectF(at.x(), at.y(), w, h), 4, 4)
    painter.setPen(QColor("#e6e6e6"))
    painter.drawText(QRectF(at.x(), at.y(), w, h), Qt.AlignmentFlag.AlignCenter, text)


def _checker_brush() -> QPixmap:
    pix = QPixmap(16, 16)
    pix.fill(QColor("#3a3c40"))
    p = QPainter(pix)
    p.fillRect(0, 0, 8, 8, QColor("#2c2e31"))
    p.fillRect(8, 8, 8, 8, QColor("#2c2e31"))
    p.end()
    return pix

"""Layer masks edited in the window: Layer ▸ Mask (from the person matte or the face, invert, clear,
feather) and a mask brush on the canvas.

Every edit is one undo step. A mask is an immutable value like the layer's pixels: each edit makes a new
array, so the undo snapshots (which hold references) restore it exactly. ``LayerState`` leaves masks out
of its equality, so these steps are pushed here rather than through ``MainWindow.commit`` (which skips
snapshots that compare equal). The one exception is a stroke in progress: it paints its own fresh array
in place, and the canvas re-encodes only the box the brush touched since the last update
(``document_display.DocumentDisplay.patch_mask``), so a stroke on a 12 MP layer stays live; the stroke's end commits it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QColor, QMouseEvent, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QInputDialog, QLabel, QMenu

from icportrait_studio.core.document import Layer
from icportrait_studio.core.history import strip_state
from icportrait_studio.ui.action_factory import make_action
from icportrait_studio.ui.actions import StateCommand

if TYPE_CHECKING:
    from icportrait_studio.ui.main_window import MainWindow

BRUSH_TIP = ("Mask brush (Shift+M): drag on the image to reveal the selected layer (paints 1), Alt-drag to "
             "hide it (paints 0). A layer without a mask starts from a fully visible one. [ / ] change the "
             "brush size; each stroke is one undo step.")
MIN_BRUSH, MAX_BRUSH = 2, 2000
LIVE_INTERVAL_S = 0.04  # how often a stroke in progress is shown (each update re-encodes the brushed box)


def fit_mask(mask: np.ndarray, w: int, h: int) -> np.ndarray:
    """A float32 mask in [0, 1] at the document size (masks may be stored at any size)."""
    m = np.clip(np.nan_to_num(np.asarray(mask, np.float32)), 0.0, 1.0)
    if m.shape[:2] != (h, w):
        import cv2

        m = np.clip(cv2.resize(np.ascontiguousarray(m), (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return np.ascontiguousarray(m, dtype=np.float32)


def feather_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Gaussian blur by ``radius`` pixels (sigma = radius / 2, the kernel reaching about the radius)."""
    import cv2

    if radius <= 0:
        return mask.copy()
    out = cv2.GaussianBlur(np.ascontiguousarray(mask, np.float32), (0, 0), sigmaX=radius / 2.0,
                           borderType=cv2.BORDER_REPLICATE)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def brush_dab(coverage: np.ndarray, x: float, y: float, radius: float) -> tuple[int, int, int, int] | None:
    """Stamp a soft round dab into ``coverage`` (max blend); returns the touched box (x0, y0, x1, y1)."""
    h, w = coverage.shape
    x0, x1 = max(0, int(np.floor(x - radius))), min(w, int(np.ceil(x + radius)) + 1)
    y0, y1 = max(0, int(np.floor(y - radius))), min(h, int(np.ceil(y + radius)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt((xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2) / max(radius, 0.5)
    t = np.clip((1.0 - d) / 0.5, 0.0, 1.0)  # full strength inside half the radius, smooth falloff outside
    dab = t * t * (3.0 - 2.0 * t)
    np.maximum(coverage[y0:y1, x0:x1], dab, out=coverage[y0:y1, x0:x1])
    return x0, y0, x1, y1


class MaskController(QObject):
    """Layer ▸ Mask, the mask button of each layer row, and the mask brush (see the module docstring)."""

    def __init__(self, win: MainWindow) -> None:
        super().__init__(win)
        self.win = win
        self.brush_size = 40  # diameter in image pixels
        self._stroke: dict | None = None
        self.menu = QMenu("&Mask", win)
        self.menu.setToolTipsVisible(True)
        self.from_matte = self._add("From &Person Matte", "Show the selected layer only on the person "
                                    "(the analysis matte)", self.mask_from_matte)
        self.from_face = self._add("From &Face", "Show the selected layer only on the face", self.mask_from_face)
        self.menu.addSeparator()
        self.invert = self._add("&Invert", "Swap where the selected layer shows and where it is hidden",
                                self.invert_mask)
        self.feather = self._add("&Feather…", "Soften the mask's edges by a number of pixels", self.feather_mask)
        self.clear = self._add("&Clear", "Remove the mask: the whole layer shows", self.clear_mask)
        self.menu.addSeparator()
        self.brush = make_action(win, "Mask &Brush", "Shift+M", BRUSH_TIP, checkable=True)
        self.brush.toggled.connect(self._on_brush)
        self.menu.addAction(self.brush)
        self.smaller = self._add("Brush Smaller", "Smaller mask brush", lambda: self.set_brush_size(
            self.brush_size / 1.25), "[")
        self.bigger = self._add("Brush Bigger", "Bigger mask brush", lambda: self.set_brush_size(
            self.brush_size * 1.25), "]")
        self.layer_menu = QMenu("&Layer", win)
        self.layer_menu.addAction(win.actions_.import_layer)
        self.layer_menu.addMenu(self.menu)
        bar = win.menuBar()
        lighting = next((a for a in bar.actions() if a.menu() and a.text().replace("&", "") == "Lighting"), None)
        if lighting is not None:
            bar.insertMenu(lighting, self.layer_menu)
        else:
            bar.addMenu(self.layer_menu)
        for act in self.menu.actions():
            win.addAction(act)  # shortcuts work even when the menu bar is hidden
        self.status = QLabel("", win)
        self.status.setToolTip(BRUSH_TIP)
        self.status.hide()
        win.statusBar().addPermanentWidget(self.status)
        self.outline = QGraphicsEllipseItem()
        self.outline.setPen(QPen(QColor(255, 255, 255, 200), 0))
        self.outline.setZValue(10)
        self.outline.setVisible(False)
        win.canvas.scene().addItem(self.outline)
        win.canvas.viewport().installEventFilter(self)
        win.canvas.viewport().setMouseTracking(True)
        win.layers_panel.maskMenuRequested.connect(self._popup_from_row)
        self.set_enabled(False)

    def _add(self, text: str, tip: str, slot, shortcut: str | None = None) -> QAction:  # type: ignore[no-untyped-def]
        act = make_action(self.win, text, shortcut, tip)
        act.triggered.connect(lambda _c=False: slot())
        self.menu.addAction(act)
        return act

    def set_enabled(self, has_doc: bool) -> None:
        self.menu.setEnabled(has_doc)
        for act in self.menu.actions():
            act.setEnabled(has_doc)
        if not has_doc and self.brush.isChecked():
            self.brush.setChecked(False)

    # --- the layer being masked ----------------------------------------------------------------------

    def target(self) -> Layer | None:
        """The selected layer; the relit layer when none is selected; None for the photo (no mask there)."""
        doc = self.win.doc
        if doc is None:
            return None
        uid = self.win.layers_panel.selected_uid()
        layer = doc.layer_by_uid(uid) if uid is not None else doc.relit_layer
        if layer is None or layer.kind == "base":
            self.win.statusBar().showMessage("Select a layer above the photo to edit its mask", 5000)
            return None
        return layer

    def _current(self, layer: Layer) -> np.ndarray:
        w, h = self.win.doc.size  # type: ignore[union-attr]
        return fit_mask(layer.mask, w, h) if layer.mask is not None else np.ones((h, w), np.float32)

    def _commit(self, text: str) -> None:
        """One undo step from the last committed snapshot to now, and a repaint."""
        win = self.win
        if win.doc is None or win._committed is None:
            return
        after = strip_state(win.doc.snapshot())
        win.undo_stack.push(StateCommand(win._apply_state, win._committed, after, text))
        win._committed = after
        win._refresh_document_views()

    def _set(self, layer: Layer, mask: np.ndarray | None, text: str) -> None:
        layer.mask = mask
        self._commit(f"Mask: {text}")

    # --- menu commands -------------------------------------------------------------------------------

    def _analysis_mask(self, which: str) -> np.ndarray | None:
        out = self.win._analysis
        arr = getattr(out, which, None) if out is not None else None
        if arr is None:
            self.win.statusBar().showMessage("The mask is available once the face analysis has finished", 5000)
        return arr

    def mask_from_matte(self) -> None:
        layer = self.target()
        matte = self._analysis_mask("matte") if layer is not None else None
        if layer is not None and matte is not None:
            self._set(layer, fit_mask(matte, *self.win.doc.size), "from person matte")  # type: ignore[union-attr]

    def mask_from_face(self) -> None:
        layer = self.target()
        face = self._analysis_mask("face") if layer is not None else None
        if layer is not None and face is not None:
            self._set(layer, fit_mask(face, *self.win.doc.size), "from face")  # type: ignore[union-attr]

    def invert_mask(self) -> None:
        layer = self.target()
        if layer is not None:
            self._set(layer, (1.0 - self._current(layer)).astype(np.float32), "invert")

    def clear_mask(self) -> None:
        layer = self.target()
        if layer is not None and layer.mask is not None:
            self._set(layer, None, "clear")

    def feather_mask(self) -> None:
        layer = self.target()
        if layer is None:
            return
        if layer.mask is None:
            self.win.statusBar().showMessage("The layer has no mask to feather", 5000)
            return
        radius, ok = QInputDialog.getInt(self.win, "Feather Mask", "Blur the mask's edges by (pixels):", 8, 1, 500)
        if ok:
            self._set(layer, feather_mask(self._current(layer), int(radius)), f"feather {int(radius)} px")

    def _popup_from_row(self, _uid: int) -> None:
        row = self.win.layers_panel.row(_uid)
        button = row.mask if row is not None else None
        if button is not None:
            self.menu.exec(button.mapToGlobal(button.rect().bottomLeft()))

    # --- brush -----------------------------------------------------------------------------------------

    def set_brush_size(self, size: float) -> None:
        self.brush_size = round(min(MAX_BRUSH, max(MIN_BRUSH, size)))
        self._show_status()
        self.outline.setRect(QRectF(self.outline.rect().center().x() - self.brush_size / 2,
                                    self.outline.rect().center().y() - self.brush_size / 2,
                                    self.brush_size, self.brush_size))

    def _show_status(self) -> None:
        self.status.setText(f"Mask brush {self.brush_size} px  (Alt hides)")
        self.status.setVisible(self.brush.isChecked())

    def _on_brush(self, on: bool) -> None:
        self._show_status()
        if not on:
            self.outline.setVisible(False)
            self._end()  # a stroke in progress is kept, as one undo step
        self.win.statusBar().showMessage("Mask brush: drag to reveal, Alt-drag to hide, [ / ] size" if on
                                         else "Mask brush off", 4000)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if not self.brush.isChecked() or kind not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
                                                      QEvent.Type.MouseButtonRelease, QEvent.Type.Leave):
            return False
        canvas = self.win.canvas
        if kind == QEvent.Type.Leave:
            self.outline.setVisible(False)
            return False
        assert isinstance(event, QMouseEvent)
        pt = canvas.mapToScene(event.position().toPoint())
        r = self.brush_size / 2
        self.outline.setRect(QRectF(pt.x() - r, pt.y() - r, 2 * r, 2 * r))
        self.outline.setVisible(canvas.has_document())
        if kind == QEvent.Type.MouseButtonPress:
            if event.button() != Qt.MouseButton.LeftButton or canvas._space:
                return False
            return self._begin(pt, bool(event.modifiers() & Qt.KeyboardModifier.AltModifier))
        if self._stroke is None:
            return False
        if kind == QEvent.Type.MouseMove:
            self._paint_to(pt)
        elif event.button() == Qt.MouseButton.LeftButton:
            self._paint_to(pt)
            self._end()
        return True

    def _begin(self, pt: QPointF, erase: bool) -> bool:
        layer = self.target()
        if layer is None:
            return False
        start = self._current(layer)
        self._stroke = {"uid": layer.uid, "start": start, "work": start.copy(), "cov": np.zeros_like(start),
                        "target": 0.0 if erase else 1.0, "last": None, "shown": 0.0, "touched": False,
                        "dirty": None}
        self._paint_to(pt)
        return True

    def _paint_to(self, pt: QPointF) -> None:
        s = self._stroke
        assert s is not None
        r = self.brush_size / 2
        p = np.array([pt.x(), pt.y()], np.float64)
        last = s["last"]
        n = 1 if last is None else max(1, int(np.ceil(np.linalg.norm(p - last) / max(1.0, r / 4))))
        for i in range(1, n + 1):
            q = p if last is None else last + (p - last) * (i / n)
            box = brush_dab(s["cov"], float(q[0]), float(q[1]), r)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            start, cov = s["start"][y0:y1, x0:x1], s["cov"][y0:y1, x0:x1]
            s["work"][y0:y1, x0:x1] = start + (np.float32(s["target"]) - start) * cov
            s["touched"] = True
            d = s["dirty"]
            s["dirty"] = box if d is None else (min(d[0], x0), min(d[1], y0), max(d[2], x1), max(d[3], y1))
        s["last"] = p
        now = time.perf_counter()
        if s["touched"] and now - s["shown"] >= LIVE_INTERVAL_S:
            s["shown"] = now
            self._show_stroke()

    def _show_stroke(self) -> None:
        s, doc = self._stroke, self.win.doc
        layer = doc.layer_by_uid(s["uid"]) if doc is not None and s is not None else None
        if layer is None:
            return
        dirty, s["dirty"] = s["dirty"], None
        layer.mask = s["work"]  # painted in place from here on; the stroke's end commits this array
        if dirty is not None and self.win.display.patch_mask(layer.uid, s["work"], dirty):
            return  # only the box the brush touched since the last update was re-encoded
        layer.mask = s["work"].copy()  # a new array: the canvas notices the change by identity
        self.win._refresh_canvas()

    def _end(self) -> None:
        if self._stroke is not None and self._stroke["touched"]:
            self._show_stroke()  # the dabs since the last live update
        s, self._stroke = self._stroke, None
        doc = self.win.doc
        layer = doc.layer_by_uid(s["uid"]) if doc is not None and s is not None else None
        if layer is None or not s["touched"]:
            return
        self._set(layer, s["work"], "paint")

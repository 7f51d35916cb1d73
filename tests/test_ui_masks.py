"""Layer masks in the window: Layer ▸ Mask commands, the mask brush, undo, and saving."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QInputDialog
from test_ui_app import WAIT_MS, dialogs, isolated_config, make_window, open_sample

from icportrait_studio.core.project import load_project
from icportrait_studio.ui.main_window import MainWindow

__all__ = ["dialogs", "isolated_config"]  # fixtures re-used from test_ui_app

TOL_16 = 2e-5  # masks are saved as 16-bit PNG


@pytest.fixture
def window(qtbot, dialogs):  # type: ignore[no-untyped-def]
    win = make_window(qtbot)
    yield win
    win.close()


def analysed(win: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    open_sample(win, qtbot)
    qtbot.waitUntil(lambda: win._analysis is not None and win._analysis.matte is not None, timeout=WAIT_MS)


def select_relit(win: MainWindow) -> int:
    uid = win.doc.relit_layer.uid
    win.layers_panel.list.setCurrentRow(win.layers_panel._order.index(uid))
    assert win.layers_panel.selected_uid() == uid
    return uid


def canvas_display_mask(win: MainWindow, uid: int) -> object:
    entry = win.display._arrays.get(uid)
    return None if entry is None else entry[1]


def test_mask_from_matte_limits_the_relit_layer_to_the_person(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    analysed(window, qtbot)
    uid = select_relit(window)
    masks = window.ext.masks
    count = window.undo_stack.count()
    masks.from_matte.trigger()
    doc = window.doc
    relit = doc.layer_by_uid(uid)
    mask = relit.mask
    assert mask is not None and mask.shape == doc.base.shape[:2] and mask.dtype == np.float32
    assert window.undo_stack.count() == count + 1 and window.undo_stack.text(count) == "Mask: from person matte"
    assert window.layers_panel.row(uid).mask.text() == "◐"
    out = doc.flatten()
    outside, inside = mask == 0.0, mask == 1.0
    assert outside.sum() > 1000 and inside.sum() > 1000  # the sample has both person and background
    np.testing.assert_allclose(out[outside], doc.base[outside], atol=1e-6)
    np.testing.assert_allclose(out[inside], relit.pixels[inside], atol=1e-6)
    assert np.abs(relit.pixels - doc.base)[inside].max() > 1e-3  # the relit layer differs from the photo there
    # the canvas re-encodes the layer with its mask
    qtbot.waitUntil(lambda: canvas_display_mask(window, uid) is mask, timeout=WAIT_MS)
    window.undo_stack.undo()
    assert window.doc.layer_by_uid(uid).mask is None
    qtbot.waitUntil(lambda: canvas_display_mask(window, uid) is None, timeout=WAIT_MS)
    window.undo_stack.redo()
    assert window.doc.layer_by_uid(uid).mask is mask


def test_invert_feather_clear_each_one_undo_step(window: MainWindow, qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    analysed(window, qtbot)
    uid = select_relit(window)
    masks = window.ext.masks
    masks.from_face.trigger()
    face = window.doc.layer_by_uid(uid).mask.copy()
    assert set(np.unique(face)) <= {0.0, 1.0} and face.any() and not face.all()
    count = window.undo_stack.count()
    masks.invert.trigger()
    assert window.undo_stack.text(count) == "Mask: invert"
    np.testing.assert_array_equal(window.doc.layer_by_uid(uid).mask, 1.0 - face)
    window.undo_stack.undo()
    np.testing.assert_array_equal(window.doc.layer_by_uid(uid).mask, face)  # exactly
    window.undo_stack.redo()
    np.testing.assert_array_equal(window.doc.layer_by_uid(uid).mask, 1.0 - face)
    monkeypatch.setattr(QInputDialog, "getInt", lambda *_a, **_k: (6, True))
    masks.feather.trigger()
    feathered = window.doc.layer_by_uid(uid).mask
    assert window.undo_stack.text(window.undo_stack.index() - 1) == "Mask: feather 6 px"
    assert np.any((feathered > 0.01) & (feathered < 0.99)) and not np.any((face > 0.01) & (face < 0.99))
    masks.clear.trigger()
    assert window.doc.layer_by_uid(uid).mask is None
    window.undo_stack.undo()
    assert window.doc.layer_by_uid(uid).mask is feathered
    # the photo gets no mask
    window.layers_panel.list.setCurrentRow(window.layers_panel._order.index(window.doc.layers[0].uid))
    n = window.undo_stack.count()
    masks.invert.trigger()
    assert window.doc.layers[0].mask is None and window.undo_stack.count() == n


def _stroke(widget, start: QPointF, end: QPointF, modifiers=Qt.KeyboardModifier.NoModifier, steps: int = 10) -> None:  # type: ignore[no-untyped-def]
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, modifiers, start.toPoint())
    for i in range(1, steps + 1):
        p = start + (end - start) * (i / steps)
        ev = QMouseEvent(QEvent.Type.MouseMove, p, widget.mapToGlobal(p), Qt.MouseButton.NoButton,
                         Qt.MouseButton.LeftButton, modifiers)
        QApplication.sendEvent(widget, ev)
        QApplication.processEvents()
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, modifiers, end.toPoint())


def test_brush_stroke_paints_under_the_stroke_only_and_undoes_in_one_step(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    uid = select_relit(window)
    masks = window.ext.masks
    masks.brush.trigger()
    assert masks.brush.isChecked() and masks.status.isVisible() and "40 px" in masks.status.text()
    masks.bigger.trigger()
    assert masks.brush_size == 50 and "50 px" in masks.status.text()
    masks.smaller.trigger()
    assert masks.brush_size == 40
    canvas = window.canvas
    w, h = window.doc.size
    # a horizontal Alt-stroke (hide) across the middle of the image, in view coordinates
    a_img, b_img = QPointF(w * 0.25, h * 0.5), QPointF(w * 0.75, h * 0.5)
    a, b = QPointF(canvas.mapFromScene(a_img)), QPointF(canvas.mapFromScene(b_img))
    count = window.undo_stack.count()
    _stroke(canvas.viewport(), a, b, Qt.KeyboardModifier.AltModifier)
    assert window.undo_stack.count() == count + 1 and window.undo_stack.text(count) == "Mask: paint"
    mask = window.doc.layer_by_uid(uid).mask
    assert mask is not None and mask.shape == (h, w)
    # where the stroke went the layer is hidden; far from it, the (new, all-visible) mask is untouched
    p0, p1 = canvas.mapToScene(a.toPoint()), canvas.mapToScene(b.toPoint())
    y, xs = int(p0.y()), slice(int(p0.x()) + 2, int(p1.x()) - 2)
    assert np.all(mask[y, xs] < 0.01)
    r = masks.brush_size / 2
    far = np.ones_like(mask, bool)
    far[max(0, int(p0.y() - r - 2)):int(p0.y() + r + 3), max(0, int(p0.x() - r - 2)):int(p1.x() + r + 3)] = False
    assert np.all(mask[far] == 1.0) and far.sum() > 0.5 * mask.size
    # a plain stroke reveals again (paints 1) on part of it
    _stroke(canvas.viewport(), a, QPointF((a.x() + b.x()) / 2, a.y()))
    assert window.undo_stack.count() == count + 2
    mask2 = window.doc.layer_by_uid(uid).mask
    assert mask2[y, int(p0.x()) + 2] > 0.99 and mask2[y, int(p1.x()) - 3] < 0.01
    window.undo_stack.undo()
    assert window.doc.layer_by_uid(uid).mask is mask
    window.undo_stack.undo()
    assert window.doc.layer_by_uid(uid).mask is None
    # brush off: a left drag no longer paints
    masks.brush.trigger()
    assert not masks.brush.isChecked() and not masks.status.isVisible()
    n = window.undo_stack.count()
    _stroke(canvas.viewport(), a, b)
    assert window.doc.layer_by_uid(uid).mask is None and window.undo_stack.count() == n


def test_edited_mask_survives_save_and_load(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    analysed(window, qtbot)
    uid = select_relit(window)
    masks = window.ext.masks
    masks.from_matte.trigger()
    masks.invert.trigger()
    masks.brush.trigger()
    canvas = window.canvas
    w, h = window.doc.size
    _stroke(canvas.viewport(), QPointF(canvas.mapFromScene(QPointF(w * 0.1, h * 0.1))),
            QPointF(canvas.mapFromScene(QPointF(w * 0.4, h * 0.2))))
    mask = window.doc.layer_by_uid(uid).mask.copy()
    path = tmp_path / "masked.icps"
    window.save_project(str(path))
    qtbot.waitUntil(lambda: path.exists() and not window.is_dirty() and window.jobs_idle(), timeout=WAIT_MS)
    doc2, _history = load_project(path)
    relit2 = doc2.layer_of_kind("relit")
    assert relit2.mask is not None and relit2.mask.shape == mask.shape
    assert np.abs(relit2.mask - mask).max() < TOL_16


def test_undo_past_mask_edits_after_reopening_gives_the_old_masks(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    analysed(window, qtbot)
    uid = select_relit(window)
    masks = window.ext.masks
    masks.from_matte.trigger()
    matte = window.doc.layer_by_uid(uid).mask.copy()
    masks.invert.trigger()
    masks.clear.trigger()
    masks.from_face.trigger()
    face = window.doc.layer_by_uid(uid).mask.copy()
    path = tmp_path / "history.icps"
    window.save_project(str(path))
    qtbot.waitUntil(lambda: path.exists() and not window.is_dirty() and window.jobs_idle(), timeout=WAIT_MS)
    _doc, history = load_project(path)
    assert len(history.masks) == 3  # matte, its inverse, the face: each distinct mask stored once
    import zipfile

    with zipfile.ZipFile(path) as zf:  # the face is the current mask: kept once, in the layer's own file
        assert len([n for n in zf.namelist() if n.startswith("history/masks/")]) == 2

    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.doc.project_path == str(path) and window.jobs_idle(), timeout=WAIT_MS)
    relit = window.doc.layer_of_kind("relit")

    def mask_now():  # type: ignore[no-untyped-def]
        return window.doc.layer_by_uid(relit.uid).mask

    assert np.abs(mask_now() - face).max() < TOL_16
    window.undo_stack.undo()  # from face -> cleared
    assert mask_now() is None
    window.undo_stack.undo()  # clear -> inverted matte
    assert np.abs(mask_now() - (1.0 - matte)).max() < TOL_16
    window.undo_stack.undo()  # invert -> matte
    assert np.abs(mask_now() - matte).max() < TOL_16
    window.undo_stack.undo()  # from matte -> no mask
    assert mask_now() is None
    for _ in range(4):
        window.undo_stack.redo()
    assert np.abs(mask_now() - face).max() < TOL_16


def test_a_stroke_redraws_only_the_brushed_box_and_ends_exactly_like_a_full_redraw(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    from icportrait_studio.ui.work import encode_display

    analysed(window, qtbot)
    uid = select_relit(window)
    masks = window.ext.masks
    masks.from_matte.trigger()
    qtbot.waitUntil(lambda: canvas_display_mask(window, uid) is window.doc.layer_by_uid(uid).mask
                    and window.jobs_idle(), timeout=WAIT_MS)
    before = window.display._arrays[uid][2].copy()
    shown = window.display._layers[uid].array
    window.canvas.fit()
    masks.brush.trigger()
    canvas = window.canvas
    w, h = window.doc.size
    a = QPointF(canvas.mapFromScene(QPointF(w * 0.1, h * 0.1)))
    b = QPointF(canvas.mapFromScene(QPointF(w * 0.3, h * 0.15)))
    _stroke(canvas.viewport(), a, b, Qt.KeyboardModifier.AltModifier)
    layer = window.doc.layer_by_uid(uid)
    # no display job: the display already shows the committed mask, patched in place on a copy
    entry = window.display._arrays[uid]
    assert entry[1] is layer.mask and entry[2] is window.display._layers[uid].array and entry[2] is not shown
    full = encode_display(layer.pixels, window.doc.alpha, layer.mask)
    assert np.array_equal(entry[2], full)  # exactly what a full re-encode gives
    changed = np.any(entry[2] != before, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any() and xs.max() < w * 0.3 + masks.brush_size and ys.max() < h * 0.15 + masks.brush_size
    # the render cache's array was not touched
    assert np.array_equal(shown, before)


def test_patched_zoom_levels_match_a_fresh_downscale() -> None:
    import cv2

    from icportrait_studio.ui.canvas import DisplayLayer

    rng = np.random.default_rng(3)
    arr = rng.integers(0, 255, (256, 320, 4), dtype=np.uint8)
    dl = DisplayLayer(1, "relit", arr, True)
    dl.level_for(70)  # caches the 1/4 level
    dl.level_for(150)  # and the 1/2 level
    arr[37:91, 101:166] = 0
    dl.patch_mips((101, 37, 166, 91))
    for level, small in dl._mip_arrays.items():
        fresh = cv2.resize(arr, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
        assert np.array_equal(small, fresh), level

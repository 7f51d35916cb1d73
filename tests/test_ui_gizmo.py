"""Light-rig gizmo, view sphere and light panel: mapping, mouse interaction and the edit protocol."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from icportrait_studio.core.lights import Light, LightRig, direction_from_angles
from icportrait_studio.core.view import MAX_PITCH, MAX_YAW
from icportrait_studio.ui.gizmo import LightRigGizmo, shade_sphere
from icportrait_studio.ui.light_panel import LightPanel
from icportrait_studio.ui.view_sphere import ViewSphere, ViewSpherePanel

pytestmark = pytest.mark.qt

RIG = LightRig(lights=(Light(azimuth=40.0, elevation=20.0, size=0.3), Light(azimuth=150.0, elevation=10.0)),
               ambient=0.1)


def _angle_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    da, db = direction_from_angles(*a), direction_from_angles(*b)
    dot = max(-1.0, min(1.0, sum(x * y for x, y in zip(da, db, strict=True))))
    return math.degrees(math.acos(dot))


def _pt(p: QPointF) -> QPoint:
    return QPoint(round(p.x()), round(p.y()))


def _drag(widget, start: QPoint, points: list[QPoint], modifier=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, modifier, start)
    for p in points:
        QTest.mouseMove(widget, p)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, modifier, points[-1])


@pytest.fixture
def gizmo(qtbot) -> LightRigGizmo:
    g = LightRigGizmo()
    qtbot.addWidget(g)
    g.resize(300, 300)
    g.setRig(RIG)
    g.show()
    qtbot.waitExposed(g)
    return g


@pytest.fixture
def panel(qtbot) -> LightPanel:
    p = LightPanel()
    qtbot.addWidget(p)
    p.resize(360, 900)
    p.setRig(RIG)
    p.show()
    qtbot.waitExposed(p)
    return p


def test_point_angles_round_trip_front_and_back(gizmo):
    for az in range(-170, 181, 20):
        for el in range(-75, 76, 15):
            got = gizmo.anglesAt(gizmo.pointFor(az, el))
            assert _angle_between(got, (az, el)) < 0.5, (az, el, got)
            assert abs(got[1] - el) < 0.5
            assert min(abs(got[0] - az), 360 - abs(got[0] - az)) < 0.5 or abs(el) > 89
    c = QPointF(gizmo.width() / 2, gizmo.height() / 2)
    assert gizmo.pointFor(0, 0) == c
    # Front lights land inside the silhouette (R/2), back lights outside it.
    radius = gizmo.pointFor(0, 90).y()
    assert c.y() - radius == pytest.approx(gizmo.pointFor(90, 0).x() - c.x(), abs=1e-6)
    back = gizmo.pointFor(150, 10)
    assert math.hypot(back.x() - c.x(), back.y() - c.y()) > c.y() - radius
    # Screen orientation: +azimuth is to the right, +elevation up.
    assert gizmo.pointFor(30, 0).x() > c.x() and gizmo.pointFor(0, 30).y() < c.y()


def test_shading_follows_the_lights():
    img = shade_sphere(LightRig(lights=(Light(azimuth=60.0, elevation=0.0),), ambient=0.0), res=64)
    row = img[32, :, 0].astype(int)
    assert row[40] > row[24] + 40  # lit from the image's right
    assert img[0, 0, 3] == 0 and img[32, 32, 3] == 255


def test_drag_front_light_emits_moves_and_finish(gizmo, qtbot):
    moves, finished = [], []
    gizmo.lightMoved.connect(lambda i, az, el: moves.append((i, az, el)))
    gizmo.dragFinished.connect(finished.append)
    start = _pt(gizmo.handlePosition(0))
    path = [start + QPoint(10, 0), start + QPoint(20, -10), start + QPoint(30, -25)]
    _drag(gizmo, start, path)
    assert len(moves) >= 2 and finished == [0]
    az, el = gizmo.anglesAt(QPointF(path[-1]))
    assert moves[-1][0] == 0
    assert moves[-1][1] == pytest.approx(az, abs=1e-6) and moves[-1][2] == pytest.approx(el, abs=1e-6)
    assert gizmo.selectedIndex() == 0
    # The local override keeps the handle under the mouse until the owner calls setRig.
    assert gizmo.handlePosition(0).x() == pytest.approx(path[-1].x(), abs=1.0)


def test_click_without_drag_only_selects(gizmo):
    selected, moves = [], []
    gizmo.selectionChanged.connect(selected.append)
    gizmo.lightMoved.connect(lambda *a: moves.append(a))
    QTest.mouseClick(gizmo, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _pt(gizmo.handlePosition(1)))
    assert selected == [1] and gizmo.selectedIndex() == 1 and moves == []


def test_back_light_can_be_selected_and_dragged(gizmo):
    moves, finished = [], []
    gizmo.lightMoved.connect(lambda i, az, el: moves.append((i, az, el)))
    gizmo.dragFinished.connect(finished.append)
    start = _pt(gizmo.handlePosition(1))
    end = start + QPoint(-5, -30)
    _drag(gizmo, start, [start + QPoint(-2, -10), end])
    assert gizmo.selectedIndex() == 1 and finished == [1]
    i, az, el = moves[-1]
    assert i == 1 and (az, el) == pytest.approx(gizmo.anglesAt(QPointF(end)), abs=1e-6)
    assert direction_from_angles(az, el)[2] < 0  # still behind the head
    assert el > 10


def test_shift_drag_keeps_light_level(gizmo):
    moves = []
    gizmo.lightMoved.connect(lambda i, az, el: moves.append((az, el)))
    start = _pt(gizmo.handlePosition(0))
    shift = Qt.KeyboardModifier.ShiftModifier
    QTest.mousePress(gizmo, Qt.MouseButton.LeftButton, shift, start)
    for offset in (QPoint(5, -15), QPoint(15, -40)):  # QTest.mouseMove cannot carry modifiers
        pos = QPointF(start + offset)
        QApplication.sendEvent(gizmo, QMouseEvent(QEvent.Type.MouseMove, pos, gizmo.mapToGlobal(pos),
                                                  Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, shift))
    QTest.mouseRelease(gizmo, Qt.MouseButton.LeftButton, shift, start + QPoint(15, -40))
    assert len(moves) >= 2 and all(el == 0.0 for _, el in moves)
    assert moves[-1][0] == pytest.approx(gizmo.anglesAt(QPointF(start + QPoint(15, -40)))[0])


def test_ghost_click_adopts(gizmo):
    adopted = []
    gizmo.ghostAdopted.connect(lambda az, el: adopted.append((az, el)))
    gizmo.setGhost(-60.0, 30.0)
    QTest.mouseClick(gizmo, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     _pt(gizmo.pointFor(-60.0, 30.0)))
    assert adopted == [(-60.0, 30.0)]


def test_panel_drag_emits_preview_then_final_edit(panel):
    edits = []
    panel.rigEdited.connect(lambda rig, desc, final: edits.append((rig, desc, final)))
    g = panel.gizmo
    start = _pt(g.handlePosition(0))
    end = start + QPoint(-40, 15)
    _drag(g, start, [start + QPoint(-10, 5), start + QPoint(-25, 10), end])
    assert any(not final for _, _, final in edits[:-1])
    rig, desc, final = edits[-1]
    assert final and desc == "Move light 1"
    az, el = g.anglesAt(QPointF(end))
    assert rig.lights[0].azimuth == pytest.approx(az, abs=1e-6)
    assert rig.lights[0].elevation == pytest.approx(el, abs=1e-6)
    assert rig.lights[1] == RIG.lights[1] and panel.rig() == rig
    assert panel.azimuth_spin.value() == pytest.approx(az, abs=0.06)


def test_double_click_adds_and_delete_removes(panel, qtbot):
    edits = []
    panel.rigEdited.connect(lambda rig, desc, final: edits.append((rig, desc, final)))
    g = panel.gizmo
    target = _pt(g.pointFor(-50.0, -20.0))
    QTest.mouseDClick(g, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, target)
    assert len(panel.rig().lights) == 3 and edits[-1][1:] == ("Add light", True)
    new = panel.rig().lights[2]
    assert (new.azimuth, new.elevation) == pytest.approx(g.anglesAt(QPointF(target)), abs=1e-6)
    assert panel.selectedIndex() == 2 and g.selectedIndex() == 2
    g.setFocus()
    QTest.keyClick(g, Qt.Key.Key_Delete)
    assert len(panel.rig().lights) == 2 and edits[-1][1:] == ("Remove light 3", True)
    assert panel.selectedIndex() == 1  # selection stays on a light that exists


def test_buttons_add_duplicate_remove_keep_selection(panel):
    panel.setSelectedIndex(0)
    panel.duplicate_button.click()
    lights = panel.rig().lights
    assert len(lights) == 3 and panel.selectedIndex() == 2
    assert lights[2].azimuth == pytest.approx(lights[0].azimuth + 15.0)
    panel.add_button.click()
    assert len(panel.rig().lights) == 4 and panel.selectedIndex() == 3
    panel.setSelectedIndex(0)
    panel.remove_button.click()
    assert len(panel.rig().lights) == 3 and panel.selectedIndex() == 0
    assert panel.rig().lights[0] == RIG.lights[1]


def test_arrow_keys_nudge_selected_light(panel):
    edits = []
    panel.rigEdited.connect(lambda rig, desc, final: edits.append((desc, final)))
    g = panel.gizmo
    panel.setSelectedIndex(0)
    g.setFocus()
    QTest.keyClick(g, Qt.Key.Key_Right)
    QTest.keyClick(g, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    light = panel.rig().lights[0]
    assert light.azimuth == pytest.approx(41.0) and light.elevation == pytest.approx(30.0)
    assert edits[-1] == ("Move light 1", True)


def test_preset_combo_sets_rig(panel):
    presets = panel.presets()
    if not presets:
        pytest.skip("no presets in resources/")
    edits = []
    panel.rigEdited.connect(lambda rig, desc, final: edits.append((rig, desc, final)))
    preset = next((p for p in presets if p.name == "rembrandt"), presets[0])
    index = panel.preset_combo.findText(preset.name)
    panel.preset_combo.setCurrentIndex(index)
    panel.preset_combo.activated.emit(index)
    assert panel.rig().lights == preset.rig.lights
    assert panel.rig().ambient == preset.rig.ambient
    assert edits[-1][1:] == (f"Preset: {preset.name}", True)
    assert panel.selectedIndex() == 0


def test_kelvin_and_colour_dialog_slot(panel):
    panel.setSelectedIndex(1)
    panel.kelvin_spin.setValue(3200)
    r, _g, b = panel.rig().lights[1].color
    assert r > b and r == pytest.approx(1.0)
    panel.applyColor(QColor("#3366ff"))
    assert panel.rig().lights[1].color == pytest.approx((0x33 / 255, 0x66 / 255, 1.0))
    assert panel.color_button.text() == "#3366ff"
    assert panel.rig().lights[0] == RIG.lights[0]


def test_controls_edit_model(panel):
    edits = []
    panel.rigEdited.connect(lambda rig, desc, final: edits.append((desc, final)))
    panel.setSelectedIndex(0)
    panel.intensity.spin.setValue(2.5)
    assert panel.rig().lights[0].intensity == 2.5 and edits[-1] == ("Light 1 intensity 2.50", True)
    panel.intensity.slider.setSliderDown(True)
    panel.intensity.slider.setValue(300)
    assert edits[-1] == ("Light 1 intensity 3.00", False)
    panel.intensity.slider.setSliderDown(False)
    assert edits[-1] == ("Light 1 intensity 3.00", True)
    assert not panel.distance_spin.isEnabled()
    panel.kind_combo.setCurrentIndex(1)
    panel.kind_combo.activated.emit(1)
    assert panel.rig().lights[0].kind == "point" and panel.distance_spin.isEnabled()
    panel.ambient.spin.setValue(0.3)
    assert panel.rig().ambient == pytest.approx(0.3) and edits[-1] == ("Ambient 0.30", True)
    panel.background_check.setChecked(True)
    assert panel.rig().relight_background
    assert panel.catchlights_check.isChecked() and panel.rig().catchlights
    panel.catchlights_check.setChecked(False)
    assert not panel.rig().catchlights and edits[-1] == ("Move catchlights off", True)
    assert not panel.texture_check.isChecked() and not panel.rig().keep_texture
    panel.texture_check.setChecked(True)
    assert panel.rig().keep_texture and edits[-1] == ("Keep own skin texture on", True)
    panel.applyPreset(panel._presets[0].name)  # a choice about the photo: a preset keeps it
    assert panel.rig().keep_texture and panel.texture_check.isChecked()
    panel.setRig(LightRig(lights=(Light(),)))
    assert not panel.texture_check.isChecked()


def test_set_rig_does_not_emit(panel, qtbot):
    edits = []
    panel.rigEdited.connect(lambda *a: edits.append(a))
    other = LightRig(lights=(Light(azimuth=-30.0, elevation=5.0, intensity=2.0, kind="point", distance=4.0),),
                     ambient=0.4, keep_original=0.5)
    panel.setSelectedIndex(1)
    panel.setRig(other)
    assert edits == []
    assert panel.rig() == other and panel.gizmo.rig() == other
    assert panel.selectedIndex() == 0  # clamped to the lights that exist
    assert panel.intensity.value() == 2.0 and panel.ambient.value() == pytest.approx(0.4)
    panel.setRig(RIG, emit=True)
    assert len(edits) == 1 and edits[0][2] is True


def test_source_light_ghost_and_adopt(panel):
    panel.setSourceLight(-70.0, 25.0, "#ffd8b0")
    assert panel.gizmo.ghost() == (-70.0, 25.0) and "-70" in panel.source_label.text()
    panel.setSelectedIndex(1)
    panel.adopt_button.click()
    light = panel.rig().lights[1]
    assert (light.azimuth, light.elevation) == (-70.0, 25.0)
    assert light.color == pytest.approx((1.0, 0xD8 / 255, 0xB0 / 255), abs=1e-3)
    panel.setSourceLight(None)
    assert panel.gizmo.ghost() is None and not panel.adopt_button.isEnabled()


def test_view_sphere_drag_and_reset(qtbot):
    s = ViewSphere()
    qtbot.addWidget(s)
    s.resize(120, 120)
    s.show()
    qtbot.waitExposed(s)
    changed, finished = [], []
    s.viewChanged.connect(lambda y, p: changed.append((y, p)))
    s.viewFinished.connect(lambda y, p: finished.append((y, p)))
    c = QPoint(60, 60)
    _drag(s, c, [c + QPoint(10, 0), c + QPoint(20, 0)])
    assert changed and finished[-1][0] > 0 and finished[-1][1] == 0
    s.setView(0, 0)
    _drag(s, c, [c + QPoint(0, -15)])
    assert finished[-1][1] > 0 and finished[-1][0] == 0
    _drag(s, c, [c + QPoint(-500, 500)])
    assert finished[-1] == (-MAX_YAW, -MAX_PITCH) and s.view() == (-MAX_YAW, -MAX_PITCH)
    QTest.mouseDClick(s, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, c)
    assert s.view() == (0.0, 0.0) and finished[-1] == (0.0, 0.0) and changed[-1] == (0.0, 0.0)
    s.setView(100, -100)
    assert s.view() == (MAX_YAW, -MAX_PITCH)


def test_view_sphere_panel(qtbot):
    p = ViewSpherePanel()
    qtbot.addWidget(p)
    finished, follow = [], []
    p.viewFinished.connect(lambda y, pi: finished.append((y, pi)))
    p.lightsFollowChanged.connect(follow.append)
    p.setView(10, -5)
    assert p.view() == (10, -5) and p.yaw_spin.value() == 10 and finished == []
    p.yaw_spin.setValue(20)
    assert finished[-1] == (20, -5)
    p.follow_check.setChecked(True)
    assert follow == [True]
    p.reset_button.click()
    assert p.view() == (0, 0) and finished[-1] == (0, 0) and p.pitch_spin.value() == 0


def test_panel_renders_something(panel):
    img = panel.grab().toImage()
    colours = {img.pixel(x, y) for x in range(0, img.width(), 3) for y in range(0, img.height(), 3)}
    assert len(colours) > 100
    g = panel.gizmo.grab().toImage()
    centre = QColor(g.pixel(g.width() // 2, g.height() // 2))
    assert centre.lightness() > 60  # the sphere is lit, not a blank widget

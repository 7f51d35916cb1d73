"""The light-rig editor: the gizmo, presets, and the controls for the selected light and the global terms.

The panel owns a copy of the rig as its model. Every change goes out as ``rigEdited(rig, description,
final)``: ``final=False`` while a drag or slider move is in progress (for a live preview), ``final=True``
once the change is committed (drag released, spin box edited, button clicked, preset chosen). The app
pushes final edits onto its undo stack and answers undo / redo with :meth:`LightPanel.setRig`, which
never re-emits, so undo cannot loop back into a new undo entry.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from icportrait_studio.core.lights import Light, LightRig, color_to_hex, kelvin_to_rgb
from icportrait_studio.core.presets import Preset, list_presets
from icportrait_studio.ui.gizmo import LightRigGizmo, wrap_azimuth


class SliderSpin(QWidget):
    """A slider and a spin box showing one float; ``edited(value, final)`` only for user edits.

    Slider drags report ``final=False`` while the handle is down and ``final=True`` on release; clicks on
    the track, keyboard steps and spin-box commits are final straight away.
    """

    edited = Signal(float, bool)

    def __init__(self, lo: float, hi: float, step: float, decimals: int = 2, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._scale = 10**decimals
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(round(lo * self._scale), round(hi * self._scale))
        self.slider.setSingleStep(max(1, round(step * self._scale)))
        self.slider.setPageStep(max(1, round(step * self._scale * 10)))
        self.spin = QDoubleSpinBox(self)
        self.spin.setRange(lo, hi)
        self.spin.setDecimals(decimals)
        self.spin.setSingleStep(step)
        self.spin.setKeyboardTracking(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.valueChanged.connect(self._on_slider)
        self.slider.sliderReleased.connect(lambda: self.edited.emit(self.value(), True))
        self.spin.valueChanged.connect(self._on_spin)

    def value(self) -> float:
        return self.spin.value()

    def setValue(self, value: float) -> None:
        """Show a value without emitting ``edited``."""
        for w in (self.slider, self.spin):
            w.blockSignals(True)
        self.spin.setValue(value)
        self.slider.setValue(round(value * self._scale))
        for w in (self.slider, self.spin):
            w.blockSignals(False)

    def _on_slider(self, raw: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(raw / self._scale)
        self.spin.blockSignals(False)
        self.edited.emit(self.value(), not self.slider.isSliderDown())

    def _on_spin(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * self._scale))
        self.slider.blockSignals(False)
        self.edited.emit(value, True)


def _double_spin(lo: float, hi: float, step: float, decimals: int, suffix: str = "") -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    spin.setSuffix(suffix)
    spin.setKeyboardTracking(False)
    return spin


class LightPanel(QWidget):
    """Rig editor; see the module docstring for the edit / undo protocol."""

    rigEdited = Signal(object, str, bool)
    selectionChanged = Signal(int)
    sourceAdopted = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rig = LightRig()
        self._selected = -1
        self._presets: list[Preset] = []
        self._source: tuple[float, float, str | None] | None = None
        self.gizmo = LightRigGizmo(self)
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_preset_row())
        layout.addWidget(self.gizmo, 1)
        layout.addLayout(self._build_buttons())
        layout.addLayout(self._build_source_row())
        layout.addWidget(self._build_light_group())
        layout.addWidget(self._build_global_group())
        self._connect()
        self.reloadPresets()
        self._refresh()

    # ----------------------------------------------------------------- build
    def _build_preset_row(self) -> QHBoxLayout:
        self.preset_combo = QComboBox(self)
        self.preset_combo.setToolTip("Start from a classic portrait lighting pattern")
        row = QHBoxLayout()
        row.addWidget(QLabel("Preset", self))
        row.addWidget(self.preset_combo, 1)
        return row

    def _build_buttons(self) -> QHBoxLayout:
        self.add_button = QPushButton("Add", self)
        self.add_button.setToolTip("Add a light (or double-click on the sphere)")
        self.duplicate_button = QPushButton("Duplicate", self)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Remove the selected light (Delete)")
        row = QHBoxLayout()
        for b in (self.add_button, self.duplicate_button, self.remove_button):
            row.addWidget(b)
        return row

    def _build_source_row(self) -> QHBoxLayout:
        self.source_label = QLabel("Estimated source: none", self)
        self.source_label.setToolTip("The main light found in the photo (the dashed handle on the sphere)")
        self.adopt_button = QPushButton("Adopt", self)
        self.adopt_button.setToolTip("Move the selected light to where the photo's own light comes from")
        row = QHBoxLayout()
        row.addWidget(self.source_label, 1)
        row.addWidget(self.adopt_button)
        return row

    def _build_light_group(self) -> QGroupBox:
        self.light_group = QGroupBox("Selected light", self)
        self.enabled_check = QCheckBox("On", self)
        self.azimuth_spin = _double_spin(-180.0, 180.0, 1.0, 1, "°")
        self.azimuth_spin.setWrapping(True)
        self.azimuth_spin.setToolTip("+ lights from the image's right")
        self.elevation_spin = _double_spin(-90.0, 90.0, 1.0, 1, "°")
        self.elevation_spin.setToolTip("+ lights from above")
        self.intensity = SliderSpin(0.0, 4.0, 0.05, 2, self)
        self.size_control = SliderSpin(0.0, 1.0, 0.01, 2, self)
        self.size_control.setToolTip("0: hard, point-like light; 1: very large, soft source")
        self.color_button = QPushButton(self)
        self.color_button.setToolTip("Pick the light's colour")
        self.kelvin_spin = QDoubleSpinBox(self)
        self.kelvin_spin.setRange(1000.0, 12000.0)
        self.kelvin_spin.setDecimals(0)
        self.kelvin_spin.setSingleStep(100.0)
        self.kelvin_spin.setValue(6500.0)
        self.kelvin_spin.setSuffix(" K")
        self.kelvin_spin.setKeyboardTracking(False)
        self.kelvin_spin.setToolTip("Set the colour from a colour temperature (3200 K tungsten, 5600 K daylight)")
        color_row = QHBoxLayout()
        color_row.addWidget(self.color_button, 1)
        color_row.addWidget(self.kelvin_spin)
        self.kind_combo = QComboBox(self)
        self.kind_combo.addItems(["directional", "point"])
        self.distance_spin = _double_spin(1.1, 20.0, 0.1, 1)
        self.distance_spin.setToolTip("Point lights only: distance from the head's centre, in head radii")
        form = QFormLayout(self.light_group)
        form.addRow(self.enabled_check)
        form.addRow("Azimuth", self.azimuth_spin)
        form.addRow("Elevation", self.elevation_spin)
        form.addRow("Intensity", self.intensity)
        form.addRow("Size", self.size_control)
        form.addRow("Colour", color_row)
        form.addRow("Kind", self.kind_combo)
        form.addRow("Distance", self.distance_spin)
        return self.light_group

    def _build_global_group(self) -> QGroupBox:
        group = QGroupBox("Global", self)
        self.ambient = SliderSpin(0.0, 1.0, 0.01, 2, self)
        self.ambient.setToolTip("Uniform fill light")
        self.keep_original = SliderSpin(0.0, 1.0, 0.01, 2, self)
        self.keep_original.setToolTip("Mix back the photo's own lighting (0: fully relit, 1: original)")
        self.specular = SliderSpin(0.0, 1.0, 0.01, 2, self)
        self.specular.setToolTip("Strength of skin highlights")
        self.background_check = QCheckBox("Relight background", self)
        self.catchlights_check = QCheckBox("Move catchlights", self)
        self.catchlights_check.setToolTip("The lights' reflections in the eyes follow the rig "
                                          "(off: the eyes keep the photo's own)")
        self.texture_check = QCheckBox("Keep own skin texture", self)
        self.texture_check.setToolTip("Where the lights brighten the face far beyond the photo's light (its "
                                      "shadow side), keep that skin's own detail, a mole or a scar (off: the "
                                      "other side's skin is lent there, which leaves no trace of the shadow)")
        form = QFormLayout(group)
        form.addRow("Ambient", self.ambient)
        form.addRow("Keep original", self.keep_original)
        form.addRow("Specular", self.specular)
        form.addRow(self.background_check)
        form.addRow(self.catchlights_check)
        form.addRow(self.texture_check)
        return group

    def _connect(self) -> None:
        g = self.gizmo
        g.selectionChanged.connect(self._on_gizmo_selection)
        g.lightMoved.connect(self._on_light_moved)
        g.dragFinished.connect(lambda i: self._emit_edit(f"Move light {i + 1}", True))
        g.lightAddRequested.connect(lambda az, el: self.addLight(az, el))
        g.lightRemoveRequested.connect(self.removeLight)
        g.ghostAdopted.connect(lambda az, el: self.adoptSource())
        self.preset_combo.activated.connect(self._on_preset_activated)
        self.add_button.clicked.connect(lambda: self.addLight())
        self.duplicate_button.clicked.connect(self.duplicateLight)
        self.remove_button.clicked.connect(lambda: self.removeLight(self._selected))
        self.adopt_button.clicked.connect(self.adoptSource)
        self.enabled_check.toggled.connect(
            lambda on: self._edit_light(f"{'Enable' if on else 'Disable'} light {{n}}", True, enabled=on))
        self.azimuth_spin.valueChanged.connect(
            lambda v: self._edit_light(f"Light {{n}} azimuth {v:.0f}°", True, azimuth=wrap_azimuth(v)))
        self.elevation_spin.valueChanged.connect(
            lambda v: self._edit_light(f"Light {{n}} elevation {v:.0f}°", True, elevation=v))
        self.intensity.edited.connect(
            lambda v, final: self._edit_light(f"Light {{n}} intensity {v:.2f}", final, intensity=v))
        self.size_control.edited.connect(lambda v, final: self._edit_light(f"Light {{n}} size {v:.2f}", final, size=v))
        self.color_button.clicked.connect(self._pick_color)
        self.kelvin_spin.valueChanged.connect(self.applyKelvin)
        self.kind_combo.activated.connect(
            lambda i: self._edit_light(f"Light {{n}} {self.kind_combo.itemText(i)}", True,
                                       kind=self.kind_combo.itemText(i)))
        self.distance_spin.valueChanged.connect(
            lambda v: self._edit_light(f"Light {{n}} distance {v:.1f}", True, distance=v))
        self.ambient.edited.connect(lambda v, final: self._edit_rig(f"Ambient {v:.2f}", final, ambient=v))
        self.keep_original.edited.connect(
            lambda v, final: self._edit_rig(f"Keep original {v:.2f}", final, keep_original=v))
        self.specular.edited.connect(lambda v, final: self._edit_rig(f"Specular {v:.2f}", final, specular=v))
        self.background_check.toggled.connect(
            lambda on: self._edit_rig(f"Relight background {'on' if on else 'off'}", True, relight_background=on))
        self.catchlights_check.toggled.connect(
            lambda on: self._edit_rig(f"Move catchlights {'on' if on else 'off'}", True, catchlights=on))
        self.texture_check.toggled.connect(
            lambda on: self._edit_rig(f"Keep own skin texture {'on' if on else 'off'}", True, keep_texture=on))

    # ----------------------------------------------------------------- model
    def rig(self) -> LightRig:
        return self._rig

    def setRig(self, rig: LightRig, emit: bool = False) -> None:
        """Show ``rig`` (after undo / redo / loading); emits ``rigEdited`` only when ``emit`` is true.

        The selection is kept where it was if that light still exists, else moved to the nearest one.
        """
        self._rig = rig
        n = len(rig.lights)
        self._set_selected(min(self._selected, n - 1) if self._selected >= 0 else (0 if n else -1))
        self._refresh()
        if emit:
            self.rigEdited.emit(rig, f"Preset: {rig.name}" if rig.name else "Set lights", True)

    def selectedIndex(self) -> int:
        return self._selected

    def setSelectedIndex(self, index: int) -> None:
        self._set_selected(index if 0 <= index < len(self._rig.lights) else -1)
        self._refresh()

    def presets(self) -> list[Preset]:
        return list(self._presets)

    def reloadPresets(self) -> None:
        """(Re)fill the preset combo, with thumbnails as icons where they have been rendered."""
        self._presets = list_presets()
        combo = self.preset_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("Custom")
        for preset in self._presets:
            thumb = Path(preset.thumbnail)
            icon = QIcon(QPixmap(str(thumb))) if thumb.is_file() else QIcon()
            combo.addItem(icon, preset.name)
            combo.setItemData(combo.count() - 1, preset.description, Qt.ItemDataRole.ToolTipRole)
        combo.blockSignals(False)
        self._sync_preset_combo()

    def setSourceLight(self, azimuth: float | None, elevation: float | None = None,
                       color_hex: str | None = None) -> None:
        """Show the light estimated from the photo (``None`` azimuth clears it) as text and as the gizmo ghost."""
        if azimuth is None or elevation is None:
            self._source = None
            self.gizmo.clearGhost()
            self.source_label.setText("Estimated source: none")
        else:
            self._source = (wrap_azimuth(azimuth), max(-90.0, min(90.0, elevation)), color_hex)
            self.gizmo.setGhost(self._source[0], self._source[1])
            swatch = f" <span style='color:{color_hex}'>&#9679;</span> {color_hex}" if color_hex else ""
            self.source_label.setText(f"Estimated source: az {self._source[0]:.0f}°, el {self._source[1]:.0f}°{swatch}")
        self.adopt_button.setEnabled(self._source is not None)

    # --------------------------------------------------------------- actions
    def addLight(self, azimuth: float | None = None, elevation: float | None = None) -> None:
        """Append a light (at the given direction, else at a free classic key position) and select it."""
        if azimuth is None or elevation is None:
            azimuth, elevation = 45.0, 20.0
            taken = {(round(li.azimuth), round(li.elevation)) for li in self._rig.lights}
            while (round(azimuth), round(elevation)) in taken and azimuth > -180.0:
                azimuth -= 30.0
        light = Light(azimuth=wrap_azimuth(azimuth), elevation=max(-90.0, min(90.0, elevation)))
        self._append(light, "Add light")

    def duplicateLight(self) -> None:
        """Copy the selected light, offset by 15° so both handles stay visible."""
        if self._selected < 0:
            return
        src = self._rig.lights[self._selected]
        self._append(replace(src, azimuth=wrap_azimuth(src.azimuth + 15.0)), f"Duplicate light {self._selected + 1}")

    def removeLight(self, index: int) -> None:
        """Remove light ``index``; the selection moves to the light that takes its place (or the new last one)."""
        if not 0 <= index < len(self._rig.lights):
            return
        lights = list(self._rig.lights)
        del lights[index]
        self._rig = self._rig.with_lights(lights)
        self._set_selected(min(index, len(lights) - 1))
        self._emit_edit(f"Remove light {index + 1}", True)

    def adoptSource(self) -> None:
        """Put the selected light (or a new one) where the photo's own light comes from, with its colour."""
        if self._source is None:
            return
        az, el, color_hex = self._source
        changes: dict = {"azimuth": az, "elevation": el}
        if color_hex:
            changes["color"] = QColor(color_hex).getRgbF()[:3]
        if self._selected < 0:
            self._append(Light(**changes), "Adopt source light")
        else:
            self._edit_light("Adopt source light", True, **changes)
        self.sourceAdopted.emit(az, el)

    def applyColor(self, color: QColor) -> None:
        """Set the selected light's colour (the colour dialog's result)."""
        if color.isValid():
            rgb = (color.redF(), color.greenF(), color.blueF())
            self._edit_light(f"Light {{n}} colour {color_to_hex(rgb)}", True, color=rgb)

    def applyKelvin(self, kelvin: float) -> None:
        """Set the selected light's colour from a colour temperature."""
        self._edit_light(f"Light {{n}} colour {kelvin:.0f}K", True, color=kelvin_to_rgb(kelvin))

    def _pick_color(self) -> None:
        if self._selected < 0:
            return
        current = QColor(color_to_hex(self._rig.lights[self._selected].color))
        self.applyColor(QColorDialog.getColor(current, self, "Light colour"))

    def _on_preset_activated(self, index: int) -> None:
        if 1 <= index <= len(self._presets):
            self.applyPreset(self._presets[index - 1].name)

    def applyPreset(self, name: str) -> None:
        """Replace the lights with preset ``name`` (one undo step); unknown names are ignored."""
        preset = next((p for p in self._presets if p.name == name), None)
        if preset is None:
            return
        # The background, catchlight and texture switches are choices about the photo, not the lighting
        # pattern: kept.
        self._rig = replace(preset.rig, name=preset.name, relight_background=self._rig.relight_background,
                            catchlights=self._rig.catchlights, keep_texture=self._rig.keep_texture)
        self._set_selected(0 if self._rig.lights else -1)
        self._emit_edit(f"Preset: {preset.name}", True)

    def _on_light_moved(self, index: int, azimuth: float, elevation: float) -> None:
        if 0 <= index < len(self._rig.lights):
            lights = list(self._rig.lights)
            lights[index] = replace(lights[index], azimuth=azimuth, elevation=elevation)
            self._rig = self._rig.with_lights(lights)
            self._emit_edit(f"Move light {index + 1}", False)

    def _on_gizmo_selection(self, index: int) -> None:
        if index != self._selected:
            self._selected = index
            self._refresh()
            self.selectionChanged.emit(index)

    # --------------------------------------------------------------- helpers
    def _append(self, light: Light, description: str) -> None:
        self._rig = self._rig.with_lights([*self._rig.lights, light])
        self._set_selected(len(self._rig.lights) - 1)
        self._emit_edit(description, True)

    def _edit_light(self, description: str, final: bool, **changes: object) -> None:
        """Replace fields of the selected light; ``{n}`` in ``description`` becomes its 1-based number."""
        if self._selected < 0:
            return
        lights = list(self._rig.lights)
        lights[self._selected] = replace(lights[self._selected], **changes)
        self._rig = self._rig.with_lights(lights)
        self._emit_edit(description.replace("{n}", str(self._selected + 1)), final)

    def _edit_rig(self, description: str, final: bool, **changes: object) -> None:
        self._rig = replace(self._rig, **changes)
        self._emit_edit(description, final)

    def _emit_edit(self, description: str, final: bool) -> None:
        self._refresh()
        self.rigEdited.emit(self._rig, description, final)

    def _set_selected(self, index: int) -> None:
        if index != self._selected:
            self._selected = index
            self.selectionChanged.emit(index)

    def _refresh(self) -> None:
        """Push the model into every control with their signals blocked, so showing is never editing."""
        widgets = self.findChildren(QWidget)
        blocked = [w.blockSignals(True) for w in widgets]
        try:
            self.gizmo.setRig(self._rig)
            self.gizmo.setSelectedIndex(self._selected)
            self._refresh_light_controls()
            self.ambient.setValue(self._rig.ambient)
            self.keep_original.setValue(self._rig.keep_original)
            self.specular.setValue(self._rig.specular)
            self.background_check.setChecked(self._rig.relight_background)
            self.catchlights_check.setChecked(self._rig.catchlights)
            self.texture_check.setChecked(self._rig.keep_texture)
            self._sync_preset_combo()
        finally:
            for w, was in zip(widgets, blocked, strict=True):
                w.blockSignals(was)
        self.duplicate_button.setEnabled(self._selected >= 0)
        self.remove_button.setEnabled(self._selected >= 0)
        self.adopt_button.setEnabled(self._source is not None)

    def _refresh_light_controls(self) -> None:
        has = self._selected >= 0
        self.light_group.setEnabled(has)
        self.light_group.setTitle(f"Light {self._selected + 1}" if has else "Selected light (none)")
        if not has:
            return
        light = self._rig.lights[self._selected]
        self.enabled_check.setChecked(light.enabled)
        self.azimuth_spin.setValue(light.azimuth)
        self.elevation_spin.setValue(light.elevation)
        self.intensity.setValue(light.intensity)
        self.size_control.setValue(light.size)
        hex_color = color_to_hex(light.color)
        self.color_button.setText(hex_color)
        self.color_button.setIcon(self._swatch(hex_color))
        self.kind_combo.setCurrentText(light.kind)
        self.distance_spin.setValue(light.distance)
        self.distance_spin.setEnabled(light.kind == "point")

    @staticmethod
    def _swatch(hex_color: str) -> QIcon:
        pix = QPixmap(16, 16)
        pix.fill(QColor(hex_color))
        return QIcon(pix)

    def _sync_preset_combo(self) -> None:
        names = [p.name for p in self._presets]
        index = names.index(self._rig.name) + 1 if self._rig.name in names else 0
        blocked = self.preset_combo.blockSignals(True)
        self.preset_combo.setCurrentIndex(index)
        self.preset_combo.blockSignals(blocked)

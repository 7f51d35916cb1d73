"""The dock panels around the canvas: layers, history, jobs, analysis properties, backend choice.

Panels only show state and report what the user asked for through signals; the main window owns the
document and the undo stack, so every change still goes through one place (and becomes undoable).
"""

from __future__ import annotations

import os
from collections import OrderedDict

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSlider,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

from icportrait_studio.core.presets import resources_dir
from icportrait_studio.jobs import Job, JobState
from icportrait_studio.ui.wheel_guard import WheelGuard, guard_wheel


def icon(name: str) -> QIcon:
    """An SVG icon from resources/icons (an empty icon if it is missing)."""
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


KIND_LABEL = {"base": "photo", "relit": "relit", "view": "new view", "imported": "imported"}


# ---------------------------------------------------------------------------------------------------
# Layers


class LayerRow(QWidget):
    """One row: visibility toggle, name and kind, opacity slider."""

    def __init__(self, uid: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.uid = uid
        self.eye = QToolButton(self)
        self.eye.setCheckable(True)
        self.eye.setAutoRaise(True)
        self.eye.setIconSize(QSize(18, 18))
        self.eye.setToolTip("Show or hide this layer")
        self.eye.setObjectName("layerEye")
        self.name = QLabel(self)
        self.name.setObjectName("layerName")
        self.kind = QLabel(self)
        self.kind.setObjectName("layerKind")
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Layer opacity")
        self.opacity.setFixedWidth(92)
        self.percent = QLabel(self)
        self.percent.setObjectName("layerPercent")
        self.percent.setFixedWidth(36)
        self.percent.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.mask = QToolButton(self)  # ◐ when the layer has a mask; opens the Layer ▸ Mask menu
        self.mask.setObjectName("layerMask")
        self.mask.setAutoRaise(True)
        text = QVBoxLayout()
        text.setSpacing(0)
        text.addWidget(self.name)
        text.addWidget(self.kind)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 3, 6, 3)
        row.addWidget(self.eye)
        row.addLayout(text, 1)
        row.addWidget(self.opacity)
        row.addWidget(self.percent)
        row.addWidget(self.mask)

    def show_state(self, name: str, kind: str, visible: bool, opacity: float, note: str = "",
                   masked: bool = False) -> None:
        self.mask.setVisible(kind != "base")
        self.mask.setText("◐" if masked else "○")
        self.mask.setToolTip("Layer mask (on): click for the mask menu" if masked else "No layer mask: click for the "
                             "mask menu")
        for w in (self.eye, self.opacity):
            w.blockSignals(True)
        self.name.setText(name)
        self.kind.setText(KIND_LABEL.get(kind, kind) + (f" · {note}" if note else ""))
        self.eye.setChecked(visible)
        self.eye.setIcon(icon("eye" if visible else "eye-off"))
        if not self.opacity.isSliderDown():
            self.opacity.setValue(round(opacity * 100))
        self.percent.setText(f"{round(opacity * 100)}%")
        for w in (self.eye, self.opacity):
            w.blockSignals(False)


class LayersPanel(QWidget):
    """The layer stack, topmost first (like every editor)."""

    visibilityToggled = Signal(int, bool)
    opacityEdited = Signal(int, float, bool)  # uid, opacity, final
    importRequested = Signal()
    deleteRequested = Signal(int)
    maskMenuRequested = Signal(int)  # uid (the row is selected first)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget(self)
        self.list.setObjectName("layerList")
        self.list.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.import_button = QToolButton(self)
        self.import_button.setIcon(icon("add"))
        self.import_button.setToolTip("Add an image as a new layer")
        self.delete_button = QToolButton(self)
        self.delete_button.setIcon(icon("delete"))
        self.delete_button.setToolTip("Delete the selected layer (the photo itself cannot be deleted)")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._rows: dict[int, LayerRow] = {}
        self._wheel_guard = WheelGuard(self.list)  # scrolling the list never drags an opacity slider
        self._order: list[int] = []
        self._kinds: dict[int, str] = {}
        self.import_button.clicked.connect(self.importRequested)
        self.delete_button.clicked.connect(self._delete_selected)
        self.list.currentRowChanged.connect(lambda _row: self._update_buttons())
        self._update_buttons()

    def set_layers(self, layers: list, notes: dict[int, str] | None = None) -> None:
        """Show ``layers`` (objects with uid, name, kind, visible, opacity), bottom first as in the document."""
        notes = notes or {}
        order = [layer.uid for layer in reversed(layers)]
        if order != self._order:
            selected = self.selected_uid()
            self.list.clear()
            self._rows.clear()
            for layer in reversed(layers):
                row = LayerRow(layer.uid)
                row.eye.toggled.connect(lambda on, uid=layer.uid: self.visibilityToggled.emit(uid, on))
                row.opacity.valueChanged.connect(lambda v, r=row: self._opacity(r, v))
                row.opacity.sliderReleased.connect(lambda r=row: self._opacity(r, r.opacity.value(), True))
                row.mask.clicked.connect(lambda _c=False, uid=layer.uid: self._mask_clicked(uid))
                item = QListWidgetItem(self.list)
                item.setSizeHint(QSize(200, 44))
                item.setData(Qt.ItemDataRole.UserRole, layer.uid)
                self.list.setItemWidget(item, row)
                guard_wheel(row, self.list, self._wheel_guard)
                self._rows[layer.uid] = row
            self._order = order
            if selected in self._rows:
                self.list.setCurrentRow(order.index(selected))
        self._kinds = {layer.uid: layer.kind for layer in layers}
        for layer in layers:
            self._rows[layer.uid].show_state(layer.name, layer.kind, layer.visible, layer.opacity,
                                             notes.get(layer.uid, ""), getattr(layer, "mask", None) is not None)
        self._update_buttons()

    def selected_uid(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def row(self, uid: int) -> LayerRow | None:
        return self._rows.get(uid)

    def _opacity(self, row: LayerRow, value: int, final: bool | None = None) -> None:
        row.percent.setText(f"{value}%")
        if final is None:
            final = not row.opacity.isSliderDown()
        self.opacityEdited.emit(row.uid, value / 100.0, final)

    def _mask_clicked(self, uid: int) -> None:
        self.list.setCurrentRow(self._order.index(uid))
        self.maskMenuRequested.emit(uid)

    def _delete_selected(self) -> None:
        uid = self.selected_uid()
        if uid is not None:
            self.deleteRequested.emit(uid)

    def _update_buttons(self) -> None:
        uid = self.selected_uid()
        self.delete_button.setEnabled(uid is not None and self._kinds.get(uid) not in (None, "base"))


# ---------------------------------------------------------------------------------------------------
# History


class HistoryPanel(QWidget):
    """The undo stack as a clickable list: clicking a step goes back (or forward) to it."""

    def __init__(self, stack: QUndoStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = QUndoView(stack, self)
        self.view.setEmptyLabel("Opened")
        self.view.setToolTip("Every edit, newest last. Click a step to return to it (Ctrl+Z / Ctrl+Shift+Z).")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view)

    def set_empty_label(self, text: str) -> None:
        self.view.setEmptyLabel(text)


# ---------------------------------------------------------------------------------------------------
# Jobs


STATE_COLOURS = {JobState.QUEUED: "#9aa0a8", JobState.RUNNING: "#6fb3ff", JobState.DONE: "#7fcf8a",
                 JobState.FAILED: "#ff7a7a", JobState.CANCELLED: "#9aa0a8"}
MAX_ROWS = 60


class JobsPanel(QWidget):
    """Queued, running and finished jobs with progress and a cancel button each.

    Live-preview jobs come by the hundred during a drag; they share one row so the list stays readable.
    """

    cancelRequested = Signal(str, int)  # bridge name, job id
    cancelAllRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("jobTree")
        self.tree.setHeaderLabels(["Job", "Status", "", ""])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col, width in ((1, 104), (2, 48), (3, 26)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(col, width)
        header.setStretchLastSection(False)
        self.cancel_all_button = QPushButton("Cancel all", self)
        self.cancel_all_button.setToolTip("Cancel every queued and running job (Ctrl+.)")
        self.clear_button = QPushButton("Clear finished", self)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.cancel_all_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self._items: OrderedDict[tuple[str, object], QTreeWidgetItem] = OrderedDict()
        self._bars: dict[int, QProgressBar] = {}
        self.cancel_all_button.clicked.connect(self.cancelAllRequested)
        self.clear_button.clicked.connect(self.clear_finished)

    def update_job(self, source: str, job: Job) -> None:
        """Show a job's latest snapshot. Cheap on purpose: during a drag this runs several times per frame,
        so widgets are only touched when what they show changes (QProgressBar.setValue repaints at once)."""
        preview = job.replace_key == "preview"
        key: tuple[str, object] = (source, "preview") if preview else (source, job.id)
        item = self._items.get(key)
        if item is None:
            if job.done and job.state is JobState.CANCELLED and preview:
                return  # a superseded preview that never ran: not worth a row
            item = self._new_item(source)
            self._items[key] = item
        if preview and job.state is JobState.CANCELLED and item.data(0, Qt.ItemDataRole.UserRole) != job.id:
            return  # a queued preview replaced by a newer one; the row shows the newer one
        if item.data(0, Qt.ItemDataRole.UserRole) != job.id:
            item.setData(0, Qt.ItemDataRole.UserRole, job.id)
        text = job.label + (f" — {job.stage}" if job.stage and not job.done and not preview else "")
        status = job.state.value
        if job.done and job.duration is not None:
            status += f" {job.duration * 1000:.0f} ms" if job.duration < 10 else f" {job.duration:.0f} s"
        if item.text(0) != text:
            item.setText(0, text)
        if item.text(1) != status:
            item.setText(1, status)
            item.setForeground(1, QColor(STATE_COLOURS[job.state]))
            tip = job.error or job.label
            item.setToolTip(0, tip)
            item.setToolTip(1, tip)
        bar = self.tree.itemWidget(item, 2)
        value = 100 if job.done and job.state is not JobState.CANCELLED else round(job.progress * 100)
        if isinstance(bar, QProgressBar) and (not preview or job.done) and bar.value() != value:
            bar.setValue(value)
        failed = job.state is JobState.FAILED
        if isinstance(bar, QProgressBar) and bool(bar.property("failed")) != failed:
            bar.setProperty("failed", failed)
            bar.style().unpolish(bar)
            bar.style().polish(bar)
        button = self.tree.itemWidget(item, 3)
        if isinstance(button, QToolButton) and button.isEnabled() == job.done:
            button.setEnabled(not job.done)
            button.setVisible(not job.done)
        if len(self._items) > MAX_ROWS:
            self._trim()

    def _new_item(self, source: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(["", "", "", ""])
        self.tree.insertTopLevelItem(0, item)
        bar = QProgressBar(self.tree)
        bar.setRange(0, 100)
        bar.setTextVisible(False)
        bar.setFixedHeight(8)
        self.tree.setItemWidget(item, 2, bar)
        button = QToolButton(self.tree)
        button.setIcon(icon("cancel"))
        button.setAutoRaise(True)
        button.setToolTip("Cancel this job")
        button.clicked.connect(lambda: self.cancelRequested.emit(source, int(item.data(0, Qt.ItemDataRole.UserRole))))
        self.tree.setItemWidget(item, 3, button)
        return item

    def _trim(self) -> None:
        while len(self._items) > MAX_ROWS:
            key = next(iter(self._items))
            item = self._items.pop(key)
            self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))

    def clear_finished(self) -> None:
        for key, item in list(self._items.items()):
            button = self.tree.itemWidget(item, 3)
            if isinstance(button, QToolButton) and not button.isEnabled():
                self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
                del self._items[key]

    def row_count(self) -> int:
        return self.tree.topLevelItemCount()


class JobStatus(QWidget):
    """The status bar's job indicator: what runs now (with progress), 'Ready', or the last failure."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("Ready", self)
        self.label.setObjectName("statusJob")
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 100)
        self.bar.setFixedSize(120, 10)
        self.bar.setTextVisible(False)
        self.bar.setVisible(False)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label)
        row.addWidget(self.bar)

    def update_from(self, active: list[Job], latest: Job) -> None:
        """Live previews come and go within a frame: they are left out, so the line does not flicker."""
        if latest.replace_key == "preview" and not latest.done:
            return
        active = [j for j in active if j.replace_key != "preview"]
        running = [j for j in active if j.state is JobState.RUNNING]
        if running:
            j = running[0]
            self._set_text(j.label + (f" ({len(active) - 1} more)" if len(active) > 1 else ""), False)
            value = round(j.progress * 100)
            if self.bar.value() != value:
                self.bar.setValue(value)
            if not self.bar.isVisible():
                self.bar.setVisible(True)
        elif not active:
            if self.bar.isVisible():
                self.bar.setVisible(False)
            if latest.state is not JobState.FAILED:
                self._set_text("Ready", False)

    def show_error(self, text: str) -> None:
        self._set_text(text, True)

    def _set_text(self, text: str, error: bool) -> None:
        if self.label.text() != text:
            self.label.setText(text)
        if bool(self.label.property("error")) != error:
            self.label.setProperty("error", error)
            self.label.style().unpolish(self.label)
            self.label.style().polish(self.label)


# ---------------------------------------------------------------------------------------------------
# Properties of the analysis


class PropertiesPanel(QWidget):
    """What the app knows about the photo: size, faces found, warnings, timings, the photo's own light."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("propTree")
        self.tree.setHeaderLabels(["Property", "Value"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setIndentation(12)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree)
        self._sections: dict[str, QTreeWidgetItem] = {}
        for name in ("Image", "Face", "Identity", "Source light", "Timings", "Warnings"):
            item = QTreeWidgetItem([name, ""])
            item.setFirstColumnSpanned(True)
            self.tree.addTopLevelItem(item)
            item.setExpanded(True)
            self._sections[name] = item
        self.clear()

    def clear(self) -> None:
        for item in self._sections.values():
            item.takeChildren()
        self.set_rows("Image", [("", "no image open")])

    def set_rows(self, section: str, rows: list[tuple[str, str]], tips: dict[str, str] | None = None) -> None:
        parent = self._sections[section]
        parent.takeChildren()
        for key, value in rows:
            child = QTreeWidgetItem([key, value])
            child.setToolTip(1, tips.get(key, value) if tips else value)
            parent.addChild(child)
        parent.setExpanded(True)

    def value(self, section: str, key: str) -> str | None:
        parent = self._sections[section]
        for i in range(parent.childCount()):
            if parent.child(i).text(0) == key:
                return parent.child(i).text(1)
        return None

    def set_image(self, size: tuple[int, int], bit_depth: int, has_alpha: bool, icc: bytes | None, path: str,
                  encoding: str = "srgb") -> None:
        from icportrait_studio.imaging.display_profile import profile_name
        from icportrait_studio.imaging.profile_convert import readable
        from icportrait_studio.imaging.scene_tone import scene_gamma

        profile = (profile_name(icc) or "embedded") if icc else "none (sRGB)"
        if icc and not readable(icc):  # damaged, or not an RGB profile: the canvas shows the codes as sRGB
            profile += " (not usable: shown as sRGB)"
        tone = scene_gamma(icc, encoding)
        values = "linear light" if encoding == "linear" else "sRGB-encoded" if tone is None else f"gamma {tone:.2f}"
        self.set_rows("Image", [("File", os.path.basename(path) or "—"), ("Size", f"{size[0]} × {size[1]} px"),
                                ("Depth", f"{bit_depth}-bit"), ("Alpha", "yes" if has_alpha else "no"),
                                ("Colour profile", profile),
                                ("Values", values)],
                      {"File": path, "Values": "How the file's values map to light; exports keep it"})

    def set_analysis(self, summary: dict) -> None:
        pose = summary.get("pose") or {}
        self.set_rows("Face", [
            ("Faces found", str(summary.get("faces_found", "—"))),
            ("Face mesh", ("from the file (where an earlier turn put it)" if summary.get("landmarks_carried")
                           else "detected") if summary.get("has_face") else "no (rough geometry)"),
            ("Yaw / pitch / roll", f"{pose.get('yaw', 0):+.0f}° / {pose.get('pitch', 0):+.0f}° / "
                                   f"{pose.get('roll', 0):+.0f}°" if pose else "—"),
        ])
        warnings = list(summary.get("warnings") or [])
        self.set_rows("Warnings", [("", w) for w in warnings] or [("", "none")])
        timings = summary.get("timings_ms") or {}
        if timings:
            self.set_rows("Timings", [(f"analysis: {k}", f"{v:.0f} ms") for k, v in timings.items()])

    def set_render_info(self, info: dict, quality: str) -> None:
        src = info.get("source_light") or {}
        if src:
            self.set_rows("Source light", [
                ("Azimuth", f"{src.get('azimuth', 0):+.0f}°"),
                ("Elevation", f"{src.get('elevation', 0):+.0f}°"),
                ("Colour", str(src.get("color", "—"))),
                ("Directionality", f"{src.get('directionality', 0):.2f}"),
                ("Fit error", f"{src.get('fit_error', 0):.3f}"),
            ])
        timings = info.get("timings_ms") or {}
        rows = [(f"{quality} render: {k}", f"{v:.0f} ms") for k, v in timings.items()]
        summary = info.get("analysis") or {}
        rows += [(f"analysis: {k}", f"{v:.0f} ms") for k, v in (summary.get("timings_ms") or {}).items()]
        if rows:
            self.set_rows("Timings", rows)
        if summary:
            pose_warnings = list(info.get("warnings") or summary.get("warnings") or [])
            self.set_rows("Warnings", [("", w) for w in pose_warnings] or [("", "none")])


# ---------------------------------------------------------------------------------------------------
# Backend choice


class BackendCombo(QComboBox):
    """Backends that can run here; the physical one is always there. Others appear once available()."""

    backendChosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Relighting backend. 'physical' runs on the CPU at interactive speed.")
        self.addItem("physical", "physical")
        self.setMinimumContentsLength(10)
        self.activated.connect(lambda i: self.backendChosen.emit(str(self.itemData(i))))

    def set_backends(self, entries: list[tuple[str, bool, str]]) -> None:
        """``entries``: (name, available, reason); unavailable ones are listed disabled, the reason as tooltip."""
        current = self.current()
        self.blockSignals(True)
        self.clear()
        for name, ok, reason in entries:
            self.addItem(name if ok else f"{name} (unavailable)", name)
            self.setItemData(self.count() - 1, reason, Qt.ItemDataRole.ToolTipRole)
            if not ok:
                item = self.model().item(self.count() - 1)  # type: ignore[attr-defined]
                item.setEnabled(False)
        if self.count() == 0:
            self.addItem("physical", "physical")
        self.set_current(current)
        self.blockSignals(False)

    def current(self) -> str:
        return str(self.currentData() or "physical")

    def set_current(self, name: str) -> None:
        i = self.findData(name)
        blocked = self.blockSignals(True)
        self.setCurrentIndex(max(0, i))
        self.blockSignals(blocked)

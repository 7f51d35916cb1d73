"""The editor window: canvas in the middle, panels in docks, one document at a time.

Everything that changes the document goes through here: edits from the panels update the model,
become undo steps when final, and turn into render jobs (see ``Renderer``). Opening, saving,
exporting and crash recovery live in ``FileOpsMixin`` (ui/actions.py) to keep this file readable.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
from PySide6.QtCore import QByteArray, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QUndoStack
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMenu, QMessageBox

from icportrait_studio.core.document import DocState, Document, Layer, default_rig
from icportrait_studio.core.history import strip_state
from icportrait_studio.core.lights import LightRig
from icportrait_studio.core.view import ViewPose
from icportrait_studio.jobs import Job, JobState
from icportrait_studio.ui.actions import (
    SHORTCUTS_HTML,
    FileOpsMixin,
    StateCommand,
    build_menus,
    build_toolbar,
    create_actions,
)
from icportrait_studio.ui.canvas import Canvas
from icportrait_studio.ui.docks import DocksMixin
from icportrait_studio.ui.document_display import DocumentDisplay
from icportrait_studio.ui.extensions import Extensions
from icportrait_studio.ui.jobs_bridge import JobsBridge, Renderer
from icportrait_studio.ui.light_panel import LightPanel
from icportrait_studio.ui.panels import (
    BackendCombo,
    HistoryPanel,
    JobsPanel,
    JobStatus,
    LayersPanel,
    PropertiesPanel,
    icon,
)
from icportrait_studio.ui.settings import Settings
from icportrait_studio.ui.view_sphere import ViewSpherePanel
from icportrait_studio.ui.work import (
    AnalysisOutcome,
    Proxies,
    RenderOutcome,
    set_display_profile,
    shading_rgba,
    warmup_work,
)

APP_NAME = "IC-Portrait Studio"


class MainWindow(DocksMixin, FileOpsMixin, QMainWindow):
    """See the module docstring. Signals exist mainly so tests and benchmarks can wait on them."""

    documentOpened = Signal()
    renderApplied = Signal(str, int)  # quality, request_id
    analysisShown = Signal()
    closed = Signal()  # the window accepted a close (edit mode's --exit-on-close listens)

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.setObjectName("MainWindow")
        # The GUI thread and the render worker share the GIL; a short switch interval hands it over within
        # a millisecond instead of five, which is most of the gap between a finished preview and its paint.
        sys.setswitchinterval(0.001)
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.settings = settings or Settings()
        self.doc: Document | None = None
        self.undo_stack = QUndoStack(self)
        self.bridge = JobsBridge("pipeline", self)
        self.io = JobsBridge("io", self)
        self.renderer = Renderer(self.bridge, self)
        self.canvas = Canvas(self)
        self.setCentralWidget(self.canvas)
        self.light_panel = LightPanel()
        self.light_panel.setRig(default_rig())
        self.view_panel = ViewSpherePanel()
        self.layers_panel = LayersPanel()
        self.history_panel = HistoryPanel(self.undo_stack)
        self.history_panel.set_empty_label("No image open")
        self.jobs_panel = JobsPanel()
        self.props_panel = PropertiesPanel()
        self.backend_combo = BackendCombo()
        self._committed: DocState | None = None
        self._base_entry: tuple[str, DocState] | None = None
        self.display = DocumentDisplay(self.canvas, self.io.submit)
        self._analysis: AnalysisOutcome | None = None
        self._shading: np.ndarray | None = None
        self._restoring = False
        self._source_light: tuple | None = None
        self.last_submit_id = 0
        self._build_docks()
        self.actions_ = create_actions(self)
        self.recent_menu = QMenu("Open &Recent", self)
        self.presets_menu = QMenu("&Presets", self)
        self.panels_menu = QMenu("&Panels", self)
        for dock in self._docks:
            self.panels_menu.addAction(dock.toggleViewAction())
        build_menus(self, self.actions_, self.recent_menu, self.presets_menu, self.panels_menu)
        build_toolbar(self, self.actions_, [QLabel(" Backend ", self), self.backend_combo])
        self._build_status_bar()
        self._connect()
        self._init_files()
        self.ext = Extensions(self)  # layered export, Edit in…, plugins, models, identity, latent previews, edit mode
        self._restore_settings()
        self._update_enabled()

    # --- construction ---------------------------------------------------------------------------------

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.job_status = JobStatus(self)
        self.status_render = QLabel("", self)
        self.status_render.setToolTip("Time of the last render shown (preview / full)")
        self.status_size = QLabel("", self)
        self.status_zoom = QLabel("", self)
        self.status_zoom.setToolTip("Zoom (F fits, 1 shows actual pixels)")
        for w in (self.job_status, self.status_render, self.status_size, self.status_zoom):
            bar.addPermanentWidget(w)
        bar.showMessage("Open a portrait to start (Ctrl+O)")

    def _connect(self) -> None:
        a = self.actions_
        a.undo.triggered.connect(self.undo_stack.undo)
        a.redo.triggered.connect(self.undo_stack.redo)
        self.undo_stack.canUndoChanged.connect(a.undo.setEnabled)
        self.undo_stack.canRedoChanged.connect(a.redo.setEnabled)
        self.undo_stack.undoTextChanged.connect(lambda t: a.undo.setText(f"&Undo {t}" if t else "&Undo"))
        self.undo_stack.redoTextChanged.connect(lambda t: a.redo.setText(f"&Redo {t}" if t else "&Redo"))
        self.undo_stack.cleanChanged.connect(lambda clean: self._update_title())
        self.undo_stack.indexChanged.connect(lambda _i: self._schedule_autosave())
        a.fit.triggered.connect(self.canvas.fit)
        a.zoom_100.triggered.connect(lambda: self.canvas.set_zoom(1.0))
        a.zoom_in.triggered.connect(lambda: self.canvas.zoom_by(1.25))
        a.zoom_out.triggered.connect(lambda: self.canvas.zoom_by(0.8))
        a.before.toggled.connect(self._on_before)
        a.split.toggled.connect(self._on_split)
        a.mesh.toggled.connect(lambda _on: self._update_overlays())
        for action in a.overlays.values():
            action.toggled.connect(lambda _on: self._update_overlays())
        a.cancel_jobs.triggered.connect(self.cancel_all_jobs)
        a.save_preset.triggered.connect(self.save_rig_as_preset)
        a.shortcuts.triggered.connect(lambda: QMessageBox.information(self, "Keyboard shortcuts", SHORTCUTS_HTML))
        a.about.triggered.connect(self._about)
        self.canvas.zoomChanged.connect(lambda z: self.status_zoom.setText(f"{z * 100:.0f}%"))
        self.canvas.filesDropped.connect(self._on_files_dropped)
        self.light_panel.rigEdited.connect(self._on_rig_edited)
        self.view_panel.viewChanged.connect(lambda y, p: self._on_view(y, p, final=False))
        self.view_panel.viewFinished.connect(lambda y, p: self._on_view(y, p, final=True))
        self.view_panel.lightsFollowChanged.connect(self._on_follow)
        self.backend_combo.backendChosen.connect(self._on_backend)
        self.layers_panel.visibilityToggled.connect(self._on_visibility)
        self.layers_panel.opacityEdited.connect(self._on_opacity)
        self.layers_panel.importRequested.connect(lambda: self.import_layer())
        self.layers_panel.deleteRequested.connect(self._on_delete_layer)
        self.jobs_panel.cancelRequested.connect(self._cancel_job)
        self.jobs_panel.cancelAllRequested.connect(self.cancel_all_jobs)
        self.bridge.jobUpdated.connect(lambda job: self._on_job(self.bridge, job))
        self.io.jobUpdated.connect(lambda job: self._on_job(self.io, job))
        self.renderer.rendered.connect(self._on_rendered)
        self.renderer.analysed.connect(self._on_analysed)
        self.renderer.failed.connect(self._on_render_failed)
        self.presets_menu.aboutToShow.connect(self._fill_presets_menu)

    def start_background(self) -> None:
        """After the window is shown: load the face models (pipeline worker), list the backends that can
        run here (I/O worker, so a slow availability check never delays a render) and find the plugins."""
        self.bridge.submit(warmup_work, label="Loading face models", priority=-10)
        self.ext.start_background()

    # --- documents ----------------------------------------------------------------------------------------

    def set_document(self, doc: Document, proxies: Proxies | None = None,
                     states: list[DocState] | None = None, descriptions: list[str] | None = None,
                     index: int = 0, clean: bool = True) -> None:
        """Show ``doc`` (replacing the current one) and start analysing and rendering it."""
        set_display_profile(doc.icc_profile, doc.encoding)  # before any of its pixels are encoded
        self.renderer.set_document(doc.id, doc.base, doc.alpha, proxies, landmarks=doc.source_landmarks, tone=doc.tone)
        self.doc = doc
        self.display.reset(doc)
        QTimer.singleShot(2000, self.display.release_base)
        self._analysis, self._shading = None, None
        self.canvas.set_document(doc.size, doc.alpha is not None)
        self._sync_controls(doc.rig, doc.view, doc.backend)
        self.light_panel.setSourceLight(None)
        self._source_light = None
        self.props_panel.clear()
        self.props_panel.set_image(doc.size, doc.bit_depth, doc.alpha is not None, doc.icc_profile,
                                   doc.path or "", doc.encoding)
        if doc.analysis_info:
            self._show_render_info(doc.analysis_info, "saved")
        self._restoring = True
        try:
            self.undo_stack.clear()
            current = strip_state(doc.snapshot())
            if states:
                self._base_entry = (descriptions[0] if descriptions else "Opened", states[0])
                for i in range(1, len(states)):
                    text = descriptions[i] if descriptions else f"Step {i}"
                    self.undo_stack.push(StateCommand(self._apply_state, states[i - 1], states[i], text))
                self.undo_stack.setIndex(index)
            else:
                self._base_entry = (f"Opened {doc.title}", current)
            self._committed = current
            self.undo_stack.setClean()
            if not clean:
                self.undo_stack.resetClean()
        finally:
            self._restoring = False
        self.history_panel.set_empty_label(self._base_entry[0])
        self.renderer.analyse(doc.backend)
        relit = doc.relit_layer
        if relit.pixels is not None and relit.quality == "full":
            self.renderer.cache.put(self.renderer.key(doc.rig, doc.view, doc.backend), RenderOutcome(
                _request(doc), relit.pixels, np.zeros((1, 1, 3), np.uint8), None, doc.analysis_info))
        else:
            self.last_submit_id = self.renderer.final(doc.rig, doc.view, doc.backend)
        self.status_size.setText(f"{doc.size[0]}×{doc.size[1]} · {doc.bit_depth}-bit")
        self._refresh_document_views()
        self._update_title()
        self._update_enabled()
        self.statusBar().showMessage(f"Opened {doc.title}", 4000)
        self.documentOpened.emit()

    def _sync_controls(self, rig: LightRig, view: ViewPose, backend: str) -> None:
        self.light_panel.setRig(rig)
        self.view_panel.setView(view.yaw, view.pitch)
        self.view_panel.setLightsFollow(view.lights_follow == "head")
        self.backend_combo.set_current(backend)

    # --- edits -> model, undo and renders ---------------------------------------------------------------

    def _on_rig_edited(self, rig: LightRig, description: str, final: bool) -> None:
        if self.doc is None:
            return
        self.doc.set_rig(rig)
        self._render(final)
        if final:
            self.commit(description)

    def _on_view(self, yaw: float, pitch: float, final: bool) -> None:
        if self.doc is None:
            return
        follow = "head" if self.view_panel.lightsFollow() else "camera"
        self.doc.set_view(replace(self.doc.view, yaw=yaw, pitch=pitch, lights_follow=follow))
        self._render(final)
        if final:
            self.commit(f"View: yaw {yaw:+.0f}°, pitch {pitch:+.0f}°")

    def _on_follow(self, on: bool) -> None:
        if self.doc is not None:
            self.doc.set_view(replace(self.doc.view, lights_follow="head" if on else "camera"))
            self._render(True)
            self.commit(f"Lights follow head: {'on' if on else 'off'}")

    def _on_backend(self, name: str) -> None:
        if self.doc is not None and name != self.doc.backend:
            self.doc.backend = name
            self._render(True)
            self.commit(f"Backend: {name}")

    def _render(self, final: bool) -> None:
        doc = self.doc
        assert doc is not None
        if final:
            self.last_submit_id = self.renderer.final(doc.rig, doc.view, doc.backend)
        else:
            self.last_submit_id = self.renderer.preview(doc.rig, doc.view, doc.backend)

    def commit(self, description: str, merge_key: object | None = None) -> None:
        """Record the document's current state as one undo step (no-op when nothing changed)."""
        if self.doc is None or self._committed is None:
            return
        after = strip_state(self.doc.snapshot())
        if after == self._committed:
            return
        self.undo_stack.push(StateCommand(self._apply_state, self._committed, after, description, merge_key))
        self._committed = after

    def _apply_state(self, state: DocState) -> None:
        """Undo/redo: put a snapshot back, with rendered pixels from the cache (or re-rendered)."""
        doc = self.doc
        if self._restoring or doc is None:
            return
        self.renderer.invalidate()
        hit = self.renderer.cached(state.rig, state.view, state.backend)
        old = {layer.uid: layer for layer in doc.layers}
        doc.restore(state)
        for layer in doc.layers:
            if layer.kind != "relit":
                continue
            if hit is not None:
                layer.pixels, layer.quality, layer.request_id = hit.image, "full", hit.request.request_id
                if hit.display.shape[:2] == hit.image.shape[:2]:
                    self.display.set_pixels(layer.uid, hit.image, hit.display)
                self._shading = hit.shading if hit.shading is not None else self._shading
            elif layer.uid in old:
                prev = old[layer.uid]
                layer.pixels, layer.quality, layer.request_id = prev.pixels, prev.quality, prev.request_id
        self._committed = state
        self._sync_controls(state.rig, state.view, state.backend)
        if hit is None:
            self.last_submit_id = self.renderer.final(state.rig, state.view, state.backend)
        self._refresh_document_views()

    # --- layers -------------------------------------------------------------------------------------------

    def _on_visibility(self, uid: int, on: bool) -> None:
        layer = self.doc.layer_by_uid(uid) if self.doc else None
        if layer is not None and layer.visible != on:
            layer.visible = on
            self._refresh_document_views()
            self.commit(f"{'Show' if on else 'Hide'} layer '{layer.name}'")

    def _on_opacity(self, uid: int, value: float, final: bool) -> None:
        layer = self.doc.layer_by_uid(uid) if self.doc else None
        if layer is None:
            return
        layer.opacity = value
        self._refresh_canvas()
        if final:
            self.commit(f"Layer '{layer.name}' opacity {value * 100:.0f}%", merge_key=("opacity", uid))
            self._refresh_layers_panel()

    def _on_delete_layer(self, uid: int) -> None:
        if self.doc is not None:
            layer = self.doc.remove_layer(uid)
            if layer is not None:
                self._refresh_document_views()
                self.commit(f"Delete layer '{layer.name}'")

    def add_imported_layer(self, layer: Layer, display: np.ndarray) -> None:
        if self.doc is None:
            return
        self.doc.add_layer(layer)
        self.display.set_pixels(layer.uid, layer.pixels, display, layer.mask)
        self._refresh_document_views()
        self.commit(f"Import layer '{layer.name}'")

    # --- results ------------------------------------------------------------------------------------------

    def _on_rendered(self, out: RenderOutcome) -> None:
        doc = self.doc
        if doc is None:
            return
        quality = out.request.quality
        self.display.defer_base = False
        layer = doc.set_relit(out.image, quality=quality, request_id=out.request.request_id)
        self.display.set_pixels(layer.uid, out.image, out.display)
        self._shading = out.shading
        if quality == "full":
            doc.analysis_info = dict(out.info)
            self._show_render_info(out.info, quality)
        else:  # during drags: only the cheap label, not the properties tree
            ms = sum((out.info.get("timings_ms") or {}).values())
            self.status_render.setText(f"preview {ms:.0f} ms")
            self.ext.identity.mark_pending()
        self._refresh_canvas()
        if self.actions_.overlays["shading"].isChecked():
            self._update_overlays()
        self.renderApplied.emit(quality, out.request.request_id)

    def _show_render_info(self, info: dict, quality: str) -> None:
        self.props_panel.set_render_info(info, quality)
        self.ext.identity.show_info(info)
        # what this render could not do (a face too small to turn): the analysis' own notes were shown
        # when it finished; a view that was asked for and not made must not pass silently
        known = set((info.get("analysis") or {}).get("warnings") or [])
        for w in info.get("warnings") or []:
            if w not in known:
                self.statusBar().showMessage(f"Note: {w}", 12000)
        src = info.get("source_light") or {}
        # direction only: from skin alone the key's colour is known only relative to the fill's, so
        # adopting it as an absolute light colour would tint the rig (it stays in the report)
        source = (float(src["azimuth"]), float(src.get("elevation", 0.0)), None) if "azimuth" in src else None
        if source is not None and source != self._source_light:
            self._source_light = source
            self.light_panel.setSourceLight(*source)
        ms = sum((info.get("timings_ms") or {}).values())
        if ms:
            self.status_render.setText(f"{quality} {ms:.0f} ms")

    def _on_analysed(self, out: AnalysisOutcome) -> None:
        self._analysis = out
        self.props_panel.set_analysis(out.summary)
        for w in out.summary.get("warnings") or []:
            self.statusBar().showMessage(f"Note: {w}", 8000)
        self._update_overlays()
        self.analysisShown.emit()

    def _on_render_failed(self, message: str) -> None:
        self.display.release_base()
        self.statusBar().showMessage(message, 15000)
        self.job_status.show_error("Render failed")

    # --- painting the document ---------------------------------------------------------------------------

    def _refresh_document_views(self) -> None:
        self._refresh_canvas()
        self._refresh_layers_panel()
        self._update_overlays()

    def _refresh_layers_panel(self) -> None:
        if self.doc is None:
            self.layers_panel.set_layers([])
            return
        notes = {layer.uid: "preview" for layer in self.doc.layers if layer.quality == "preview" and layer.pixels
                 is not None}
        self.layers_panel.set_layers(self.doc.layers, notes)

    def _refresh_canvas(self) -> None:
        self.display.refresh()

    def _update_overlays(self) -> None:
        a, out = self.actions_, self._analysis
        self.canvas.set_mesh(out.landmarks if out else None, out.edges if out else None, a.mesh.isChecked())
        kind = next((k for k, act in a.overlays.items() if act.isChecked()), "none")
        rgba = None
        if kind == "normals" and out is not None:
            rgba = out.normals_rgba
        elif kind == "matte" and out is not None:
            rgba = out.matte_rgba
        elif kind == "shading":
            rgba = shading_rgba(self._shading)
        self.canvas.overlay.setOpacity(1.0 if kind == "shading" else 0.85)
        self.canvas.set_overlay(kind, rgba)
        if kind != "none" and rgba is None and self.doc is not None:
            self.statusBar().showMessage(f"The {kind} overlay appears once the analysis has finished", 4000)

    def _on_before(self, on: bool) -> None:
        self.canvas.set_before(on)
        if on and self.actions_.split.isChecked():
            self.actions_.split.setChecked(False)

    def _on_split(self, on: bool) -> None:
        self.canvas.set_split(on)
        if on and self.actions_.before.isChecked():
            self.actions_.before.setChecked(False)

    # --- jobs -------------------------------------------------------------------------------------------------

    def _on_job(self, bridge: JobsBridge, job: Job) -> None:
        self.jobs_panel.update_job(bridge.name, job)
        if job.state is JobState.FAILED and job.replace_key not in ("preview", "full", "autosave"):  # said elsewhere
            self.statusBar().showMessage(f"{job.label} failed: {job.error}", 15000)
        self.job_status.update_from([j for b in (self.bridge, self.io) for j in b.active_jobs()], job)
        self.ext.latent.on_job(bridge is self.bridge, job)

    def _cancel_job(self, source: str, job_id: int) -> None:
        (self.io if source == self.io.name else self.bridge).cancel(job_id)

    def cancel_all_jobs(self) -> None:
        n = self.bridge.cancel_all() + self.io.cancel_all()
        self.statusBar().showMessage(f"Cancelled {n} job(s)" if n else "No jobs to cancel", 3000)

    def jobs_idle(self) -> bool:
        return self.bridge.is_idle() and self.io.is_idle() and not self.renderer.full_pending

    # --- misc -------------------------------------------------------------------------------------------------

    def _fill_presets_menu(self) -> None:
        self.presets_menu.clear()
        for preset in self.light_panel.presets():
            act = self.presets_menu.addAction(preset.name.capitalize())
            act.setToolTip(preset.description)
            act.setStatusTip(preset.description)
            act.triggered.connect(lambda _c=False, p=preset: self.apply_preset(p.name))

    def apply_preset(self, name: str) -> None:
        self.light_panel.applyPreset(name)

    def save_rig_as_preset(self) -> None:
        """Lighting ▸ Save Rig as Preset: the current lights under a name of the user's own."""
        from PySide6.QtWidgets import QInputDialog, QMessageBox

        from icportrait_studio.core.presets import list_presets, save_user_preset, user_presets_dir
        from icportrait_studio.errors import InputError

        rig = self.light_panel.rig()
        if not rig.lights:
            self.statusBar().showMessage("Add a light first: an empty rig is not a preset", 5000)
            return
        mine = {p.name for p in list_presets() if p.path.parent == user_presets_dir()}
        name, ok = QInputDialog.getText(self, "Save rig as preset", "Preset name:",
                                        text=rig.name if rig.name in mine else "")
        name = " ".join(name.split())
        if not ok or not name:
            return
        if name in mine and QMessageBox.question(
                self, "Replace preset", f"Replace your preset “{name}”?") != QMessageBox.StandardButton.Yes:
            return
        try:
            save_user_preset(name, rig)
        except InputError as exc:
            self._error("Cannot save the preset", str(exc))
            return
        self.light_panel.reloadPresets()
        self.light_panel.setRig(replace(rig, name=name))  # the combo shows it; not an edit of the lights
        self.statusBar().showMessage(f"Saved preset “{name}”", 5000)

    def _update_title(self) -> None:
        title = self.ext.edit_mode.title(self.doc, APP_NAME)
        self.setWindowTitle(title)
        self.setWindowModified(self.is_dirty())
        if self.doc is not None:
            self.doc.dirty = self.is_dirty()  # the model's flag follows the undo stack's clean state

    def is_dirty(self) -> bool:
        return self.doc is not None and not self.undo_stack.isClean()

    def _update_enabled(self) -> None:
        has = self.doc is not None
        a = self.actions_
        for act in (a.save, a.save_as, a.export, a.import_layer):
            act.setEnabled(has)
        self.ext.set_enabled(has)
        a.undo.setEnabled(self.undo_stack.canUndo())
        a.redo.setEnabled(self.undo_stack.canRedo())
        for dock in (self.light_dock, self.view_dock, self.layers_dock):
            dock.widget().setEnabled(has)

    def _about(self) -> None:
        from icportrait_studio import __version__

        QMessageBox.about(self, f"About {APP_NAME}", f"<b>{APP_NAME}</b> {__version__}<br>3D-aware portrait "
                          "relighting: a face mesh and normals from one photo, a light rig you can drag, "
                          "identity kept.")

    def _ensure_usable_size(self, *, restored: bool) -> None:
        """A first start, or a remembered geometry from a smaller screen, gets a sensible window.

        The default fills most of the screen (capped at 1480×920); a remembered size is kept unless
        it is too small to show the canvas beside the docks (e.g. saved on a tiny virtual screen).
        """
        screen = self.screen() or QApplication.primaryScreen()
        avail = screen.availableGeometry() if screen is not None else None
        max_w, max_h = (avail.width(), avail.height()) if avail is not None else (1480, 920)
        want_w, want_h = min(1480, int(max_w * 0.92)), min(920, int(max_h * 0.92))
        if restored and self.width() >= min(want_w, 1100) and self.height() >= min(want_h, 700):
            return
        self.resize(want_w, want_h)
        if avail is not None:
            self.move(avail.x() + (max_w - want_w) // 2, avail.y() + (max_h - want_h) // 2)

    def _restore_settings(self) -> None:
        geometry = self.settings.get_bytes("window_geometry")
        if geometry:
            self.restoreGeometry(QByteArray(geometry))
        self._ensure_usable_size(restored=bool(geometry))
        state = self.settings.get_bytes("window_state")
        if state:
            self.restoreState(QByteArray(state))
        self.actions_.mesh.setChecked(bool(self.settings.get("overlay_mesh", False)))

    def save_settings(self) -> None:
        self.settings.set_bytes("window_geometry", bytes(self.saveGeometry().data()))
        self.settings.set_bytes("window_state", bytes(self.saveState().data()))
        self.settings.set("overlay_mesh", self.actions_.mesh.isChecked())
        self.settings.save()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not (self.ext.batch.may_close() and self.ready_to_close()):
            event.ignore()
            return
        self.save_settings()
        self._autosave_timer.stop()
        # Nothing may call back into the window while Qt tears it down (the undo stack emits on clear).
        for obj in (self.undo_stack, self.bridge, self.io, self.renderer):
            obj.blockSignals(True)
        self.display.doc = None  # a pending display refresh (the base layer's, 2 s after opening) does nothing
        self.bridge.shutdown()
        self.io.shutdown()
        self.discard_recovery()
        self.ext.shutdown()
        event.accept()
        self.closed.emit()

    def save_project(self, path: str | None = None, then=None) -> None:  # type: ignore[no-untyped-def]
        """In edit mode (``icportrait edit FILE``) Save writes the result back to the host's file."""
        if path is None and self.ext.edit_mode.active:
            self.ext.edit_mode.write_back(then)
        else:
            super().save_project(path, then)


def _request(doc: Document):
    from icportrait_studio.core.request import EditRequest

    return EditRequest(image_id=doc.id, rig=doc.rig, view=doc.view, backend=doc.backend, quality="full")

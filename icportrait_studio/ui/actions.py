"""Menus, toolbar, shortcuts, and the undo command every edit becomes.

Undo works on whole-document snapshots (``DocState``) rather than per-edit inverse operations: a
snapshot is a few small frozen objects plus shared references to immutable pixel arrays, so it is cheap,
and restoring one is exact by construction. Rendered layers (relit / view) are stored without their
pixels, which are a function of the rig and come back from the render cache (or a re-render).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QUndoCommand
from PySide6.QtWidgets import QMainWindow, QMenu, QSizePolicy, QToolBar, QWidget

from icportrait_studio.core.document import DocState
from icportrait_studio.core.history import history_for_save, states_from_history
from icportrait_studio.core.project import EXTENSION
from icportrait_studio.ui.action_factory import make_action
from icportrait_studio.ui.export_actions import with_type_extension


class StateCommand(QUndoCommand):
    """Moves the document between two snapshots. The edit is already applied when it is pushed."""

    def __init__(self, apply: Callable[[DocState], None], before: DocState, after: DocState, text: str,
                 merge_key: object | None = None) -> None:
        super().__init__(text)
        self.apply, self.before, self.after, self.merge_key = apply, before, after, merge_key
        self._pushed = False

    def redo(self) -> None:
        if not self._pushed:  # QUndoStack.push calls redo(); the edit already happened
            self._pushed = True
            return
        self.apply(self.after)

    def undo(self) -> None:
        self.apply(self.before)

    def id(self) -> int:
        return 7 if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        """Consecutive edits of one control (e.g. a layer's opacity) become one history step."""
        if not isinstance(other, StateCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        self.setText(other.text())
        return True


# ---------------------------------------------------------------------------------------------------
# Actions, menus, toolbar


@dataclass
class Actions:
    open: QAction
    open_linear: QAction
    save: QAction
    save_as: QAction
    export: QAction
    import_layer: QAction
    quit: QAction
    undo: QAction
    redo: QAction
    fit: QAction
    zoom_100: QAction
    zoom_in: QAction
    zoom_out: QAction
    before: QAction
    split: QAction
    mesh: QAction
    overlays: dict[str, QAction]
    cancel_jobs: QAction
    save_preset: QAction
    shortcuts: QAction
    about: QAction


def create_actions(win: QMainWindow) -> Actions:
    overlays = {
        "none": make_action(win, "No Overlay", "0", "Hide analysis overlays", checkable=True),
        "normals": make_action(win, "Normals", "N", "Show the estimated surface normals", checkable=True),
        "shading": make_action(win, "Shading Only", "H", "Show only the rig's shading, without the photo",
                           checkable=True),
        "matte": make_action(win, "Matte", "T", "Show the person matte (what gets relit)", checkable=True),
    }
    group = QActionGroup(win)
    for a in overlays.values():
        group.addAction(a)
    overlays["none"].setChecked(True)
    return Actions(
        open=make_action(win, "&Open…", QKeySequence.StandardKey.Open, "Open a portrait or an .icps project", "open"),
        open_linear=make_action(win, "Open as &Linear Light…", None,
                            "Open an image whose values are proportional to light but say nothing about it "
                            "(a machine-vision or scientific capture, a linear export without a profile)"),
        save=make_action(win, "&Save Project", QKeySequence.StandardKey.Save, "Save the project (.icps)", "save"),
        save_as=make_action(win, "Save Project &As…", "Ctrl+Shift+S", "Save the project under a new name"),
        export=make_action(win, "&Export Image…", "Ctrl+E", "Export the result as PNG, JPEG or 16-bit TIFF", "export"),
        import_layer=make_action(win, "&Import Image as Layer…", "Ctrl+Shift+I", "Add an image as a new layer"),
        quit=make_action(win, "&Quit", QKeySequence.StandardKey.Quit, "Quit IC-Portrait Studio"),
        undo=make_action(win, "&Undo", ["Ctrl+Z"], "Undo the last edit", "undo"),
        redo=make_action(win, "&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], "Redo the edit undone last", "redo"),
        fit=make_action(win, "&Fit to Window", "F", "Fit the whole image in the window", "fit"),
        zoom_100=make_action(win, "Actual Pixels (100%)", "1", "One image pixel per screen pixel", "zoom-100"),
        zoom_in=make_action(win, "Zoom &In", ["Ctrl++", "Ctrl+="], "Zoom in"),
        zoom_out=make_action(win, "Zoom &Out", "Ctrl+-", "Zoom out"),
        before=make_action(win, "Show &Before", "B", "Toggle between the original photo and the result",
                       "before-after", checkable=True),
        split=make_action(win, "&Split Before/After", "Y", "Original on the left of a draggable line, result on "
                      "the right", "split", checkable=True),
        mesh=make_action(win, "Face &Mesh", "M", "Show the detected face mesh", "mesh", checkable=True),
        overlays=overlays,
        cancel_jobs=make_action(win, "&Cancel All Jobs", "Ctrl+.", "Cancel every queued and running job", "cancel"),
        save_preset=make_action(win, "&Save Rig as Preset…", None,
                            "Keep the current lights as a preset of your own (also for `icportrait --preset`)"),
        shortcuts=make_action(win, "&Keyboard Shortcuts", "F1", "List the keyboard shortcuts"),
        about=make_action(win, "&About IC-Portrait Studio"),
    )


def build_menus(win: QMainWindow, a: Actions, recent_menu: QMenu, presets_menu: QMenu, panels_menu: QMenu) -> None:
    bar = win.menuBar()
    file = bar.addMenu("&File")
    file.addActions([a.open, a.open_linear])
    file.addMenu(recent_menu)
    file.addSeparator()
    file.addActions([a.save, a.save_as])
    file.addSeparator()
    file.addActions([a.import_layer, a.export])
    file.addSeparator()
    file.addAction(a.quit)
    edit = bar.addMenu("&Edit")
    edit.addActions([a.undo, a.redo])
    view = bar.addMenu("&View")
    view.addActions([a.fit, a.zoom_100, a.zoom_in, a.zoom_out])
    view.addSeparator()
    view.addActions([a.before, a.split])
    view.addSeparator()
    view.addAction(a.mesh)
    view.addActions(list(a.overlays.values()))
    view.addSeparator()
    view.addMenu(panels_menu)
    lighting = bar.addMenu("&Lighting")
    lighting.addMenu(presets_menu)
    lighting.addAction(a.save_preset)
    jobs = bar.addMenu("&Jobs")
    jobs.addAction(a.cancel_jobs)
    helpm = bar.addMenu("&Help")
    helpm.addActions([a.shortcuts, a.about])
    for action in (a.before, a.split, a.mesh, a.fit, a.zoom_100, *a.overlays.values()):
        win.addAction(action)  # shortcuts work even when the menu bar is hidden


def build_toolbar(win: QMainWindow, a: Actions, extra: list[QWidget]) -> QToolBar:
    tb = QToolBar("Main", win)
    tb.setObjectName("mainToolbar")
    tb.setMovable(False)
    tb.addActions([a.open, a.save, a.export])
    tb.addSeparator()
    tb.addActions([a.undo, a.redo])
    tb.addSeparator()
    tb.addActions([a.fit, a.zoom_100])
    tb.addSeparator()
    tb.addActions([a.before, a.split, a.mesh])
    spacer = QWidget(tb)
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    tb.addWidget(spacer)
    for w in extra:
        tb.addWidget(w)
    win.addToolBar(tb)
    return tb


SHORTCUTS_HTML = """<table cellspacing=6>
<tr><td><b>Ctrl+O</b></td><td>Open image or project</td></tr>
<tr><td><b>Ctrl+S / Ctrl+Shift+S</b></td><td>Save project / Save as</td></tr>
<tr><td><b>Ctrl+E</b></td><td>Export image</td></tr>
<tr><td><b>Ctrl+Shift+B</b></td><td>Apply the edit to other photos</td></tr>
<tr><td><b>Ctrl+Z / Ctrl+Shift+Z</b></td><td>Undo / Redo</td></tr>
<tr><td><b>F / 1</b></td><td>Fit / 100 %</td></tr>
<tr><td><b>Wheel, pinch, Ctrl+= / Ctrl+-</b></td><td>Zoom</td></tr>
<tr><td><b>Space+drag, middle drag</b></td><td>Pan</td></tr>
<tr><td><b>B</b></td><td>Before / after</td></tr>
<tr><td><b>Y</b></td><td>Split before / after (drag the line)</td></tr>
<tr><td><b>M, N, H, T, 0</b></td><td>Overlays: mesh, normals, shading, matte, none</td></tr>
<tr><td><b>Ctrl+.</b></td><td>Cancel all jobs</td></tr>
<tr><td><b>Shift+M, [ / ]</b></td><td>Mask brush (Alt-drag hides the layer), brush size</td></tr>
<tr><td><b>Light sphere</b></td><td>Drag a handle; double-click adds a light; Delete removes it</td></tr>
</table>"""


# ---------------------------------------------------------------------------------------------------
# Files: open, save, export, import, recent files, autosave and recovery

# what imaging.io opens: the photo formats, plus the scientific ones (Yale's .pgm faces are linear light)
IMAGE_PATTERNS = "*.png *.jpg *.jpeg *.tif *.tiff *.webp *.avif *.jp2 *.bmp *.tga *.pgm *.ppm *.pnm"
IMAGE_FILTER = f"Images ({IMAGE_PATTERNS})"
OPEN_FILTER = f"Portraits and projects ({IMAGE_PATTERNS} *{EXTENSION});;" \
              f"{IMAGE_FILTER};;IC-Portrait projects (*{EXTENSION});;All files (*)"
# filter -> (extension, bits, converted to sRGB: the web's colour space, as Lightroom's export offers it)
EXPORT_FILTERS = {"PNG 8-bit (*.png)": (".png", 8, False), "PNG 16-bit (*.png)": (".png", 16, False),
                  "JPEG (*.jpg *.jpeg)": (".jpg", 8, False), "TIFF 16-bit (*.tif *.tiff)": (".tif", 16, False),
                  "JPEG for the web, converted to sRGB (*.jpg *.jpeg)": (".jpg", 8, True)}
AUTOSAVE_MS = 5000


class FileOpsMixin:
    """The MainWindow's file handling (kept apart to keep main_window.py short). Expects the attributes
    MainWindow sets up: doc, undo_stack, renderer, io, settings, recent_menu, actions_."""

    def _init_files(self) -> None:
        from PySide6.QtCore import QTimer

        w = self  # type: ignore[assignment]
        a: Actions = w.actions_
        a.open.triggered.connect(lambda: self.open_dialog())
        a.open_linear.triggered.connect(lambda: self.open_dialog(encoding="linear"))
        a.save.triggered.connect(lambda: self.save_project())
        a.save_as.triggered.connect(lambda: self.save_project_as())
        a.export.triggered.connect(lambda: self.export_image())
        a.import_layer.triggered.connect(lambda: self.import_layer())
        a.quit.triggered.connect(w.close)
        w.recent_menu.aboutToShow.connect(self._fill_recent)
        self._autosave_timer = QTimer(w)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_MS)
        self._autosave_timer.timeout.connect(self._autosave)
        self._autosaving = False
        self._autosave_error: str | None = None  # the last failure said; cleared by a save that works
        self._close_approved = False
        self._drop_note: tuple[str, str] | None = None  # (photo, what to say once it has opened)
        w.documentOpened.connect(self._say_drop_note)  # type: ignore[attr-defined]

    # --- dialogs -----------------------------------------------------------------------------------------

    def _error(self, title: str, text: str) -> None:
        from PySide6.QtWidgets import QMessageBox

        self.statusBar().showMessage(text, 15000)  # type: ignore[attr-defined]
        QMessageBox.critical(self, title, text)  # type: ignore[arg-type]

    def open_dialog(self, encoding: str = "auto") -> None:
        """Ask for a file and open it; ``encoding`` as ``imaging.io.load_image`` takes it (projects keep
        their own)."""
        from PySide6.QtWidgets import QFileDialog

        title = "Open as linear light" if encoding == "linear" else "Open portrait or project"
        path, _ = QFileDialog.getOpenFileName(self, title,  # type: ignore[arg-type]
                                              self.settings.folder("last_open_dir"), OPEN_FILTER)  # type: ignore[attr-defined]
        if path:
            self.open_path(path, encoding=encoding)

    def _fill_recent(self) -> None:
        menu = self.recent_menu  # type: ignore[attr-defined]
        menu.clear()
        files = self.settings.recent_files()  # type: ignore[attr-defined]
        for i, path in enumerate(files):
            encoding = self.settings.recent_encoding(path)  # type: ignore[attr-defined]
            suffix = "  (linear light)" if encoding == "linear" else ""
            act = menu.addAction(f"&{(i + 1) % 10}  {os.path.basename(path)}{suffix}")
            act.setToolTip(path)
            act.setStatusTip(path)
            act.triggered.connect(lambda _c=False, p=path, e=encoding: self.open_path(p, encoding=e))
        if not files:
            menu.addAction("No recent files").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear Recent Files").triggered.connect(self.settings.clear_recent)  # type: ignore[attr-defined]

    def _on_files_dropped(self, paths: list[str]) -> None:
        """One file opens. Several photos dropped on an open photo are the rest of its shoot: the dialog
        that applies its edit to them opens with them listed. With none open, the first opens and the
        status bar says how to relight the others once its lights are set."""
        if not paths:
            return
        photos = [p for p in paths if not p.lower().endswith(EXTENSION)]
        if len(photos) > 1 and self.doc is not None:  # type: ignore[attr-defined]
            self.ext.batch.open_dialog(photos)  # type: ignore[attr-defined]
            return
        self._drop_note = None if len(paths) == 1 else (
            paths[0], f"Opened {os.path.basename(paths[0])}; {len(paths) - 1} more dropped: set the lights, then "
                      "drop them again or use File ▸ Apply Edit to Photos… to relight them the same way")
        self.open_path(paths[0])

    def _say_drop_note(self) -> None:
        note, self._drop_note = self._drop_note, None
        doc = self.doc  # type: ignore[attr-defined]
        if note is not None and doc is not None and doc.path == note[0]:
            self.statusBar().showMessage(note[1], 20000)  # type: ignore[attr-defined]

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self._on_files_dropped(paths)

    def ask_save(self) -> str:
        """'clean' when there is nothing to save, else the user's answer: 'save', 'discard' or 'cancel'."""
        from PySide6.QtWidgets import QMessageBox

        if not self.is_dirty():  # type: ignore[attr-defined]
            return "clean"
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        answer = QMessageBox.question(self, "Unsaved changes",  # type: ignore[arg-type]
                                      f"Save the changes to {self.doc.title} first?",  # type: ignore[attr-defined]
                                      buttons, QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}.get(
            answer, "cancel")

    def maybe_save_then(self, proceed: Callable[[], None]) -> None:
        """Ask about unsaved changes; ``proceed`` runs at once after Discard, or after a successful Save."""
        answer = self.ask_save()
        if answer in ("clean", "discard"):
            proceed()
        elif answer == "save":
            self.save_project(then=proceed)

    # --- opening ---------------------------------------------------------------------------------------------

    def open_path(self, path: str, encoding: str = "auto") -> None:
        """Open an image or a project. The current document stays until the new one has loaded.

        ``encoding``: how an image's values map to light ("auto" asks the file, "srgb", "linear")."""
        path = os.fspath(path)
        self.maybe_save_then(lambda: self._load(path, encoding=encoding))

    def _load(self, path: str, recovered: bool = False, encoding: str = "auto") -> None:
        from icportrait_studio.ui.work import open_work, project_work

        name = os.path.basename(path)
        self.statusBar().showMessage(f"Opening {name}…")  # type: ignore[attr-defined]
        if path.lower().endswith(EXTENSION):
            self.io.submit(project_work(path), label=f"Open {name}", priority=10,  # type: ignore[attr-defined]
                           on_done=lambda out: self._project_loaded(path, out, recovered),
                           on_error=lambda msg: self._error("Cannot open project", msg))
        else:
            self.io.submit(open_work(path, encoding), label=f"Open {name}", priority=10,  # type: ignore[attr-defined]
                           on_done=lambda out: self._image_loaded(path, out, encoding),
                           on_error=lambda msg: self._error("Cannot open image", msg))

    def _image_loaded(self, path: str, out: object, encoding: str = "auto") -> None:
        from icportrait_studio.core.document import Document, default_rig

        rig = self.light_panel.rig()  # type: ignore[attr-defined]
        doc = Document.from_loaded(out.loaded, rig=rig if rig.lights else default_rig())  # type: ignore[attr-defined]
        self.set_document(doc, out.proxies)  # type: ignore[attr-defined]
        self._remember(path, "last_open_dir", encoding)

    def _project_loaded(self, path: str, out: tuple, recovered: bool) -> None:
        doc, history, proxy = out
        states = states_from_history(history, doc) if len(history) else None
        if recovered:
            doc.project_path = None  # recovered work is saved under a name the user picks
        self.set_document(doc, proxy, states, history.descriptions, history.index,  # type: ignore[attr-defined]
                          clean=not recovered)
        if not recovered:
            self._remember(path, "last_open_dir")

    def _remember(self, path: str, folder_key: str, encoding: str = "auto") -> None:
        self.settings.add_recent(path, encoding)  # type: ignore[attr-defined]
        self.settings.set_folder_from(folder_key, path)  # type: ignore[attr-defined]

    def import_layer(self, path: str | None = None) -> None:
        from PySide6.QtWidgets import QFileDialog

        from icportrait_studio.core.document import Layer
        from icportrait_studio.ui.work import import_work

        doc = self.doc  # type: ignore[attr-defined]
        if doc is None:
            return
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import image as layer",  # type: ignore[arg-type]
                                                  self.settings.folder("last_open_dir"), IMAGE_FILTER)  # type: ignore[attr-defined]
            if not path:
                return
        name, doc_id = os.path.splitext(os.path.basename(path))[0], doc.id

        def done(out: object) -> None:
            rgb, alpha, display, note = out  # type: ignore[misc]
            if self.doc is not None and self.doc.id == doc_id:  # type: ignore[attr-defined]
                self.add_imported_layer(Layer(name, "imported", rgb, mask=alpha), display)  # type: ignore[attr-defined]
                if note:
                    self.statusBar().showMessage(f"Imported {name}: {note}", 12000)  # type: ignore[attr-defined]

        self.io.submit(import_work(path, doc.size, doc.icc_profile, doc.encoding), label=f"Import {name}",  # type: ignore[attr-defined]
                       priority=8, on_done=done, on_error=lambda msg: self._error("Cannot import layer", msg))

    # --- saving ----------------------------------------------------------------------------------------------

    def _snapshot_for_write(self, project_path: str | None) -> tuple:
        """Document copy, history and extra layers as they are now (the write happens on a worker)."""
        from icportrait_studio.core.document import Document, Layer

        doc = self.doc  # type: ignore[attr-defined]
        state = doc.snapshot()
        snap = Document(base=doc.base, alpha=doc.alpha, icc_profile=doc.icc_profile, bit_depth=doc.bit_depth,
                        encoding=doc.encoding, path=doc.path, project_path=project_path, rig=state.rig, view=state.view,
                        backend=state.backend, layers=[Layer.from_state(s) for s in state.layers],
                        analysis_info=dict(doc.analysis_info), warnings=list(doc.warnings), id=doc.id,
                        source_landmarks=doc.source_landmarks)
        stack = self.undo_stack  # type: ignore[attr-defined]
        commands = [(stack.command(i).text(), stack.command(i).after) for i in range(stack.count())]
        history, extra = history_for_save(self._base_entry, commands, stack.index(), snap)  # type: ignore[attr-defined]
        return snap, history, extra, stack.index()

    def _with_full_render(self, snap: object, then: Callable[[object], None], what: str) -> None:
        """Make sure the snapshot's relit layer holds a full-quality render before writing it out."""
        relit = snap.relit_layer  # type: ignore[attr-defined]

        def got(out: object) -> None:
            relit.pixels, relit.quality, relit.request_id = out.image, "full", out.request.request_id  # type: ignore[attr-defined]
            snap.face_landmarks = out.landmarks  # type: ignore[attr-defined]
            then(snap)

        if relit.pixels is not None and relit.quality == "full" and self.renderer.cached(  # type: ignore[attr-defined]
                snap.rig, snap.view, snap.backend) is not None:  # type: ignore[attr-defined]
            got(self.renderer.cached(snap.rig, snap.view, snap.backend))  # type: ignore[attr-defined]
            return
        self.renderer.full(snap.rig, snap.view, snap.backend, then=got,  # type: ignore[attr-defined]
                           on_error=lambda msg: self._error(f"Cannot {what}", msg))

    def save_project(self, path: str | None = None, then: Callable[[], None] | None = None) -> None:
        from icportrait_studio.core.project import save_project

        doc = self.doc  # type: ignore[attr-defined]
        if doc is None:
            return
        path = path or doc.project_path
        if not path:
            self.save_project_as(then)
            return
        snap, history, extra, index = self._snapshot_for_write(path)
        name = os.path.basename(path)

        def write(s: object) -> None:
            self.io.submit(lambda p, t: save_project(s, path, history, extra_layers=extra),  # type: ignore[attr-defined]
                           label=f"Save {name}", priority=3, on_done=lambda _r: saved(),
                           on_error=lambda msg: self._error("Cannot save project", msg))

        def saved() -> None:
            if self.doc is not None and self.doc.id == snap.id:  # type: ignore[attr-defined]
                self.doc.project_path = path  # type: ignore[attr-defined]
                if self.undo_stack.index() == index:  # type: ignore[attr-defined]
                    self.undo_stack.setClean()  # type: ignore[attr-defined]
                self._update_title()  # type: ignore[attr-defined]
            self._remember(path, "last_project_dir")
            self.discard_recovery()
            self.statusBar().showMessage(f"Saved {name}", 4000)  # type: ignore[attr-defined]
            if then is not None:
                then()

        self._with_full_render(snap, write, "save the project")

    def save_project_as(self, then: Callable[[], None] | None = None) -> None:
        from PySide6.QtWidgets import QFileDialog

        doc = self.doc  # type: ignore[attr-defined]
        if doc is None:
            return
        stem = os.path.splitext(doc.title)[0]
        start = os.path.join(self.settings.folder("last_project_dir"), stem + EXTENSION)  # type: ignore[attr-defined]
        path, _ = QFileDialog.getSaveFileName(self, "Save project", start,  # type: ignore[arg-type]
                                              f"IC-Portrait projects (*{EXTENSION})")
        if path:
            if not path.lower().endswith(EXTENSION):
                path += EXTENSION
            self.save_project(path, then)

    def export_image(self, path: str | None = None, bit_depth: int | None = None, to_srgb: bool = False) -> None:
        """Flatten the visible layers at full resolution and write PNG / JPEG / 16-bit TIFF, in the photo's
        own profile or (``to_srgb``) converted to sRGB."""
        from PySide6.QtWidgets import QFileDialog

        from icportrait_studio.imaging.io import save_image

        doc = self.doc  # type: ignore[attr-defined]
        if doc is None:
            return
        if path is None:
            stem = os.path.splitext(doc.title)[0] + "_relit"
            start = os.path.join(self.settings.folder("last_export_dir"), stem + ".png")  # type: ignore[attr-defined]
            path, chosen = QFileDialog.getSaveFileName(self, "Export image", start,  # type: ignore[arg-type]
                                                       ";;".join(EXPORT_FILTERS))
            if not path:
                return
            ext, bits, to_srgb = EXPORT_FILTERS.get(chosen, (".png", 8, False))
            path = with_type_extension(path, chosen, ext)
            bit_depth = bit_depth or bits
        ext = os.path.splitext(path)[1].lower()
        bits = bit_depth or (16 if ext in (".tif", ".tiff") else 8)
        snap, *_ = self._snapshot_for_write(doc.project_path)
        name = os.path.basename(path)

        def write(s: object) -> None:
            def work(p: Callable, t: object) -> str | None:
                rgb, icc, encoding, note = s.flatten(), s.icc_profile, s.encoding, None  # type: ignore[attr-defined]
                if to_srgb:
                    from icportrait_studio.imaging.profile_convert import as_srgb

                    (rgb, icc, note), encoding = as_srgb(rgb, icc, encoding), "srgb"
                save_image(path, rgb, alpha=s.alpha, bit_depth=bits, icc_profile=icc,  # type: ignore[attr-defined]
                           encoding=encoding, landmarks=s.export_landmarks())  # type: ignore[attr-defined]
                return note

            def done(note: object) -> None:
                self.statusBar().showMessage(f"Exported {path}" + (f" ({note})" if note else ""), 8000)  # type: ignore[attr-defined]

            self.io.submit(work, label=f"Export {name}", priority=3, on_done=done,  # type: ignore[attr-defined]
                           on_error=lambda msg: self._error("Cannot export", msg))

        self.settings.set_folder_from("last_export_dir", path)  # type: ignore[attr-defined]
        self._with_full_render(snap, write, "export")

    # --- autosave and recovery ---------------------------------------------------------------------------

    def _schedule_autosave(self) -> None:
        if self.is_dirty():  # type: ignore[attr-defined]
            self._autosave_timer.start()

    def _autosave(self) -> None:
        from icportrait_studio.core.project import autosave_path, save_project

        if self.doc is None or not self.is_dirty():  # type: ignore[attr-defined]
            return
        if self._autosaving:
            self._autosave_timer.start()
            return
        snap, history, extra, _ = self._snapshot_for_write(self.doc.project_path)  # type: ignore[attr-defined]
        self._autosaving = True

        def finished(*_a: object) -> None:
            self._autosaving = False

        def saved(_result: object) -> None:
            finished()
            self._autosave_error = None  # a later failure is news again

        def failed(message: str) -> None:  # said once per cause: the next autosave would only repeat it
            finished()
            if message != self._autosave_error:
                self._autosave_error = message
                self.statusBar().showMessage(f"Autosave (crash recovery) failed: {message}. Save the project "  # type: ignore[attr-defined]
                                             "to keep your work.", 20000)

        self.io.submit(lambda p, t: save_project(snap, autosave_path(), history, extra_layers=extra),  # type: ignore[attr-defined]
                       label="Autosave (crash recovery)", priority=-5, replace_key="autosave", on_done=saved,
                       on_error=failed, on_cancel=finished)

    def discard_recovery(self) -> None:
        from icportrait_studio.core.project import discard_autosave

        discard_autosave()

    def offer_recovery(self) -> bool:
        """At start: if the last session left unsaved work, offer to bring it back. True if recovering."""
        from PySide6.QtWidgets import QMessageBox

        from icportrait_studio.core.project import recovery_available

        info = recovery_available()
        if info is None:
            return False
        answer = QMessageBox.question(
            self, "Recover unsaved work?",  # type: ignore[arg-type]
            f"IC-Portrait Studio did not close normally. Unsaved work on <b>{info.title}</b> from "
            f"{info.saved:%Y-%m-%d %H:%M} can be recovered.<br><br>Recover it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        if answer == QMessageBox.StandardButton.Yes:
            self._load(str(info.path), recovered=True)
            return True
        self.discard_recovery()
        return False

    def ready_to_close(self) -> bool:
        """closeEvent's question: True to close now; after 'Save' the window closes once the save is done."""
        if self._close_approved:
            return True
        answer = self.ask_save()
        if answer == "save":
            def approve() -> None:
                self._close_approved = True
                self.close()  # type: ignore[attr-defined]

            self.save_project(then=approve)
        return answer in ("clean", "discard")

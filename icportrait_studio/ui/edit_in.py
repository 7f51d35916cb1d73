"""File → Edit In ▸: hand the layers to an external editor, bring every save back as a new layer.

``EditInSession`` (plugins/edit_in.py, Qt-free) watches the file on its own thread; its callback only
emits a signal, delivered queued on the GUI thread, where each version becomes one 'imported' layer
and one undo step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QInputDialog, QMenu

if TYPE_CHECKING:
    from icportrait_studio.plugins.edit_in import EditInSession
    from icportrait_studio.plugins.editors import EditorSpec
    from icportrait_studio.ui.main_window import MainWindow


class EditInController(QObject):
    versionArrived = Signal(object, object, str)  # session, pixels, snapshot path (watcher thread -> GUI)
    problem = Signal(str)
    editorExited = Signal(str, int)
    layerAdded = Signal(str)  # layer name (tests wait on it)

    def __init__(self, win: MainWindow) -> None:
        super().__init__(win)
        self.win = win
        self.sessions: list[tuple[EditInSession, str]] = []  # (session, document id)
        self.menu = QMenu("Edit &In", win)
        self.menu.setToolTipsVisible(True)
        self.menu.setEnabled(False)
        self.menu.aboutToShow.connect(self._fill_menu)
        queued = Qt.ConnectionType.QueuedConnection
        self.versionArrived.connect(self._on_version, queued)
        self.problem.connect(lambda msg: win.statusBar().showMessage(f"Edit in: {msg}", 15000), queued)
        self.editorExited.connect(self._on_exit, queued)

    # --- menu ------------------------------------------------------------------------------------------

    def _fill_menu(self) -> None:
        from icportrait_studio.plugins.editors import available_editors

        self.menu.clear()
        try:
            editors = available_editors()
        except Exception as exc:  # a broken plugin manifest must not break the File menu
            editors = []
            self.win.statusBar().showMessage(f"Edit in: cannot list editors: {exc}", 10000)
        for editor in editors:
            act = self.menu.addAction(editor.name + ("" if editor.plugin else " (custom)"))
            tip = f"Open the layers in {editor.name} as .{editor.format}. {editor.note}".strip()
            act.setToolTip(tip)
            act.setStatusTip(tip)
            act.triggered.connect(lambda _c=False, e=editor: self.start(e))
        if not editors:
            self.menu.addAction("No editors found").setEnabled(False)
        self.menu.addSeparator()
        other = self.menu.addAction("Other command…")
        other.setStatusTip("Any program: a command line with {file} where the file goes")
        other.triggered.connect(lambda: self.other_command())

    def other_command(self) -> None:
        from icportrait_studio.errors import InputError
        from icportrait_studio.plugins.editors import custom_editor, load_custom_editors, save_custom_editors

        command, ok = QInputDialog.getText(self.win, "Edit in another program",
                                           "Command ({file} is replaced by the file; a TIFF is sent):")
        if not ok or not command.strip():
            return
        try:
            name = os.path.basename(command.split()[0])
            editor = custom_editor(name, command.strip(), "tif")
            known = [e for e in load_custom_editors() if e.id != editor.id]
            save_custom_editors([*known, editor])
        except (InputError, OSError, ValueError) as exc:
            self.win._error("Cannot use that command", str(exc))
            return
        self.start(editor)

    # --- sessions ---------------------------------------------------------------------------------------

    def start(self, editor: EditorSpec, **session_options: object) -> None:
        """Write the document (full-quality render) in the editor's format and start the editor."""
        from icportrait_studio.plugins.edit_in import EditInSession

        win = self.win
        doc = win.doc
        if doc is None:
            return
        session = EditInSession(lambda px, path: self.versionArrived.emit(session, px, str(path)),
                                on_error=self.problem.emit,
                                on_exit=lambda code: self.editorExited.emit(editor.name, int(code)),
                                **session_options)  # type: ignore[arg-type]
        snap, *_ = win._snapshot_for_write(doc.project_path)
        stem = os.path.splitext(doc.title)[0]

        def write(s: object) -> None:
            def work(_p: object, _t: object) -> Path:
                from icportrait_studio.plugins.export import document_from_app

                return session.start(editor, document_from_app(s), name=stem)

            win.io.submit(work, label=f"Edit in {editor.name}", priority=3, on_done=started,
                          on_error=lambda msg: win._error(f"Cannot edit in {editor.name}", msg))

        def started(path: object) -> None:
            self.sessions.append((session, doc.id))
            note = f" {editor.note}" if editor.note else " Save there to bring the changes back as a layer."
            win.statusBar().showMessage(f"Editing {os.path.basename(str(path))} in {editor.name}.{note}", 15000)

        win._with_full_render(snap, write, f"edit in {editor.name}")

    def _on_version(self, session: EditInSession, pixels: np.ndarray, path: str) -> None:
        from icportrait_studio.core.document import Layer
        from icportrait_studio.plugins.export import fit
        from icportrait_studio.ui.work import encode_display

        win = self.win
        doc_id = next((d for s, d in self.sessions if s is session), None)
        if win.doc is None or doc_id != win.doc.id:
            return  # the document it came from is no longer open
        version = next((v for v in session.versions if str(v.path) == path), None)
        name = version.layer_name if version else f"Edited ({os.path.basename(path)})"
        w, h = win.doc.size
        rgb = fit(np.asarray(pixels, np.float32), w, h)
        alpha = None if version is None or version.alpha is None else fit(version.alpha, w, h)
        layer = Layer(name, "imported", np.ascontiguousarray(rgb), mask=alpha)
        win.add_imported_layer(layer, encode_display(layer.pixels, None, alpha))
        note = f": {version.note}" if version is not None and version.note else ""
        win.statusBar().showMessage(f"Added layer '{name}'{note}", 15000 if note else 6000)
        self.layerAdded.emit(name)

    def _on_exit(self, name: str, code: int) -> None:
        self.win.statusBar().showMessage(f"{name} closed" + (f" (exit code {code})" if code else ""), 8000)

    def stop_all(self) -> None:
        for session, _doc in self.sessions:
            session.stop(final_check=False, timeout=1.0)
        self.sessions.clear()

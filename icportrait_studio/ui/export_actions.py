"""File → Export Layered…: the document's layers as PSD or OpenRaster through the exporter plugins."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from icportrait_studio.ui.action_factory import make_action

if TYPE_CHECKING:
    from icportrait_studio.ui.main_window import MainWindow

LAYERED_FILTERS = {"Photoshop PSD (*.psd)": ".psd", "OpenRaster (*.ora)": ".ora"}


def with_type_extension(path: str, chosen: str, ext: str) -> str:
    """``path`` with the extension of the file type picked in a save dialog (``chosen``, its filter text),
    unless it already has one of that type's: the dialog proposes "x.png" and a user who picks JPEG
    expects x.jpg, not a PNG."""
    stem, given = os.path.splitext(path)
    if given.lower() in re.findall(r"\*(\.\w+)", chosen):
        return path
    is_extension = given[1:].isalpha()  # "portrait v1.2" has no extension to replace
    return (stem if is_extension else path) + ext


class LayeredExport:
    def __init__(self, win: MainWindow) -> None:
        self.win = win
        self.action = make_action(win, "Export &Layered…", "Ctrl+Shift+E",
                                  "Export every layer (Original, Relit, imported) as a layered PSD or OpenRaster file")
        self.action.setEnabled(False)
        self.action.triggered.connect(lambda: self.export())

    def export(self, path: str | None = None, bit_depth: int | None = None) -> None:
        """Write the layer stack (with a full-quality relit layer) on the I/O worker."""
        from PySide6.QtWidgets import QFileDialog

        win = self.win
        doc = win.doc
        if doc is None:
            return
        if path is None:
            stem = os.path.splitext(doc.title)[0] + "_layers"
            start = os.path.join(win.settings.folder("last_export_dir"), stem + ".psd")
            path, chosen = QFileDialog.getSaveFileName(win, "Export layered", start, ";;".join(LAYERED_FILTERS))
            if not path:
                return
            path = with_type_extension(path, chosen, LAYERED_FILTERS.get(chosen, ".psd"))
        bits = bit_depth or (16 if doc.bit_depth >= 16 else 8)
        snap, *_ = win._snapshot_for_write(doc.project_path)
        shading = win._shading  # the current rig's shading: a hidden retouching layer, as the CLI exports
        name = os.path.basename(path)
        target = path

        def write(s: object) -> None:
            def work(_p: object, _t: object) -> str:
                from icportrait_studio.plugins.export import document_from_app, export_document, shading_layer

                layered = document_from_app(s)
                layered.bit_depth = bits
                if shading is not None:
                    layered.layers.insert(2 if len(layered.layers) >= 2 else 1,
                                          shading_layer(shading, *layered.size))
                return str(export_document(target, layered))

            win.io.submit(work, label=f"Export {name}", priority=3,
                          on_done=lambda _r: win.statusBar().showMessage(f"Exported layers to {target}", 6000),
                          on_error=lambda msg: win._error("Cannot export layers", msg))

        win.settings.set_folder_from("last_export_dir", path)
        win._with_full_render(snap, write, "export")

"""Edit mode: the window as another application's external editor (``icportrait edit FILE``).

Save writes the flattened result back to the host's file, atomically and in its own format and bit
depth (``plugins.edit_target.EditTarget.write_back``: a 16-bit TIFF stays 16-bit); the title says
whose file is being edited; with ``exit_on_close`` the application quits when the window closes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from icportrait_studio.plugins.edit_target import EditTarget
    from icportrait_studio.ui.main_window import MainWindow


class EditMode:
    def __init__(self, win: MainWindow) -> None:
        self.win = win
        self.target: EditTarget | None = None
        self.exit_on_close = False
        self.writes = 0

    @property
    def active(self) -> bool:
        return self.target is not None

    def title(self, doc: object | None, app_name: str) -> str:
        if doc is None:
            return app_name
        name = doc.title  # type: ignore[attr-defined]
        if self.target is not None:
            return f"{name}[*] — editing for another app (Save writes it back) — {app_name}"
        return f"{name}[*] — {app_name}"

    def enter(self, target: EditTarget, exit_on_close: bool = False) -> None:
        """Switch the window to edit mode and open the target's pixels (already decoded)."""
        from icportrait_studio.core.document import Document, default_rig
        from icportrait_studio.ui.work import make_proxies

        win = self.win
        self.target, self.exit_on_close = target, exit_on_close
        a = win.actions_
        name = os.path.basename(str(target.path))
        a.save.setText(f"&Save to {name}")
        tip = f"Write the result back to {target.path} ({target.bit_depth}-bit) for the app that opened it"
        a.save.setStatusTip(tip)
        a.save.setToolTip(f"{tip}  (Ctrl+S)")
        if exit_on_close:
            from PySide6.QtWidgets import QApplication

            win.closed.connect(QApplication.quit)
        img = target.image
        rig = win.light_panel.rig()
        doc = Document(base=img.rgb, alpha=img.alpha, icc_profile=img.icc_profile,
                       bit_depth=16 if img.bit_depth >= 16 else 8, encoding=getattr(img, "encoding", "srgb"),
                       path=str(target.path),
                       rig=rig if rig.lights else default_rig(), warnings=list(img.warnings))

        def opened(proxies: object) -> None:
            win.set_document(doc, proxies)  # type: ignore[arg-type]
            win.statusBar().showMessage(f"Editing {name} for another app: Save (Ctrl+S) writes it back", 10000)

        win.io.submit(lambda _p, _t: make_proxies(img.rgb, img.alpha), label=f"Open {name}", priority=10,
                      on_done=opened, on_error=lambda msg: win._error("Cannot open image", msg))

    def write_back(self, then: Callable[[], None] | None = None) -> None:
        """The window's Save in edit mode: full-quality flatten, then ``EditTarget.write_back`` on the I/O worker."""
        win, target = self.win, self.target
        if win.doc is None or target is None:
            return
        snap, _history, _extra, index = win._snapshot_for_write(None)
        name = os.path.basename(str(target.path))

        def write(s: object) -> None:
            win.io.submit(lambda _p, _t: target.write_back(s.flatten(), s.alpha),  # type: ignore[attr-defined]
                          label=f"Save {name}", priority=3, on_done=lambda _r: saved(),
                          on_error=lambda msg: win._error(f"Cannot write {name} back", msg))

        def saved() -> None:
            self.writes += 1
            if win.doc is not None and win.doc.id == snap.id and win.undo_stack.index() == index:
                win.undo_stack.setClean()
            win._update_title()
            win.discard_recovery()
            win.statusBar().showMessage(f"Saved back to {target.path} ({target.bit_depth}-bit)", 6000)
            if then is not None:
                then()

        win._with_full_render(snap, write, f"save {name}")

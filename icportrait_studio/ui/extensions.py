"""Features wired into the main window after it was written, kept out of main_window.py.

``Extensions(win)`` adds File → Export Layered…, File → Edit In ▸, Layer ▸ Mask (and the mask brush),
Settings → Models…, Help → Plugins…, the identity-distance read-out (status bar + Properties) and latent
previews of diffusion jobs on the canvas, and holds the edit mode of ``icportrait edit FILE``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QLabel, QMenu, QStyle

from icportrait_studio.jobs import Job
from icportrait_studio.ui.batch_actions import BatchApply
from icportrait_studio.ui.edit_in import EditInController
from icportrait_studio.ui.edit_mode import EditMode
from icportrait_studio.ui.export_actions import LayeredExport
from icportrait_studio.ui.mask_actions import MaskController
from icportrait_studio.ui.models_dialog import ModelsController
from icportrait_studio.ui.plugins_dialog import PluginsController

if TYPE_CHECKING:
    from icportrait_studio.ui.main_window import MainWindow

WARN_STYLE = "color: #ffb347; font-weight: bold;"
OK_STYLE = "color: #9fd49f;"


class IdentityIndicator(QLabel):
    """"Identity distance 0.31" in the status bar and the Properties panel; a warning above IDENTITY_WARN."""

    def __init__(self, win: MainWindow) -> None:
        super().__init__("", win)
        self.win = win
        self.distance: float | None = None
        self.warning = False
        self.pending = False
        self.setToolTip("Face-embedding distance between the photo and the full-quality result "
                        "(lower is the same person; shown after each full render)")
        self.hide()

    @staticmethod
    def threshold() -> float:
        from icportrait_studio.identity import IDENTITY_WARN

        return float(IDENTITY_WARN)

    def mark_pending(self) -> None:
        """A preview is on the canvas: the distance shown was measured on another result (a drag of the
        view sphere showed the frontal face's 0.37 next to a turned head, then jumped to a warning)."""
        if self.pending or not self.isVisible():
            return
        self.pending = True
        self.setText("Identity …")
        self.setStyleSheet("color: gray;")
        self.setToolTip("The identity distance is measured on the full-quality result, when the change ends")

    def show_info(self, info: dict) -> None:
        self.pending = False
        raw = info.get("identity_distance")
        try:
            dist = None if raw is None else float(raw)
        except (TypeError, ValueError):
            dist = None
        if dist is not None and not np.isfinite(dist):
            dist = None
        self.distance = dist
        props = self.win.props_panel
        if dist is None:
            self.warning = False
            self.setText("Identity —")
            self.setStyleSheet("")
            self.setToolTip("Identity distance not available for this result (no face, or the identity model "
                            "is not installed)")
            props.set_rows("Identity", [("Identity distance", "not available")])
            self.setVisible(True)
            return
        limit = self.threshold()
        self.warning = dist > limit
        text = f"Identity distance {dist:.2f}"
        if self.warning:
            self.setText(f"⚠ {text}")
            self.setStyleSheet(WARN_STYLE)
            self.setToolTip(f"Above {limit:.2f}: the result may no longer look like the same person. Try a "
                            "smaller view change, a lower strength, or the physical backend.")
            self.win.statusBar().showMessage(f"Warning: {text} is above {limit:.2f}: the result may not look "
                                             "like the same person", 12000)
        else:
            self.setText(text)
            self.setStyleSheet(OK_STYLE)
            self.setToolTip(f"Same person (threshold {limit:.2f})")
            # no status-bar message: this label already shows it, and repeating it after every full
            # render pushed out the message that was there ("Saved portrait.icps")
        props.set_rows("Identity", [("Identity distance", f"{dist:.2f}"),
                                    ("Status", f"⚠ above {limit:.2f}" if self.warning else "ok")])
        section = props._sections["Identity"]
        for i in range(section.childCount()):
            section.child(i).setToolTip(1, self.toolTip())
            if self.warning:
                section.child(i).setForeground(1, QBrush(QColor("#ffb347")))
                section.child(i).setIcon(1, self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
        self.setVisible(True)


class LatentPreview:
    """While a diffusion render runs, its latent previews (``Progress.preview``) cover the canvas."""

    def __init__(self, win: MainWindow) -> None:
        self.win = win
        self.active_job: int | None = None
        self.shown = 0

    def on_job(self, pipeline: bool, job: Job) -> None:
        if not pipeline or job.replace_key not in ("preview", "full"):
            return
        if not job.done and job.preview is not None and self.win.doc is not None:
            rgba = preview_rgba(job.preview)
            if rgba is None:
                return
            self.active_job = job.id
            self.shown += 1
            canvas = self.win.canvas
            canvas.overlay.setOpacity(1.0)
            canvas.set_overlay("latent", rgba)
            self.win.status_render.setText(f"{job.stage or 'refining'}…")
        elif job.done and self.active_job == job.id:
            self.active_job = None
            self.win._update_overlays()  # back to the overlay the user chose (usually none)


def preview_rgba(preview: object) -> np.ndarray | None:
    """A backend's preview (linear float HxWx3) as straight RGBA bytes for the overlay item."""
    arr = np.asarray(preview)
    if arr.ndim != 3 or arr.shape[2] < 3 or arr.size == 0:
        return None
    from icportrait_studio.ui.work import display_rgb8

    rgb8 = display_rgb8(np.clip(np.nan_to_num(arr[..., :3].astype(np.float32)), 0, 1))
    alpha = np.full((*rgb8.shape[:2], 1), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([rgb8, alpha], axis=2))


class Extensions(QObject):
    def __init__(self, win: MainWindow) -> None:
        super().__init__(win)
        self.win = win
        self.identity = IdentityIndicator(win)
        win.statusBar().insertPermanentWidget(0, self.identity)
        self.latent = LatentPreview(win)
        self.edit_mode = EditMode(win)
        self.layered = LayeredExport(win)
        self.batch = BatchApply(win)
        self.edit_in = EditInController(win)
        self.plugins = PluginsController(win)
        self.models = ModelsController(win)
        self._extend_menus()
        self.masks = MaskController(win)  # Layer ▸ Mask and the mask brush

    def _extend_menus(self) -> None:
        win = self.win
        menus = {m.title().replace("&", ""): m for m in (a.menu() for a in win.menuBar().actions()) if m}
        file = menus["File"]
        export_action = win.actions_.export
        acts = file.actions()
        after = acts[acts.index(export_action) + 1] if export_action in acts else None
        file.insertAction(after, self.layered.action)
        file.insertAction(after, self.batch.action)
        file.insertMenu(after, self.edit_in.menu)
        settings = QMenu("&Settings", win)
        settings.addAction(self.models.action)
        win.menuBar().insertMenu(menus["Help"].menuAction(), settings)
        menus["Help"].insertAction(menus["Help"].actions()[-1], self.plugins.action)

    def set_enabled(self, has_doc: bool) -> None:
        self.layered.action.setEnabled(has_doc)
        self.batch.action.setEnabled(has_doc)
        self.edit_in.menu.setEnabled(has_doc)
        self.masks.set_enabled(has_doc)

    def start_background(self) -> None:
        self.models.check_backends()
        self.plugins.start()

    def shutdown(self) -> None:
        self.edit_in.stop_all()
        self.plugins.close_dialog()
        self.models.close_dialog()

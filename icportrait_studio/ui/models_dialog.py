"""Settings → Models…: the local model folder of the diffusion backend, checked as it is picked.

The check (``model.check.validate_model_folder``) reads configs and safetensors headers only, so it
runs on the spot; the choice is saved in the settings (``diffusion``, a ``DiffusionSettings`` dict) and
handed to the backend on the I/O worker, which then re-lists the backends for the toolbar combo.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from icportrait_studio.ui.action_factory import make_action

if TYPE_CHECKING:
    from icportrait_studio.model.check import ModelCheck
    from icportrait_studio.ui.main_window import MainWindow

SETTINGS_KEY = "diffusion"


def configure_and_list(diffusion: dict | None):  # -> WorkFn
    """Worker job: apply the saved diffusion settings to the backend, then list (name, available, reason)."""
    def work(progress: object, token: object) -> list[tuple[str, bool, str]]:
        from icportrait_studio.ui.work import backends_work

        if diffusion:
            try:
                import icportrait_studio.model  # noqa: F401  (registers 'diffusion')
                from icportrait_studio.model.backend import DiffusionSettings
                from icportrait_studio.pipeline.registry import get_backend

                wanted = DiffusionSettings.from_dict(diffusion).to_dict()
                get_backend("diffusion").configure(**wanted)  # type: ignore[attr-defined]
            except Exception as exc:  # the list below says why it is unavailable
                import logging

                logging.getLogger("icportrait.ui").info("diffusion settings not applied: %s", exc)
        return backends_work(progress, token)  # type: ignore[arg-type]

    return work


def _steps(value: object, default: int) -> int:
    """A saved step count, or ``default`` when the settings file holds something else there (hand-edited)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


class ModelsDialog(QDialog):
    def __init__(self, settings: dict, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings — Models")
        self.setMinimumWidth(720)
        self.check: ModelCheck | None = None
        folder = settings.get("model_dir")
        self.folder = QLineEdit(folder if isinstance(folder, str) else "", self)
        self.folder.setPlaceholderText("A local diffusers folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/)")
        self.folder.setClearButtonEnabled(True)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setObjectName("modelStatus")
        self.present = QLabel(self)
        self.missing = QLabel(self)
        self.vram = QLabel(self)
        self.allow_cpu = QCheckBox("Allow running on the CPU (very slow with real weights)", self)
        self.allow_cpu.setChecked(settings.get("allow_cpu") is True)
        self.preview_steps = QSpinBox(self)
        self.preview_steps.setRange(1, 100)
        self.preview_steps.setValue(_steps(settings.get("preview_steps"), 12))
        self.full_steps = QSpinBox(self)
        self.full_steps.setRange(1, 200)
        self.full_steps.setValue(_steps(settings.get("full_steps"), 28))
        form = QFormLayout()
        form.addRow("Model folder", row)
        form.addRow("Check", self.status)
        form.addRow("Present", self.present)
        form.addRow("Missing", self.missing)
        form.addRow("GPU memory", self.vram)
        form.addRow("Preview steps", self.preview_steps)
        form.addRow("Full steps", self.full_steps)
        form.addRow("", self.allow_cpu)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.validate)
        self.folder.textChanged.connect(lambda _t: self._timer.start())
        self._base = dict(settings)
        self.validate()

    def _browse(self) -> None:
        start = self.folder.text() or os.path.expanduser("~")
        path = QFileDialog.getExistingDirectory(self, "Model folder", start)
        if path:
            self.folder.setText(path)
            self.validate()

    def validate(self) -> ModelCheck | None:
        """Check the folder now; an empty field means 'no diffusion model' (allowed)."""
        from icportrait_studio.model.check import validate_model_folder

        self._timer.stop()
        path = self.folder.text().strip()
        if not path:
            self.check = None
            self._show("No folder set: the diffusion backend stays off.", "", "", "", ok=None)
            return None
        check = validate_model_folder(path)
        self.check = check
        vram = f"about {check.estimated_vram_gb:.1f} GB at 1024²" if check.estimated_vram_gb else "—"
        message = check.message
        if not check.ok and len(message) > 90:  # the parts are listed below, one per line
            message = f"Incomplete: {len(check.missing)} part(s) missing or unusable, listed below."
        self._show(message, "\n".join(check.present) or "nothing",
                   "\n".join(f"• {m}" for m in check.missing) or "nothing", vram, ok=check.ok)
        self.status.setToolTip(check.message)
        return check

    def _show(self, message: str, present: str, missing: str, vram: str, ok: bool | None) -> None:
        colour = {True: "#9fd49f", False: "#ff8a80", None: "#aab0b8"}[ok]
        self.status.setText(message)
        self.status.setStyleSheet(f"color: {colour};")
        self.present.setText(present)
        self.missing.setText(missing)
        self.missing.setStyleSheet("color: #ff8a80;" if ok is False else "")
        self.vram.setText(vram)
        self.layout().activate()
        self.resize(self.width(), self.sizeHint().height())

    def values(self) -> dict:
        """The settings to save (a DiffusionSettings dict; other keys kept as they were)."""
        from icportrait_studio.model.backend import DiffusionSettings

        data = {**self._base, "model_dir": self.folder.text().strip() or None, "allow_cpu": self.allow_cpu.isChecked(),
                "preview_steps": self.preview_steps.value(), "full_steps": self.full_steps.value()}
        return DiffusionSettings.from_dict(data).to_dict()


class ModelsController(QObject):
    def __init__(self, win: MainWindow) -> None:
        super().__init__(win)
        self.win = win
        self.dialog: ModelsDialog | None = None
        self.action = make_action(win, "&Models…", tip="Pick the local model folder of the diffusion backend")
        self.action.triggered.connect(lambda: self.show_dialog())

    def saved(self) -> dict:
        value = self.win.settings.get(SETTINGS_KEY)
        return dict(value) if isinstance(value, dict) else {}

    def check_backends(self) -> None:
        self.win.io.submit(configure_and_list(self.saved()), label="Checking backends", priority=-11,
                           on_done=lambda entries: self.win.backend_combo.set_backends(entries))  # type: ignore[arg-type]

    def show_dialog(self, modal: bool = True) -> ModelsDialog:
        self.dialog = ModelsDialog(self.saved(), self.win)
        self.dialog.accepted.connect(self.apply)
        if modal:
            self.dialog.open()  # window-modal, does not block the event loop
        return self.dialog

    def apply(self) -> None:
        if self.dialog is None:
            return
        values = self.dialog.values()
        self.win.settings.set(SETTINGS_KEY, values)
        self.win.settings.save()
        check = self.dialog.check
        msg = "Diffusion model folder cleared" if not values.get("model_dir") else (
            f"Model folder saved: {check.message}" if check else "Model folder saved")
        self.win.statusBar().showMessage(msg, 10000)
        self.check_backends()

    def close_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.close()

"""File ▸ Apply Edit to Photos…: the open photo's lights and head turn on other photos of the shoot.

A session is dozens of frames under the same lights; once the rig is right on one of them, a
photographer wants it on the rest without opening each (Lightroom's "Sync Settings", Capture One's
"Copy/Apply Adjustments"). The dialog takes the photos, an output folder, a file type and a name
suffix; each photo becomes one low-priority job on the pipeline worker, so dragging a light on the
open photo still answers between two photos of the batch, and each can be cancelled in the Jobs panel
(Ctrl+. cancels them all). Nothing is replaced without asking: results that exist already are
replaced or kept beside under a new name, a result never takes a photo's own path, and every write is
atomic. A photo that fails (unreadable, no face where one is needed…) is reported and skipped, and
the summary lists what failed and what came with warnings. Masks and imported layers belong to the
open photo and are not carried over.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from icportrait_studio.errors import ICPortraitError
from icportrait_studio.pipeline.batch import (
    BatchItem,
    ItemOutcome,
    existing_targets,
    keep_both,
    plan_batch,
    relight_item,
)
from icportrait_studio.ui.action_factory import make_action
from icportrait_studio.ui.actions import EXPORT_FILTERS, IMAGE_FILTER

if TYPE_CHECKING:
    from icportrait_studio.ui.main_window import MainWindow

BATCH_PRIORITY = -5  # below every render of the open photo (the renderer's jobs run first)
DEFAULT_SUFFIX = "_relit"


@dataclass(frozen=True)
class BatchChoice:
    """What the dialog asks: the photos, where the results go, their type (an ``EXPORT_FILTERS`` key)
    and what is added to each photo's name."""

    photos: tuple[str, ...]
    folder: str
    file_type: str
    suffix: str = DEFAULT_SUFFIX


@dataclass
class BatchRun:
    """One batch's tally, filled in as its jobs end (on the GUI thread)."""

    folder: str
    total: int
    written: list[ItemOutcome] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    cancelled: int = 0

    @property
    def ended(self) -> int:
        return len(self.written) + len(self.failed) + self.cancelled

    def summary(self) -> tuple[str, str]:
        """(one line for the status bar and the box, the details: each failure and each warning)."""
        head = f"Applied the edit to {len(self.written)} of {self.total} photo(s) in {self.folder}"
        extra = [f"{n} {what}" for n, what in ((len(self.failed), "failed"), (self.cancelled, "cancelled")) if n]
        lines = [f"{src.name}: {msg}" for src, msg in self.failed]
        lines += [f"{o.item.source.name}: warning: {w}" for o in self.written for w in o.warnings]
        return head + (f" ({', '.join(extra)})" if extra else ""), "\n".join(lines)


def sibling_encoding(open_photo: str) -> str:
    """How the other photos are read, given how the open one was: photos of one shoot share their camera's
    encoding, so a photo opened as linear light (a machine-vision or scientific capture whose files do not
    say so) has siblings that need the same reading; otherwise each file says for itself ("auto")."""
    return "linear" if open_photo == "linear" else "auto"


class BatchDialog(QDialog):
    """Photos, output folder, file type and name suffix; "Apply" is enabled once there is something to do."""

    def __init__(self, parent: QWidget | None, *, photos: list[str], folder: str, file_type: str,
                 suffix: str = DEFAULT_SUFFIX, start_dir: str = "", linear: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Apply edit to photos")
        self.start_dir = start_dir
        self.linear = linear  # the open photo was read as linear light: so are these (``BatchApply.start``)
        self.photos = QListWidget(self)
        self.photos.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        add, remove = QPushButton("Add Photos…", self), QPushButton("Remove", self)
        add.clicked.connect(lambda: self.add_photos())
        remove.clicked.connect(self.remove_selected)
        self.folder = QLineEdit(folder, self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        self.file_type = QComboBox(self)
        self.file_type.addItems(list(EXPORT_FILTERS))
        self.file_type.setCurrentText(file_type if file_type in EXPORT_FILTERS else next(iter(EXPORT_FILTERS)))
        self.suffix = QLineEdit(suffix, self)
        self.example = QLabel(self)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Save into", folder_row)
        form.addRow("File type", self.file_type)
        form.addRow("Add to names", self.suffix)
        form.addRow("", self.example)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Photos to relight with the open photo's lights:", self))
        layout.addWidget(self.photos, 1)
        layout.addLayout(row)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(self.buttons)
        for signal in (self.folder.textChanged, self.suffix.textChanged, self.file_type.currentTextChanged):
            signal.connect(self._update)
        self.add_photos(photos)
        self.resize(560, 480)

    def add_photos(self, paths: list[str] | None = None) -> None:
        """Add ``paths`` (None: ask for them), each once."""
        if paths is None:
            paths, _ = QFileDialog.getOpenFileNames(self, "Photos to apply the edit to", self.start_dir, IMAGE_FILTER)
        have = set(self.paths())
        for p in paths:
            if p not in have:
                self.photos.addItem(p)
                have.add(p)
        if paths:
            self.start_dir = os.path.dirname(paths[0])
            if not self.folder.text():
                self.folder.setText(os.path.join(self.start_dir, "relit"))
        self._update()

    def remove_selected(self) -> None:
        for item in self.photos.selectedItems():
            self.photos.takeItem(self.photos.row(item))
        self._update()

    def paths(self) -> list[str]:
        return [self.photos.item(i).text() for i in range(self.photos.count())]

    def choice(self) -> BatchChoice:
        return BatchChoice(tuple(self.paths()), self.folder.text().strip(), self.file_type.currentText(),
                           self.suffix.text().strip())

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the results into", self.folder.text() or self.start_dir)
        if folder:
            self.folder.setText(folder)

    def _update(self) -> None:
        c = self.choice()
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(bool(c.photos and c.folder))
        ok.setText(f"Apply to {len(c.photos)} Photo{'s' if len(c.photos) != 1 else ''}")
        ext, _bits, to_srgb = EXPORT_FILTERS[c.file_type]
        stem = Path(c.photos[0]).stem if c.photos else "photo"
        self.example.setText(f"e.g. {stem}{c.suffix}{ext}")
        colour = "converted to sRGB" if to_srgb else "in its photo's own colour profile"
        values = " The photos are read as linear light, as the open one was." if self.linear else ""
        self.note.setText("The lights and the head turn of the open photo are applied; its masks and layers are "
                          f"not.{values} Each result is written {colour}.")


class BatchApply:
    """The action, the dialog and the jobs; ``runs`` keeps each batch's tally until it has ended."""

    def __init__(self, win: MainWindow) -> None:
        self.win = win
        self.action = make_action(win, "Apply Edit to &Photos…", "Ctrl+Shift+B",
                                  "Relight other photos with this photo's lights and head turn, into a folder "
                                  "of your choice")
        self.action.setEnabled(False)
        self.action.triggered.connect(lambda: self.open_dialog())
        self.runs: list[BatchRun] = []
        self.summary_box: QMessageBox | None = None

    def open_dialog(self, photos: list[str] | None = None) -> BatchDialog | None:
        """Show the dialog (pre-filled with ``photos``); on Apply, start the batch."""
        win = self.win
        if win.doc is None:
            return None
        settings = win.settings
        start = settings.folder("last_open_dir")
        dialog = BatchDialog(win, photos=list(photos or []), folder=str(settings.get("batch_folder", "") or ""),
                             file_type=str(settings.get("batch_type", "") or ""),
                             suffix=str(settings.get("batch_suffix", DEFAULT_SUFFIX)), start_dir=start,
                             linear=sibling_encoding(win.doc.encoding) == "linear")
        if photos is None:
            dialog.add_photos()
            if not dialog.paths():
                return None
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return dialog
        choice = dialog.choice()
        for key, value in (("batch_folder", choice.folder), ("batch_type", choice.file_type),
                           ("batch_suffix", choice.suffix)):
            settings.set(key, value)
        settings.save()
        self.start(choice)
        return dialog

    def start(self, choice: BatchChoice, *, existing: str | None = None) -> BatchRun | None:
        """Queue one job per photo. ``existing`` says what to do with results already on disk ("replace" or
        "keep" both); None asks. Returns the run, or None when nothing was started."""
        win = self.win
        doc = win.doc
        if doc is None or not choice.photos:
            return None
        ext, bits, to_srgb = EXPORT_FILTERS.get(choice.file_type, (".png", 8, False))
        # "~/out" is the home folder's; a bare "relit" lies beside the photos, not in the app's working folder
        folder = os.path.expanduser(choice.folder)
        if not os.path.isabs(folder):
            folder = os.path.join(os.path.dirname(os.path.abspath(choice.photos[0])), folder)
        items = plan_batch(choice.photos, folder, ext=ext, suffix=choice.suffix)
        there = existing_targets(items)
        if there:
            existing = existing or self._ask_existing(there)
            if existing not in ("replace", "keep"):
                return None
            if existing == "keep":
                items = keep_both(items)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            win._error("Cannot apply the edit", f"Cannot create the folder {folder}: {exc.strerror or exc}")
            return None
        state = doc.snapshot()
        encoding = sibling_encoding(doc.encoding)
        run = BatchRun(folder, len(items))
        self.runs.append(run)
        for i, item in enumerate(items, 1):
            win.bridge.submit(self._work(item, state.rig, state.view, state.backend, bits, to_srgb, encoding),
                                    label=f"Apply edit {i}/{len(items)}: {item.source.name}", priority=BATCH_PRIORITY,
                                    on_done=lambda out, r=run: self._ended(r, out),
                                    on_error=lambda msg, r=run, it=item: self._ended(r, (it.source, msg)),
                                    on_cancel=lambda r=run: self._ended(r, None))
        win.statusBar().showMessage(f"Applying the edit to {len(items)} photo(s)…", 4000)
        return run

    @staticmethod
    def _work(item: BatchItem, rig: object, view: object, backend: str, bits: int, to_srgb: bool,  # -> WorkFn
              encoding: str):
        def work(progress, token) -> ItemOutcome:  # type: ignore[no-untyped-def]
            token.raise_if_cancelled()
            out = relight_item(item, rig, view=view, backend=backend, to_srgb=to_srgb,  # type: ignore[arg-type]
                               encoding=encoding, bit_depth=bits, keep_analysis=False, progress=progress, cancel=token)
            if not out.ok:  # a failed job in the Jobs panel, its message in the row's tooltip
                raise ICPortraitError(out.error or "failed")
            return out

        return work

    def _ask_existing(self, there: list[Path]) -> str | None:
        box = QMessageBox(QMessageBox.Icon.Question, "Apply edit to photos",
                          f"{len(there)} of the results exist already in {there[0].parent}.", parent=self.win)
        box.setInformativeText("Replace them, or keep them and save the new results under new names?")
        box.setDetailedText("\n".join(p.name for p in there))
        replace = box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep Both", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)
        box.exec()
        return {id(replace): "replace", id(keep): "keep"}.get(id(box.clickedButton()))

    def _ended(self, run: BatchRun, out: object) -> None:
        if isinstance(out, ItemOutcome) and out.ok:
            run.written.append(out)
        elif isinstance(out, ItemOutcome):
            run.failed.append((out.item.source, out.error or "failed"))
        elif isinstance(out, tuple):
            run.failed.append(out)
        else:
            run.cancelled += 1
        if run.ended < run.total:
            return
        self.runs.remove(run)
        head, details = run.summary()
        self.win.statusBar().showMessage(head, 15000)
        if run.failed or details:
            self._show_summary(head, details, warn=bool(run.failed), folder=run.folder if run.written else None)

    def _show_summary(self, head: str, details: str, *, warn: bool, folder: str | None) -> None:
        """A box that does not block (the batch ended while the user may be dragging a light)."""
        if self.summary_box is not None:
            self.summary_box.close()
        icon = QMessageBox.Icon.Warning if warn else QMessageBox.Icon.Information
        box = QMessageBox(icon, "Apply edit to photos", head + ".", parent=self.win)
        box.setInformativeText("Failed photos were skipped; the others were written." if warn
                               else "Some photos came with warnings.")
        box.setDetailedText(details)
        box.addButton(QMessageBox.StandardButton.Ok)
        if folder is not None:
            show = box.addButton("Show Folder", QMessageBox.ButtonRole.ActionRole)
            show.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))
        box.setModal(False)
        box.show()
        self.summary_box = box

    def busy(self) -> int:
        """Photos of unfinished batches not yet relit (asked about before the window closes)."""
        return sum(run.total - run.ended for run in self.runs)

    def may_close(self) -> bool:
        """True when no batch is running, or the user agrees to stop it."""
        left = self.busy()
        if not left:
            return True
        answer = QMessageBox.question(self.win, "Apply edit to photos",
                                      f"{left} photo(s) of a batch are still waiting to be relit. "
                                      "Stop the batch and quit? (The results written so far are kept.)")
        return answer == QMessageBox.StandardButton.Yes

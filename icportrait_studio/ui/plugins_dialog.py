"""Help → Plugins…: every plugin found, its state, and the problems plugins reported.

``PluginRegistry.subscribe`` calls back from whichever thread hit the problem; the listener only emits
a signal (queued to the GUI thread), where the message goes to the status bar and the dialog's log.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from icportrait_studio.errors import ICPortraitError
from icportrait_studio.ui.action_factory import make_action

if TYPE_CHECKING:
    from icportrait_studio.plugins.registry import PluginMessage, PluginRegistry
    from icportrait_studio.ui.main_window import MainWindow


def _count(n: int, kind: str) -> str:
    word = kind.replace("_", " ")
    return f"{n} {word if n != 1 else word.removesuffix('s')}"


class PluginsDialog(QDialog):
    def __init__(self, registry: PluginRegistry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Plugins")
        self.resize(760, 460)
        self.registry = registry
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Plugin", "Version", "State", "Contributes", "Location"])
        self.tree.setRootIsDecorated(False)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setPlaceholderText("No plugin problems reported.")
        self.log.setMaximumBlockCount(500)
        self.tree.setToolTip("Untick a plugin to turn it off, tick one to turn it on (from the next start)")
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        self.note.hide()
        self._filling = False
        self.tree.itemChanged.connect(self._toggled)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 3)
        layout.addWidget(self.note)
        layout.addWidget(QLabel("Messages", self))
        layout.addWidget(self.log, 1)
        layout.addWidget(buttons)
        self.refresh()

    def refresh(self) -> None:
        self._filling = True
        try:
            self._fill()
        finally:
            self._filling = False

    def _fill(self) -> None:
        self.tree.clear()
        for info in self.registry.plugins():
            kinds: dict[str, int] = {}
            for c in info.manifest.contributions:
                kinds[c.kind] = kinds.get(c.kind, 0) + 1
            where = str(info.location) if info.location else (info.package or "")
            item = QTreeWidgetItem([info.name, info.manifest.version, info.state,
                                    ", ".join(_count(n, k) for k, n in kinds.items()) or "—",
                                    os.path.basename(where) if info.location else where])
            item.setToolTip(0, info.manifest.description or info.name)
            item.setToolTip(4, where)
            if info.message:
                item.setToolTip(2, info.message)
            if info.state == "disabled":
                for col in range(5):
                    item.setForeground(col, Qt.GlobalColor.red if col == 2 else Qt.GlobalColor.gray)
            elif self.registry.get(info.name) is info:  # not a shadowed duplicate: the user may switch it
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                on = self.registry.choices.wants(info.manifest)
                item.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                if info.state == "off":
                    for col in range(5):
                        item.setForeground(col, Qt.GlobalColor.gray)
            self.tree.addTopLevelItem(item)
        self.log.setPlainText("\n".join(f"[{m.level}] {m.plugin}: {m.text}" for m in self.registry.messages))

    def _toggled(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0:
            return
        name, on = item.text(0), item.checkState(0) == Qt.CheckState.Checked
        choices = self.registry.choices
        choices.set(name, on)
        try:
            choices.save()
        except ICPortraitError as exc:
            self.note.setText(f"Could not keep the choice: {exc}")
        else:
            self.note.setText(f"'{name}' will be {'on' if on else 'off'} the next time IC-Portrait Studio starts"
                              + (f" (saved in {choices.path})" if choices.path else "") + ".")
        self.note.show()

    def plugin_states(self) -> dict[str, str]:
        return {self.tree.topLevelItem(i).text(0): self.tree.topLevelItem(i).text(2)
                for i in range(self.tree.topLevelItemCount())}


class PluginsController(QObject):
    message = Signal(object)  # PluginMessage, emitted from any thread, handled queued on the GUI thread

    def __init__(self, win: MainWindow) -> None:
        super().__init__(win)
        self.win = win
        self.registry: PluginRegistry | None = None
        self.dialog: PluginsDialog | None = None
        self.action = make_action(win, "&Plugins…", tip="List the plugins, their state and any problems they reported")
        self.action.triggered.connect(lambda: self.show_dialog())
        self.message.connect(self._on_message, Qt.ConnectionType.QueuedConnection)
        self._alive = True
        self.destroyed.connect(self._dead)

    def _dead(self) -> None:
        self._alive = False

    def start(self) -> None:
        """Discover the plugins on the I/O worker (manifests only; no plugin code runs)."""
        def work(_p: object, _t: object) -> PluginRegistry:
            from icportrait_studio.plugins.registry import default_registry

            return default_registry()

        self.win.io.submit(work, label="Finding plugins", priority=-12, on_done=self.attach)  # type: ignore[arg-type]

    def attach(self, registry: PluginRegistry) -> None:
        if self.registry is registry:
            return
        self.registry = registry
        if self.dialog is not None:
            self.dialog.registry = registry
        registry.subscribe(self._listener)
        problems = [m for m in registry.messages if m.level != "info"]
        if problems:
            self.win.statusBar().showMessage(
                f"{len(problems)} plugin problem(s): {problems[-1].plugin}: {problems[-1].text} (Help → Plugins…)",
                12000)

    def _listener(self, message: PluginMessage) -> None:  # any thread
        if self._alive:
            try:
                self.message.emit(message)
            except RuntimeError:  # the window (and this object) is gone
                self._alive = False

    def _on_message(self, message: PluginMessage) -> None:
        level = "Plugin problem" if message.level != "info" else "Plugin"
        self.win.statusBar().showMessage(f"{level}: {message.plugin}: {message.text} (Help → Plugins…)", 15000)
        if self.dialog is not None:
            self.dialog.refresh()

    def show_dialog(self) -> PluginsDialog:
        if self.registry is None:
            from icportrait_studio.plugins.registry import default_registry

            self.attach(default_registry())
        assert self.registry is not None
        if self.dialog is None:
            self.dialog = PluginsDialog(self.registry, self.win)
        self.dialog.refresh()
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def close_dialog(self) -> None:
        self._alive = False
        if self.dialog is not None:
            self.dialog.close()

"""Relight Krita's active layer through IC-Portrait Studio's live bridge; the result becomes a new layer.

Works in Krita 5 (PyQt5) and Krita 6 (PyQt6): only Qt calls that are the same in both are used. The UI
never blocks: the layer is sent, then a QTimer polls the job on the GUI thread (short loopback requests)
until it ends, with a deadline, and the result is inserted above the active layer.
"""

from __future__ import annotations

import importlib
import sys
import time

from krita import Extension, Krita

from .bridge_client import BridgeClient, BridgeError


def _import_qt():
    """The Qt binding the host already uses (mixing PyQt5 and PyQt6 in one process would crash)."""
    order = [name for name in ("PyQt6", "PyQt5") if name in sys.modules] + ["PyQt5", "PyQt6"]
    for name in order:
        try:
            return importlib.import_module(f"{name}.QtCore"), importlib.import_module(f"{name}.QtWidgets")
        except ImportError:
            continue
    raise ImportError("IC-Portrait Bridge needs PyQt5 or PyQt6 (Krita ships one of them)")


QtCore, QtWidgets = _import_qt()

TITLE = "IC-Portrait"
ACTION_ID = "icportrait_relight_layer"
POLL_MS = 200
TIMEOUT_S = 600.0
_DEPTHS = {"U8": 8, "U16": 16}


def _parent_widget():
    window = Krita.instance().activeWindow()
    return window.qwindow() if window is not None else None


def _warn(message: str) -> None:
    QtWidgets.QMessageBox.warning(_parent_widget(), TITLE, message)


class RelightTask:
    """One round trip: send the active layer, poll, insert the result. Kept alive by the extension."""

    def __init__(self, client: BridgeClient, document, node, preset: str, on_finish=None) -> None:
        self.client, self.document, self.node, self.preset = client, document, node, preset
        self.on_finish = on_finish
        self.job_id: str | None = None
        self.new_node = None
        self.error: str | None = None
        self.timer = QtCore.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._deadline = 0.0

    def start(self) -> None:
        doc, node = self.document, self.node
        if node.type() != "paintlayer":
            raise BridgeError("select a paint layer to relight")
        depth = _DEPTHS.get(node.colorDepth())
        if node.colorModel() != "RGBA" or depth is None:
            raise BridgeError("IC-Portrait relights RGB layers with 8 or 16 bits per channel "
                              f"(this one is {node.colorModel()} {node.colorDepth()})")
        self.width, self.height, self.depth = doc.width(), doc.height(), depth
        data = bytes(node.pixelData(0, 0, self.width, self.height))  # Krita stores 8/16-bit RGBA as BGRA
        self.job_id = self.client.submit_raw(data, self.width, self.height, order="bgra", bit_depth=depth,
                                             params={"preset": self.preset})
        self._deadline = time.monotonic() + TIMEOUT_S
        self.timer.start()

    def poll(self) -> None:
        try:
            if time.monotonic() > self._deadline:
                self.client.cancel(self.job_id)
                raise BridgeError(f"the relight did not finish within {TIMEOUT_S:.0f} s")
            st = self.client.status(self.job_id)
            if st["state"] in ("queued", "running"):
                return
            self.timer.stop()
            if st["state"] != "done":
                raise BridgeError(f"the relight {st['state']}: {st.get('error') or ''}".strip(": "))
            self._insert(self.client.result_raw(self.job_id))
        except BridgeError as exc:
            self.timer.stop()
            self.error = str(exc)
            _warn(self.error)
        if not self.timer.isActive() and self.on_finish is not None:
            self.on_finish(self)

    def _insert(self, data: bytes) -> None:
        doc = self.document
        layer = doc.createNode(f"Relit ({self.preset})", "paintlayer")
        parent = self.node.parentNode() or doc.rootNode()
        parent.addChildNode(layer, self.node)  # directly above the layer that was sent
        layer.setPixelData(QtCore.QByteArray(data), 0, 0, self.width, self.height)
        doc.refreshProjection()
        self.new_node = layer


class IcPortraitExtension(Extension):
    def __init__(self, parent) -> None:
        super().__init__(parent)
        self.tasks: list[RelightTask] = []
        self.last_preset = "loop"
        self.client_factory = BridgeClient.from_environment

    def setup(self) -> None:
        pass

    def createActions(self, window) -> None:
        action = window.createAction(ACTION_ID, "Relight with IC-Portrait…", "tools/scripts")
        action.triggered.connect(self.relight_active_layer)

    def relight_active_layer(self, *_args) -> RelightTask | None:
        doc = Krita.instance().activeDocument()
        if doc is None or doc.activeNode() is None:
            _warn("open an image and select the layer to relight")
            return None
        try:
            client = self.client_factory()
            presets = client.presets() or ["loop"]
            current = presets.index(self.last_preset) if self.last_preset in presets else 0
            preset, ok = QtWidgets.QInputDialog.getItem(_parent_widget(), TITLE, "Light preset:", presets,
                                                        current, False)
            if not ok:
                return None
            self.last_preset = str(preset)
            task = RelightTask(client, doc, doc.activeNode(), self.last_preset, on_finish=self._finished)
            task.start()
        except BridgeError as exc:
            _warn(str(exc))
            return None
        self.tasks.append(task)
        return task

    def _finished(self, task: RelightTask) -> None:
        if task in self.tasks:
            self.tasks.remove(task)


def register() -> None:
    app = Krita.instance()
    app.addExtension(IcPortraitExtension(app))

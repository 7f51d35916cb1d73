""""Edit in…": hand the layers to an external editor and bring every save back as a new layer.

Qt-free; the UI wires it like this::

    session = EditInSession(callback=lambda pixels, path: signal.emit(pixels, str(path)))  # watcher thread
    session.start(editor, document_from_app(doc))            # writes the file, starts the editor
    ...
    session.stop()                                            # on document close / app quit

``callback(pixels, path)`` runs on the watcher thread, once per saved version: ``pixels`` is linear
float32 HxWx3 (the flattened save; its size differs from the document's if the user cropped or
resized in the editor), ``path`` a private copy of that version (it stays valid after the next
save). The UI adds one layer per call, as one undo step; ``session.versions[-1]`` has the alpha, the
version number and a suggested layer name.

Why polling and a debounce: editors save in very different ways (write in place in several chunks,
write a temp file and rename, save twice in a row), and no file-notification API is portable. A
change is taken only after the file has kept the same size and mtime for ``debounce`` seconds; the
bytes are then copied to a snapshot and decoded from there, so a save in progress is never read
half-written, and an unchanged or identical save adds nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from icportrait_studio.errors import ICPortraitError, InputError
from icportrait_studio.plugins.api import ExportDocument, ExportLayer
from icportrait_studio.plugins.editors import EditorSpec
from icportrait_studio.plugins.export import export_document, read_flat
from icportrait_studio.plugins.registry import PluginRegistry

log = logging.getLogger(__name__)

VersionCallback = Callable[[np.ndarray, Path], None]


@dataclass(frozen=True)
class EditedVersion:
    number: int  # 1 for the first save
    pixels: np.ndarray  # linear float32 HxWx3
    alpha: np.ndarray | None
    path: Path  # the snapshot of this version
    layer_name: str  # e.g. "Edited in GIMP #2"
    saved_at: float  # time.time() when it was picked up
    note: str | None = None  # what the user should know about it (its colours could not be converted, ...)


class EditInSession:
    """One external editing round trip. Not restartable: make a new session for another edit."""

    def __init__(self, callback: VersionCallback, *, registry: PluginRegistry | None = None,
                 workdir: str | os.PathLike[str] | None = None, poll_interval: float = 0.25, debounce: float = 0.6,
                 on_error: Callable[[str], None] | None = None, on_exit: Callable[[int], None] | None = None,
                 launcher: Callable[..., subprocess.Popen] = subprocess.Popen) -> None:
        self._callback = callback
        self._registry = registry
        self._workdir = Path(workdir) if workdir else None
        self._poll = max(0.01, poll_interval)
        self._debounce = max(0.0, debounce)
        self._on_error = on_error
        self._on_exit = on_exit
        self._launcher = launcher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.editor: EditorSpec | None = None
        self.path: Path | None = None
        self.process: subprocess.Popen | None = None
        self.versions: list[EditedVersion] = []
        # Watcher state (only the watcher thread touches these after start).
        self._last_sig: tuple[int, int, int] | None = None
        self._pending: tuple[tuple[int, int, int], float] | None = None
        self._last_digest = b""
        self._last_pixels: np.ndarray | None = None
        self._icc: bytes | None = None
        self._exit_reported = False

    # --- life cycle --------------------------------------------------------------------------------

    def start(self, editor: EditorSpec, layers: ExportDocument | Sequence[ExportLayer], *, name: str = "portrait",
              icc_profile: bytes | None = None, bit_depth: int = 8) -> Path:
        """Write the layers in the editor's format, start the editor on the file, start watching.

        Returns the file being edited. Raises ``InputError`` when the file cannot be written or the
        editor cannot be started (nothing keeps running in that case)."""
        if self.editor is not None:
            raise RuntimeError("an EditInSession can only be started once")
        doc = layers if isinstance(layers, ExportDocument) else ExportDocument.from_layers(
            layers, icc_profile=icc_profile, bit_depth=bit_depth)
        workdir = self._workdir or Path(tempfile.mkdtemp(prefix="icportrait-edit-"))
        (workdir / "versions").mkdir(parents=True, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "portrait"
        path = workdir / f"{safe}{editor.extension}"
        export_document(path, doc, self._registry)
        self.editor, self.path = editor, path
        self._last_sig = _signature(path)
        self._last_digest = _digest(path.read_bytes())
        self._last_pixels = doc.flatten()[0]
        self._icc = doc.icc_profile  # an editor that saves in another profile is converted back into this one
        try:
            self.process = self._launcher(editor.command(path), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise InputError(f"cannot start {editor.name} ({editor.argv[0]}): {exc.strerror or exc}") from exc
        self._thread = threading.Thread(target=self._watch, name=f"edit-in-{editor.id}", daemon=True)
        self._thread.start()
        return path

    def stop(self, *, final_check: bool = True, timeout: float = 5.0) -> None:
        """Stop watching (the editor keeps running: closing someone's editor would lose their work).
        ``final_check`` picks up a save made just before stopping."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if final_check and self.path is not None and self._thread is not None:
            self._check(time.monotonic() + self._debounce + 1.0, force=True)
        if self._thread is not None and not self._thread.is_alive():
            self._report_exit()  # an exit the watcher had no poll left to see

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def editor_exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def wait_for_versions(self, count: int, timeout: float) -> bool:
        """Block until ``count`` versions came back (tests, scripts); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.versions) >= count:
                    return True
            time.sleep(0.02)
        return False

    # --- watching ------------------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self._check(time.monotonic())
                self._report_exit()
            except Exception as exc:  # keep watching: the next save may well be fine
                log.exception("edit-in watcher")
                self._error(f"could not bring the edit back: {exc}")

    def _report_exit(self) -> None:
        if self._exit_reported or self.process is None:
            return
        code = self.process.poll()
        if code is not None:
            self._exit_reported = True
            if self._on_exit is not None:
                self._on_exit(code)

    def _check(self, now: float, *, force: bool = False) -> None:
        assert self.path is not None
        with self._lock:
            sig = _signature(self.path)
            if sig is None or sig == self._last_sig:  # missing (mid-rename) or unchanged
                self._pending = None
                return
            if not force and (self._pending is None or self._pending[0] != sig):
                self._pending = (sig, now)  # a change: wait until it holds still
                return
            if not force and now - self._pending[1] < self._debounce:  # type: ignore[index]
                return
            data = self.path.read_bytes()
            if _signature(self.path) != sig:  # changed while reading: wait for the next quiet period
                self._pending = None
                return
            self._last_sig, self._pending = sig, None
            digest = _digest(data)
            if digest == self._last_digest:
                return
            number = len(self.versions) + 1
            snap = self.path.parent / "versions" / f"{self.path.stem}.v{number}{self.path.suffix}"
            from icportrait_studio.imaging.atomic import atomic_write_bytes

            atomic_write_bytes(snap, data)
            try:
                flat = read_flat(snap, self._registry)
            except (ICPortraitError, OSError, ValueError) as exc:
                snap.unlink(missing_ok=True)
                self._error(f"the file saved by {self._editor_name} could not be read: {exc}")
                return
            self._last_digest = digest
            from icportrait_studio.imaging.profile_convert import convert_layer

            rgb, note = convert_layer(flat.rgb, flat.icc_profile, self._icc, flat.bit_depth)
            flat = replace(flat, rgb=rgb)
            if self._last_pixels is not None and _same(flat.rgb, self._last_pixels):
                snap.unlink(missing_ok=True)
                return
            self._last_pixels = flat.rgb
            version = EditedVersion(number, flat.rgb, flat.alpha, snap, f"Edited in {self._editor_name} #{number}",
                                    time.time(), note)
            self.versions.append(version)
        self._callback(flat.rgb, snap)

    @property
    def _editor_name(self) -> str:
        return self.editor.name if self.editor else "editor"

    def _error(self, message: str) -> None:
        log.warning("%s", message)
        if self._on_error is not None:
            self._on_error(message)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, atol=1e-4))

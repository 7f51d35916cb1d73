"""The Qt side of the job manager: updates cross from the worker thread to the GUI thread here.

``JobManager.on_update`` runs on the worker thread. The bridge turns it into a private signal with a
*queued* connection to itself, so ``jobUpdated`` is always emitted on the GUI thread and every slot
connected to it can touch widgets. It also lets a caller attach completion callbacks to a job at
submit time (``on_done(result)``, ``on_error(message)``, ``on_cancel()``), which keeps the main
window free of job-id bookkeeping.
"""

from __future__ import annotations

import logging
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from icportrait_studio.core.request import EditRequest
from icportrait_studio.jobs import Job, JobManager, JobState, SubmitMode, WorkFn
from icportrait_studio.pipeline.base import SourceImage
from icportrait_studio.ui.work import Proxies, RenderOutcome, analysis_work, render_work

log = logging.getLogger(__name__)


@dataclass
class _Callbacks:
    on_done: Callable[[object], None] | None
    on_error: Callable[[str], None] | None
    on_cancel: Callable[[], None] | None


class JobsBridge(QObject):
    """A QObject wrapper around one :class:`JobManager`; lives on (and emits on) the GUI thread."""

    jobUpdated = Signal(object)  # a Job snapshot, always delivered on the GUI thread
    _fromWorker = Signal(object)

    def __init__(self, name: str = "pipeline", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._callbacks: dict[int, _Callbacks] = {}
        self._active: dict[int, Job] = {}  # latest snapshot of every job that has not ended
        self._fromWorker.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        # Results reach their callbacks through the DONE snapshot; the manager need not keep old ones
        # alive (each can be a 12-megapixel image), so only the newest keeps its result.
        self.manager = JobManager(on_update=self._fromWorker.emit, name=name, keep_results=1)

    # --- submitting ----------------------------------------------------------------------------------

    def submit(self, work: WorkFn, *, label: str, priority: int = 0, mode: SubmitMode = "queue",
               replace_key: str | None = None, cancel_running: bool = False,
               on_done: Callable[[object], None] | None = None, on_error: Callable[[str], None] | None = None,
               on_cancel: Callable[[], None] | None = None) -> Job:
        """Submit ``work``; the callbacks run on the GUI thread when the job ends."""
        job = self.manager.submit(work, label=label, priority=priority, mode=mode, replace_key=replace_key,
                                  cancel_running=cancel_running)
        if on_done or on_error or on_cancel:
            self._callbacks[job.id] = _Callbacks(on_done, on_error, on_cancel)
        snap = job.snapshot()
        if not snap.done and job.id not in self._active:
            self._active[job.id] = snap  # counted as busy before its first update crosses over
        return job

    def cancel(self, job_id: int) -> bool:
        return self.manager.cancel(job_id)

    def cancel_all(self) -> int:
        return self.manager.cancel_all()

    def cancel_key(self, replace_key: str) -> None:
        """Cancel every unfinished job submitted under ``replace_key`` (queued or running)."""
        for job in list(self._active.values()):
            if job.replace_key == replace_key:
                self.manager.cancel(job.id)

    def active_jobs(self) -> list[Job]:
        """Snapshots of the jobs that have not ended, as last seen on the GUI thread."""
        return list(self._active.values())

    def is_idle(self) -> bool:
        return not self._active

    def shutdown(self, timeout: float = 3.0) -> None:
        self._callbacks.clear()
        self.manager.shutdown(wait=True, cancel_pending=True, timeout=timeout)

    # --- delivery (GUI thread) -------------------------------------------------------------------------

    @Slot(object)
    def _deliver(self, job: Job) -> None:
        known = self._active.get(job.id)
        if known is not None and known.revision > job.revision:
            return  # an older snapshot overtaken by a newer one: never move the UI backwards
        if job.done:
            self._active.pop(job.id, None)
        else:
            self._active[job.id] = job
        self.jobUpdated.emit(job)
        if not job.done:
            return
        cb = self._callbacks.pop(job.id, None)
        if cb is None:
            return
        try:
            if job.state is JobState.DONE and cb.on_done:
                cb.on_done(job.result)
            elif job.state is JobState.FAILED and cb.on_error:
                cb.on_error(job.error or "failed")
            elif job.state is JobState.CANCELLED and cb.on_cancel:
                cb.on_cancel()
        except Exception:  # a broken handler must not stop other jobs' updates, nor pass unseen:
            log.error("handler for job %d (%s) raised", job.id, job.label)
            sys.excepthook(*sys.exc_info())  # the app's hook logs the traceback and says so in the status bar


class RenderCache:
    """Full-quality renders by (document, rig, view, backend), so undo/redo and re-picking a preset
    put back the exact pixels at once. Bounded by bytes, least recently used first out."""

    def __init__(self, budget_bytes: int = 1 << 30) -> None:
        self.budget = budget_bytes
        self._items: OrderedDict[tuple, RenderOutcome] = OrderedDict()

    def get(self, key: tuple) -> RenderOutcome | None:
        out = self._items.get(key)
        if out is not None:
            self._items.move_to_end(key)
        return out

    def put(self, key: tuple, outcome: RenderOutcome) -> None:
        self._items[key] = outcome
        self._items.move_to_end(key)
        while len(self._items) > 2 and sum(o.nbytes for o in self._items.values()) > self.budget:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class Renderer(QObject):
    """Turns rig edits into preview/full jobs and hands back only results that are still wanted.

    Interactive edits submit a 'preview' request in replace mode (one running, one pending, the newest
    wins); a final edit follows with a 'full' one. A result is applied only if its request is newer
    than everything applied so far and than the last ``invalidate()`` (undo, new document), so a slow
    old render can never overwrite a newer picture.
    """

    rendered = Signal(object)  # RenderOutcome, GUI thread, newest only
    analysed = Signal(object)  # AnalysisOutcome
    failed = Signal(str)

    PREVIEW_PRIORITY, FULL_PRIORITY, ANALYSIS_PRIORITY = 10, 0, 20
    IMMEDIATE_FULL_PIXELS = 2_000_000  # up to this size a full render is quick: start it at once
    FULL_DELAY_MS = 250

    def __init__(self, bridge: JobsBridge, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.cache = RenderCache()
        self.doc_id = ""
        self.doc_size = (0, 0)
        self.full_source: SourceImage | None = None
        self.analysis_source: SourceImage | None = None
        self.preview_source: SourceImage | None = None
        self.last_submitted = 0
        self.last_applied = 0
        self.drop_below = 0
        self._last_preview_key: tuple | None = None
        self._pending_full: tuple | None = None
        self._full_timer = QTimer(self)
        self._full_timer.setSingleShot(True)
        self._full_timer.timeout.connect(self._fire_full)
        self.stats = {"applied": 0, "dropped": 0}

    def set_document(self, doc_id: str, rgb: np.ndarray, alpha: np.ndarray | None,
                     proxies: Proxies | None = None, *, landmarks: np.ndarray | None = None,
                     tone: float | None = None) -> None:
        """All three sources share the document's id, so the backend analyses the face once (from the
        analysis proxy, queued first) and every render, preview or full, uses that same geometry.

        ``landmarks`` (photo pixels) are the ones the photo's file carried: each source gets them at
        its own size, so the analysis uses them instead of detecting the face again. ``tone``: the
        document's ``tone`` (the backends relight in its profile's own linear light)."""
        self.invalidate()
        self.cache.clear()
        proxies = proxies or Proxies()
        self.doc_id = doc_id
        self.doc_size = (int(rgb.shape[1]), int(rgb.shape[0]))

        def source(img: np.ndarray, a: np.ndarray | None) -> SourceImage:
            lm = None if landmarks is None else landmarks * np.float32(img.shape[1] / rgb.shape[1])
            return SourceImage(doc_id, img, a, lm, tone)

        self.full_source = source(rgb, alpha)
        self.analysis_source = source(*proxies.analysis) if proxies.analysis else self.full_source
        self.preview_source = source(*proxies.preview) if proxies.preview else self.analysis_source

    def clear(self) -> None:
        self.invalidate()
        self.cache.clear()
        self.doc_id, self.full_source, self.analysis_source, self.preview_source = "", None, None, None

    def invalidate(self) -> None:
        """Drop every render still in flight: its result would be for a state the user left."""
        self.drop_below = self.last_submitted + 1
        self._last_preview_key = None
        self._drop_pending_full()
        self.bridge.cancel_key("preview")
        self.bridge.cancel_key("full")

    def analyse(self, backend_name: str) -> None:
        if self.analysis_source is None:
            return
        doc_id = self.doc_id
        self.bridge.submit(analysis_work(backend_name, self.analysis_source, self.doc_size),
                           label="Analysing face", priority=self.ANALYSIS_PRIORITY,
                           on_done=lambda out: self._analysed(doc_id, out),
                           on_error=lambda msg: self.failed.emit(f"Face analysis failed: {msg}"))

    def key(self, rig: object, view: object, backend: str) -> tuple:
        return (self.doc_id, rig, view, backend)

    def cached(self, rig: object, view: object, backend: str) -> RenderOutcome | None:
        return self.cache.get(self.key(rig, view, backend))

    def preview(self, rig: object, view: object, backend: str) -> int:
        """An interactive edit: render a quick preview of the newest state (and drop a stale full render)."""
        self._drop_pending_full()
        self.bridge.cancel_key("full")
        return self._submit(rig, view, backend, "preview")

    def final(self, rig: object, view: object, backend: str) -> int:
        """A committed edit: the cached full render at once if there is one, else preview then full.

        On large photos the full render starts after a short pause: it cannot be interrupted halfway
        (about a second on 12 MP), and a user who releases a handle often grabs it again at once;
        the next drag's previews would otherwise queue behind it."""
        hit = self.cached(rig, view, backend)
        if hit is not None:
            self.invalidate()
            self._apply(hit, force=True)
            return hit.request.request_id
        rid = self.last_submitted
        if self._last_preview_key != self.key(rig, view, backend):
            rid = self._submit(rig, view, backend, "preview")
        if self.doc_size[0] * self.doc_size[1] <= self.IMMEDIATE_FULL_PIXELS:
            return self._submit(rig, view, backend, "full")
        self._pending_full = (rig, view, backend)
        self._full_timer.start(self.FULL_DELAY_MS)
        return rid

    @property
    def full_pending(self) -> bool:
        return self._pending_full is not None

    def _fire_full(self) -> None:
        if self._pending_full is not None:
            rig, view, backend = self._pending_full
            self._pending_full = None
            self._submit(rig, view, backend, "full")

    def _drop_pending_full(self) -> None:
        self._full_timer.stop()
        self._pending_full = None

    def full(self, rig: object, view: object, backend: str,
             then: Callable[[RenderOutcome], None] | None = None,
             on_error: Callable[[str], None] | None = None) -> int:
        """A full render for export/save; ``then`` gets it even if a newer edit makes it stale for display."""
        hit = self.cached(rig, view, backend)
        if hit is not None and then is not None:
            then(hit)
            return hit.request.request_id
        return self._submit(rig, view, backend, "full", then=then, on_error=on_error)

    def _submit(self, rig: object, view: object, backend: str, quality: str,
                then: Callable[[RenderOutcome], None] | None = None,
                on_error: Callable[[str], None] | None = None) -> int:
        source = self.preview_source if quality == "preview" else self.full_source
        if source is None:
            return 0
        request = EditRequest(image_id=source.image_id, rig=rig, view=view, backend=backend,  # type: ignore[arg-type]
                              quality=quality)  # type: ignore[arg-type]
        self.last_submitted = max(self.last_submitted, request.request_id)
        key = self.key(rig, view, backend)
        if quality == "preview":
            self._last_preview_key = key
        work = render_work(backend, request, source, self.doc_size, quality == "full")

        def done(out: object) -> None:
            assert isinstance(out, RenderOutcome)
            if quality == "full" and self.doc_id == key[0]:
                self.cache.put(key, out)
            self._apply(out)
            if then is not None:
                then(out)

        def error(msg: str) -> None:
            (on_error or self.failed.emit)(f"{'Preview' if quality == 'preview' else 'Render'} failed: {msg}")

        self.bridge.submit(work, label="Live preview" if quality == "preview" else "Full render",
                           priority=self.PREVIEW_PRIORITY if quality == "preview" else self.FULL_PRIORITY,
                           mode="replace", replace_key=quality, cancel_running=quality == "full",
                           on_done=done, on_error=error)
        return request.request_id

    def _apply(self, out: RenderOutcome, force: bool = False) -> None:
        rid = out.request.request_id
        mine = out.request.image_id == self.doc_id
        if not mine or (not force and (rid < self.drop_below or rid <= self.last_applied)):
            self.stats["dropped"] += 1
            return
        self.last_applied = max(self.last_applied, rid)
        self.stats["applied"] += 1
        self.rendered.emit(out)
        if out.analysis is not None:
            self.analysed.emit(out.analysis)

    def _analysed(self, doc_id: str, out: object) -> None:
        if out is not None and doc_id == self.doc_id:
            self.analysed.emit(out)

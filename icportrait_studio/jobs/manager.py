"""A Qt-free job queue with one worker thread that owns the pipeline (and the GPU).

Why one thread: the diffusion backend and its CUDA context are not safe to drive from several
threads, and running previews one at a time keeps latency predictable. The GUI glues this to Qt by
turning ``on_update`` into a queued signal; nothing here imports Qt.

Ordering guarantee for ``on_update``: for any one job the snapshots arrive in the order its state
changed. QUEUED is delivered before the job is visible to the worker, and after that exactly one
thread moves it on (a canceller while it is queued, the worker once it has started). ``revision``
is there for consumers that merge updates from several jobs and want to drop stale ones.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Literal

from icportrait_studio.errors import CancelledError, ICPortraitError
from icportrait_studio.jobs.job import Job, JobState, WorkFn, describe_error
from icportrait_studio.pipeline.progress import CancelToken, Progress, ProgressFn

log = logging.getLogger(__name__)

UpdateFn = Callable[[Job], None]
SubmitMode = Literal["queue", "replace"]

# Rebuild the heap once lazily-cancelled entries are the majority (and more than this many), so
# single cancels stay O(1) amortised and a long drag cannot pile dead entries up behind a slow job.
_COMPACT_MIN_DEAD = 64


class JobManager:
    """Runs submitted work one job at a time on a single daemon thread, highest priority first.

    One lock and one condition variable guard all state. ``on_update`` is always called with the
    lock released (it may call back into the manager) and gets a snapshot, never the live job.
    It must be quick and must not block on the manager (``wait``/``wait_idle``), because it runs on
    the worker thread for everything but submit/cancel of queued jobs.
    """

    def __init__(
        self,
        on_update: UpdateFn | None = None,
        name: str = "pipeline",
        *,
        history: int = 200,
        keep_results: int = 16,
        progress_interval: float = 0.02,
    ) -> None:
        """``history``: finished jobs kept for ``get``/``jobs``; ``keep_results``: how many of the newest
        finished jobs keep their result (results are images, 200 of them would be gigabytes);
        ``progress_interval``: the least seconds between two progress updates of one job."""
        if history < 1:
            raise ValueError("history must be at least 1")
        self._on_update = on_update
        self._history_limit = history
        self._keep_results = max(0, min(keep_results, history))
        self._interval = max(0.0, progress_interval)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._heap: list[tuple[int, int, Job]] = []  # (-priority, seq, job); cancelled entries removed lazily
        self._dead = 0  # heap entries whose job is no longer QUEUED
        self._queued: dict[int, Job] = {}
        self._pending_by_key: dict[str, Job] = {}  # replace mode: the single queued job per key
        self._current: Job | None = None
        self._history: OrderedDict[int, Job] = OrderedDict()
        self._with_results: deque[Job] = deque()
        self._settling = 0  # jobs that ended but whose final on_update has not returned yet
        self._totals = {JobState.DONE: 0, JobState.FAILED: 0, JobState.CANCELLED: 0}
        self._ids = itertools.count(1)
        self._seqs = itertools.count()
        self._closing = False
        # Started here rather than lazily: no first-submit race, and the thread is idle-cheap.
        self._thread = threading.Thread(target=self._worker, name=name, daemon=True)
        self._thread.start()

    def submit(
        self,
        work: WorkFn,
        *,
        label: str = "",
        priority: int = 0,
        mode: SubmitMode = "queue",
        replace_key: str | None = None,
        cancel_running: bool = False,
    ) -> Job:
        """Queue ``work`` and return its live ``Job`` (the manager keeps updating it).

        ``mode='replace'`` is for interactive drags: per ``replace_key`` (default: the label) there is
        at most one job running and one pending, so the newest request cancels the older pending one.
        The running one is only told to stop when ``cancel_running`` is true; by default it finishes,
        which keeps a preview on screen moving even while the user never lets go.
        """
        if mode not in ("queue", "replace"):
            raise ValueError(f"unknown submit mode {mode!r}")
        if mode == "replace":
            replace_key = replace_key if replace_key is not None else label
            if not replace_key:
                raise ValueError("mode='replace' needs a replace_key or a label")
        with self._lock:
            if self._closing:
                raise RuntimeError("JobManager is shut down")
            job = Job(id=next(self._ids), work=work, label=label, priority=priority, replace_key=replace_key)
        # Announced before the worker can see it, so QUEUED is always this job's first update.
        self._emit(job.snapshot())
        ended: list[tuple[Job, Job]] = []
        with self._cond:
            if self._closing:  # shut down while we were announcing it
                ended.append((job, self._cancel_queued_locked(job, queued=False)))
            else:
                if mode == "replace":
                    assert replace_key is not None
                    old = self._pending_by_key.pop(replace_key, None)
                    if old is not None and old.state is JobState.QUEUED:
                        ended.append((old, self._cancel_queued_locked(old)))
                    running = self._current
                    if cancel_running and running is not None and running.replace_key == replace_key:
                        running.token.cancel()
                    self._pending_by_key[replace_key] = job
                job._seq = next(self._seqs)
                heapq.heappush(self._heap, (-priority, job._seq, job))
                self._queued[job.id] = job
                self._cond.notify_all()
        self._announce(ended)
        return job

    def cancel(self, job_id: int) -> bool:
        """Cancel one job. A queued one ends CANCELLED at once; a running one has its token set and
        ends CANCELLED when its work notices. False if the job is unknown or already over."""
        with self._lock:
            job = self._queued.get(job_id)
            if job is None:
                running = self._current
                if running is not None and running.id == job_id and not running.done:
                    running.token.cancel()
                    return True
                return False
            snap = self._cancel_queued_locked(job)
        self._announce([(job, snap)])
        return True

    def cancel_all(self) -> int:
        """Cancel every queued job and signal the running one; returns how many were affected.

        The heap is dropped in one go rather than entry by entry, so this is O(n)."""
        with self._lock:
            ended = [(job, self._cancel_queued_locked(job, queued=False)) for job in self._queued.values()]
            self._queued.clear()
            self._heap.clear()
            self._dead = 0
            self._pending_by_key.clear()
            running = self._current
            signalled = running is not None and not running.done
            if signalled:
                assert running is not None
                running.token.cancel()
        self._announce(ended)
        return len(ended) + int(signalled)

    def get(self, job_id: int) -> Job | None:
        """A snapshot of the job, or None if it is unknown or has left the bounded history."""
        with self._lock:
            job = self._find_locked(job_id)
            return job.snapshot() if job is not None else None

    def jobs(self) -> list[Job]:
        """Snapshots of all known jobs (history, running, queued), oldest first."""
        with self._lock:
            found = dict(self._history)
            if self._current is not None:
                found[self._current.id] = self._current
            found.update(self._queued)
            return [found[k].snapshot() for k in sorted(found)]

    def stats(self) -> dict[JobState, int]:
        """QUEUED and RUNNING are current counts; the end states are totals since the manager was made
        (the history is bounded, so counting it would under-report)."""
        with self._lock:
            running = self._current is not None and not self._current.done
            return {JobState.QUEUED: len(self._queued), JobState.RUNNING: int(running), **self._totals}

    @property
    def closed(self) -> bool:
        """True once ``shutdown`` was called; ``submit`` then raises."""
        return self._closing

    def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """Block until the job has ended and its last ``on_update`` has returned; return a snapshot.

        Raises KeyError for an unknown id and TimeoutError if it does not end in time."""
        self._refuse_on_worker("wait")
        with self._cond:
            job = self._find_locked(job_id)
            if job is None:
                raise KeyError(job_id)
            if not self._cond.wait_for(lambda: job._settled, timeout):
                raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
            return job.snapshot()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running; False if ``timeout`` passed first."""
        self._refuse_on_worker("wait_idle")
        with self._cond:
            return self._cond.wait_for(self._idle_locked, timeout)

    def shutdown(self, wait: bool = True, cancel_pending: bool = True, *, timeout: float | None = None) -> None:
        """Stop accepting jobs and let the worker exit. ``cancel_pending`` cancels the queue and
        signals the running job (closing the app should not wait for a queue of renders); otherwise
        the queue is drained first. ``wait`` joins the thread (not when called from it)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if cancel_pending:
            self.cancel_all()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True, cancel_pending=True)

    def _worker(self) -> None:
        while True:
            with self._cond:
                job = self._pop_locked()
                while job is None:
                    if self._closing:
                        return
                    self._cond.wait()
                    job = self._pop_locked()
                job.state = JobState.RUNNING
                job.started = time.monotonic()
                job.revision += 1
                self._current = job
                if job.replace_key is not None and self._pending_by_key.get(job.replace_key) is job:
                    del self._pending_by_key[job.replace_key]
                snap = job.snapshot()
            self._emit(snap)
            self._run(job)

    def _run(self, job: Job) -> None:
        """Run one job on the worker thread and record how it ended; never raises for a bad job."""
        result: object | None = None
        error: str | None = None
        tb_text: str | None = None
        work = job.work
        try:
            if work is None:  # pragma: no cover - work is only cleared after the job ended
                raise RuntimeError("job has no work")
            result = work(self._progress_fn(job), job.token)
            state = JobState.CANCELLED if job.token.cancelled else JobState.DONE
        except CancelledError:
            state = JobState.CANCELLED
        except Exception as exc:
            if job.token.cancelled:  # an error while stopping is part of stopping, not a failure to show
                log.debug("job %d (%s) raised after cancel", job.id, job.label, exc_info=True)
                state = JobState.CANCELLED
            else:
                state, error, tb_text = JobState.FAILED, describe_error(exc), traceback.format_exc()
                if isinstance(exc, ICPortraitError):  # bad input, said to the user: no traceback in the log
                    log.info("job %d (%s) failed: %s", job.id, job.label, error)
                else:  # a bug: the traceback is what a report needs
                    log.warning("job %d (%s) failed: %s\n%s", job.id, job.label, error, tb_text)
        del work
        with self._lock:
            job.state, job.error, job.traceback = state, error, tb_text
            job.result = result if state is JobState.DONE else None
            if state is JobState.DONE:
                job.progress = 1.0
            del result
            snap = self._end_locked(job)
        self._emit(snap)
        with self._cond:
            self._settle_locked(job)
            self._current = None
            self._cond.notify_all()

    def _progress_fn(self, job: Job) -> ProgressFn:
        def report(p: Progress) -> None:
            with self._lock:
                if job.state is not JobState.RUNNING:  # a late call from a leaked callback
                    return
                fraction = float(p.fraction)
                if math.isfinite(fraction):
                    job.progress = min(max(fraction, 0.0), 1.0)
                if p.stage:
                    job.stage = p.stage
                if p.preview is not None:
                    job.preview = p.preview
                job.revision += 1
                now = time.monotonic()
                # Throttled so a fast sampler cannot flood the GUI's event queue; the last one always passes.
                if job.progress < 1.0 and now - job._last_emit < self._interval:
                    return
                job._last_emit = now
                snap = job.snapshot()
            self._emit(snap)

        return report

    def _pop_locked(self) -> Job | None:
        while self._heap:
            job = heapq.heappop(self._heap)[2]
            if job.state is JobState.QUEUED:
                del self._queued[job.id]
                return job
            self._dead -= 1
        return None

    def _cancel_queued_locked(self, job: Job, *, queued: bool = True) -> Job:
        """Mark a queued job CANCELLED; its heap entry is left for ``_pop_locked`` to skip.
        ``queued=False``: the caller removes it from ``_queued`` and the heap itself."""
        job.state = JobState.CANCELLED
        job.token.cancel()
        if queued:
            del self._queued[job.id]
            self._dead += 1
            if self._dead > _COMPACT_MIN_DEAD and 2 * self._dead > len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2].state is JobState.QUEUED]
                heapq.heapify(self._heap)
                self._dead = 0
            if job.replace_key is not None and self._pending_by_key.get(job.replace_key) is job:
                del self._pending_by_key[job.replace_key]
        return self._end_locked(job)

    def _end_locked(self, job: Job) -> Job:
        """Common bookkeeping for a job that reached an end state; returns its final snapshot."""
        job.finished = time.monotonic()
        job.revision += 1
        job.work = None  # the closure may hold full-size images: free them now, not when history rolls over
        job.preview = None
        self._totals[job.state] += 1
        self._settling += 1
        self._history[job.id] = job
        while len(self._history) > self._history_limit:
            self._history.popitem(last=False)
        if job.result is not None:
            self._with_results.append(job)
            while len(self._with_results) > self._keep_results:
                self._with_results.popleft().result = None
        return job.snapshot()

    def _settle_locked(self, job: Job) -> None:
        job._settled = True
        self._settling -= 1

    def _announce(self, ended: list[tuple[Job, Job]]) -> None:
        """Deliver the final snapshots of jobs ended off the worker thread, then release waiters."""
        if not ended:
            return
        for _, snap in ended:
            self._emit(snap)
        with self._cond:
            for job, _ in ended:
                self._settle_locked(job)
            self._cond.notify_all()

    def _emit(self, snap: Job) -> None:
        if self._on_update is None:
            return
        try:
            self._on_update(snap)
        except Exception:  # a broken listener must never take the worker (and the GPU) down with it
            log.exception("on_update raised for job %d (%s)", snap.id, snap.label)

    def _find_locked(self, job_id: int) -> Job | None:
        job = self._queued.get(job_id) or self._history.get(job_id)
        if job is None and self._current is not None and self._current.id == job_id:
            job = self._current
        return job

    def _idle_locked(self) -> bool:
        return not self._queued and self._current is None and self._settling == 0

    def _refuse_on_worker(self, what: str) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError(f"JobManager.{what}() called from its own worker thread would deadlock")


class LiveScheduler:
    """Submits live-preview renders in replace mode, one key per control being dragged.

    Replace mode is the debounce: when the last render was fast nothing is running and a request
    starts at once; when renders are slow only the newest request waits, so the preview rate adapts
    to what the machine can do. ``min_interval`` (seconds, start to start) optionally caps the rate
    further; a request still waiting out that interval gives way as soon as a newer one arrives.
    """

    def __init__(self, manager: JobManager, *, min_interval: float = 0.0, priority: int = 0) -> None:
        self._manager = manager
        self._min_interval = max(0.0, min_interval)
        self._priority = priority
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}
        self._last_start: dict[str, float] = {}

    def request(self, key: str, work: WorkFn, label: str = "") -> Job:
        """Ask for ``work`` to render the newest state of ``key``; older pending requests are dropped."""
        with self._lock:
            generation = self._generation.get(key, 0) + 1
            self._generation[key] = generation
        job_work = work if self._min_interval <= 0 else self._paced(key, generation, work)
        return self._manager.submit(
            job_work, label=label or key, priority=self._priority, mode="replace", replace_key=key
        )

    def _paced(self, key: str, generation: int, work: WorkFn) -> WorkFn:
        def run(progress: ProgressFn, token: CancelToken) -> object:
            while True:
                with self._lock:
                    if self._generation.get(key) != generation:
                        raise CancelledError("superseded by a newer request")
                    remaining = self._min_interval - (time.monotonic() - self._last_start.get(key, -math.inf))
                    if remaining <= 0:
                        self._last_start[key] = time.monotonic()
                        break
                token.raise_if_cancelled()
                time.sleep(min(remaining, 0.005))  # short naps so a newer request takes over quickly
            return work(progress, token)

        return run

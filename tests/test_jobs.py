"""The job manager: ordering, progress, failure, cancellation, replace mode, shutdown and bounds.

Timing is steered with ``threading.Event`` (a "gate" job holds the worker) rather than sleeps.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from icportrait_studio.errors import InputError
from icportrait_studio.jobs import Job, JobManager, JobState, LiveScheduler
from icportrait_studio.pipeline.progress import CancelToken, Progress, ProgressFn

TIMEOUT = 5.0


class Recorder:
    """Collects on_update snapshots from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.updates: list[Job] = []

    def __call__(self, job: Job) -> None:
        with self._lock:
            self.updates.append(job)

    def of(self, job_id: int) -> list[Job]:
        with self._lock:
            return [u for u in self.updates if u.id == job_id]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def mgr(rec: Recorder) -> Iterator[JobManager]:
    m = JobManager(on_update=rec, name=f"test-jobs-{uuid.uuid4().hex[:8]}")
    yield m
    m.shutdown(wait=True, timeout=TIMEOUT)


def hold_worker(m: JobManager, **kw: object) -> tuple[Job, threading.Event]:
    """Submit a job that blocks the worker until the returned event is set (or it is cancelled)."""
    started, release = threading.Event(), threading.Event()

    def work(progress: ProgressFn, token: CancelToken) -> str:
        started.set()
        while not release.wait(0.002):
            token.raise_if_cancelled()
        return "gate"

    job = m.submit(work, label=str(kw.pop("label", "gate")), **kw)  # type: ignore[arg-type]
    assert started.wait(TIMEOUT)
    return job, release


def returning(value: object, log: list[object] | None = None):
    def work(progress: ProgressFn, token: CancelToken) -> object:
        if log is not None:
            log.append(value)
        return value

    return work


def test_priority_order_then_fifo(mgr: JobManager) -> None:
    _, release = hold_worker(mgr)
    ran: list[object] = []
    for name, prio in [("a0", 0), ("b5", 5), ("c0", 0), ("d5", 5), ("e1", 1), ("f-1", -1)]:
        mgr.submit(returning(name, ran), label=name, priority=prio)
    release.set()
    assert mgr.wait_idle(TIMEOUT)
    assert ran == ["b5", "d5", "e1", "a0", "c0", "f-1"]


def test_progress_reaches_on_update_in_order(rec: Recorder) -> None:
    with JobManager(on_update=rec, progress_interval=0.0) as m:

        def work(progress: ProgressFn, token: CancelToken) -> str:
            for i in range(1, 10):
                progress(Progress(i / 10, stage=f"step {i}"))
            return "ok"

        job = m.wait(m.submit(work, label="p").id, TIMEOUT)
    assert job.state is JobState.DONE and job.result == "ok" and job.progress == 1.0
    states = [u.state for u in rec.of(job.id)]
    assert states[0] is JobState.QUEUED and states[1] is JobState.RUNNING and states[-1] is JobState.DONE
    fractions = [u.progress for u in rec.of(job.id) if u.state is JobState.RUNNING][1:]
    assert fractions == pytest.approx([i / 10 for i in range(1, 10)])
    assert all(b > a for a, b in itertools.pairwise(fractions))
    assert [u.stage for u in rec.of(job.id) if u.state is JobState.RUNNING][-1] == "step 9"
    revisions = [u.revision for u in rec.of(job.id)]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)


def test_progress_is_throttled_but_final_message_passes(mgr: JobManager, rec: Recorder) -> None:
    def work(progress: ProgressFn, token: CancelToken) -> None:
        for i in range(2000):
            progress(Progress(i / 2000))
        progress(Progress(1.0, stage="done"))

    job = mgr.wait(mgr.submit(work).id, TIMEOUT)
    running = [u for u in rec.of(job.id) if u.state is JobState.RUNNING]
    progress_msgs = running[1:]  # the first RUNNING update is the state change
    duration = job.duration or 0.0
    assert len(progress_msgs) <= 2 + duration / 0.02 + 1
    assert progress_msgs[-1].progress == 1.0 and progress_msgs[-1].stage == "done"


def test_failing_job_is_recorded_and_next_job_runs(mgr: JobManager, caplog: pytest.LogCaptureFixture) -> None:
    def boom(progress: ProgressFn, token: CancelToken) -> None:
        raise ValueError("bad value")

    def user_error(progress: ProgressFn, token: CancelToken) -> None:
        raise InputError("The image could not be read.")

    with caplog.at_level(logging.WARNING, logger="icportrait_studio.jobs"):
        failed = mgr.submit(boom, label="boom")
        friendly = mgr.submit(user_error)
        after = mgr.submit(returning(42))
        assert mgr.wait_idle(TIMEOUT)
    failed_s = mgr.get(failed.id)
    assert failed_s is not None and failed_s.state is JobState.FAILED
    assert failed_s.error == "ValueError: bad value"
    assert failed_s.traceback is not None and "ValueError" in failed_s.traceback
    assert failed_s.result is None and failed_s.duration is not None
    friendly_s = mgr.get(friendly.id)
    assert friendly_s is not None and friendly_s.error == "The image could not be read."
    after_s = mgr.get(after.id)
    assert after_s is not None and after_s.state is JobState.DONE and after_s.result == 42
    assert "bad value" in caplog.text and "Traceback" in caplog.text  # a bug is logged with its traceback
    assert "could not be read" not in caplog.text  # bad input is the user's message, not a warning in the log
    assert mgr.stats()[JobState.FAILED] == 2


def test_cancel_queued_job(mgr: JobManager, rec: Recorder) -> None:
    _, release = hold_worker(mgr)
    ran: list[object] = []
    victim = mgr.submit(returning("victim", ran))
    survivor = mgr.submit(returning("survivor", ran))
    assert mgr.cancel(victim.id) is True
    assert victim.state is JobState.CANCELLED  # immediately, not when the worker gets to it
    assert [u.state for u in rec.of(victim.id)] == [JobState.QUEUED, JobState.CANCELLED]
    assert mgr.cancel(victim.id) is False
    assert mgr.cancel(10_000) is False
    release.set()
    assert mgr.wait(survivor.id, TIMEOUT).state is JobState.DONE
    assert ran == ["survivor"]


def test_cancel_running_job_cooperatively(mgr: JobManager) -> None:
    started = threading.Event()
    steps: list[int] = []

    def loop(progress: ProgressFn, token: CancelToken) -> str:
        started.set()
        for i in range(100_000):
            token.raise_if_cancelled()
            steps.append(i)
            time.sleep(0.001)
        return "never"

    job = mgr.submit(loop, label="loop")
    nxt = mgr.submit(returning("next"))
    assert started.wait(TIMEOUT)
    assert mgr.cancel(job.id) is True
    done = mgr.wait(job.id, TIMEOUT)
    assert done.state is JobState.CANCELLED and done.result is None and done.error is None
    assert len(steps) < 100_000
    assert mgr.wait(nxt.id, TIMEOUT).result == "next"


def test_work_that_returns_after_cancel_ends_cancelled(mgr: JobManager) -> None:
    started, go = threading.Event(), threading.Event()

    def ignores_token(progress: ProgressFn, token: CancelToken) -> str:
        started.set()
        go.wait(TIMEOUT)
        return "late"

    job = mgr.submit(ignores_token)
    assert started.wait(TIMEOUT)
    assert mgr.cancel(job.id)
    assert mgr.get(job.id).state is JobState.RUNNING  # type: ignore[union-attr]
    go.set()
    done = mgr.wait(job.id, TIMEOUT)
    assert done.state is JobState.CANCELLED and done.result is None


def test_replace_mode_keeps_one_pending_and_runs_the_newest(mgr: JobManager) -> None:
    running, release = hold_worker(mgr, mode="replace", replace_key="drag")
    ran: list[object] = []
    subs = [mgr.submit(returning(i, ran), mode="replace", replace_key="drag") for i in range(6)]
    other = mgr.submit(returning("other", ran), mode="replace", replace_key="other-slider")
    assert [s.state for s in subs[:-1]] == [JobState.CANCELLED] * 5
    assert subs[-1].state is JobState.QUEUED
    assert not running.cancel_requested  # default: the running render is allowed to finish
    assert mgr.stats()[JobState.QUEUED] == 2
    release.set()
    assert mgr.wait_idle(TIMEOUT)
    assert ran == [5, "other"]
    assert mgr.get(running.id).state is JobState.DONE  # type: ignore[union-attr]
    assert mgr.get(other.id).state is JobState.DONE  # type: ignore[union-attr]


def test_replace_mode_can_cancel_the_running_job(mgr: JobManager) -> None:
    running, _ = hold_worker(mgr, mode="replace", label="light")  # the key defaults to the label
    newest = mgr.submit(returning("new"), label="light", mode="replace", cancel_running=True)
    assert mgr.wait(running.id, TIMEOUT).state is JobState.CANCELLED
    assert mgr.wait(newest.id, TIMEOUT).result == "new"
    with pytest.raises(ValueError):
        mgr.submit(returning(0), mode="replace")


def test_cancel_all_with_1000_queued_jobs(mgr: JobManager, rec: Recorder) -> None:
    gate, _ = hold_worker(mgr)
    queued = [mgr.submit(returning(i), priority=i % 7) for i in range(1000)]
    assert mgr.stats()[JobState.QUEUED] == 1000
    t0 = time.perf_counter()
    assert mgr.cancel_all() == 1001
    elapsed = time.perf_counter() - t0
    assert mgr.stats()[JobState.QUEUED] == 0
    assert all(j.state is JobState.CANCELLED and j.work is None for j in queued)
    assert mgr.wait_idle(TIMEOUT)
    assert mgr.get(gate.id).state is JobState.CANCELLED  # type: ignore[union-attr]
    assert elapsed < 1.0
    assert sum(1 for u in rec.updates if u.state is JobState.CANCELLED) == 1001
    assert mgr.wait(mgr.submit(returning("alive")).id, TIMEOUT).result == "alive"


def test_many_single_cancels_compact_the_heap(mgr: JobManager) -> None:
    _, release = hold_worker(mgr)
    ran: list[object] = []
    jobs = [mgr.submit(returning(i, ran)) for i in range(500)]
    for j in jobs[:-1]:
        assert mgr.cancel(j.id)
    assert len(mgr._heap) < 100  # dead entries do not pile up behind a slow job
    release.set()
    assert mgr.wait_idle(TIMEOUT)
    assert ran == [499]


def test_updates_for_each_job_arrive_in_state_order(mgr: JobManager, rec: Recorder) -> None:
    jobs = [mgr.submit(returning(i)) for i in range(300)]
    assert mgr.wait_idle(TIMEOUT)
    for j in jobs:
        assert [u.state for u in rec.of(j.id)] == [JobState.QUEUED, JobState.RUNNING, JobState.DONE]


def test_shutdown_joins_the_worker_thread(rec: Recorder) -> None:
    name = f"test-shutdown-{uuid.uuid4().hex[:8]}"
    m = JobManager(on_update=rec, name=name)
    assert any(t.name == name and t.daemon for t in threading.enumerate())
    ran: list[object] = []
    _, release = hold_worker(m)
    drained = [m.submit(returning(i, ran)) for i in range(3)]
    release.set()
    m.shutdown(wait=True, cancel_pending=False, timeout=TIMEOUT)  # drains the queue first
    assert not any(t.name == name for t in threading.enumerate())
    assert ran == [0, 1, 2] and all(j.state is JobState.DONE for j in drained)
    assert m.closed
    with pytest.raises(RuntimeError):
        m.submit(returning(0))


def test_context_manager_cancels_pending_on_exit(rec: Recorder) -> None:
    with JobManager(on_update=rec) as m:
        gate, _ = hold_worker(m)
        pending = m.submit(returning(1))
    assert gate.state is JobState.CANCELLED and pending.state is JobState.CANCELLED


def test_on_update_raising_does_not_kill_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    def broken(job: Job) -> None:
        raise RuntimeError("listener bug")

    with caplog.at_level(logging.ERROR, logger="icportrait_studio.jobs"), JobManager(on_update=broken) as m:
        first = m.submit(returning(1))
        second = m.submit(returning(2))
        assert m.wait(second.id, TIMEOUT).result == 2
        assert m.get(first.id).result == 1  # type: ignore[union-attr]
    assert "listener bug" in caplog.text


def test_history_is_bounded_and_old_results_are_dropped() -> None:
    with JobManager(history=10, keep_results=3) as m:
        jobs = [m.submit(returning(i)) for i in range(30)]
        assert m.wait_idle(TIMEOUT)
        snaps = m.jobs()
        assert [s.id for s in snaps] == [j.id for j in jobs[-10:]]
        assert [s.result for s in snaps] == [None] * 7 + [27, 28, 29]
        assert m.get(jobs[0].id) is None
        assert m.stats()[JobState.DONE] == 30
        with pytest.raises(KeyError):
            m.wait(jobs[0].id, 0.1)


def test_wait_times_out(mgr: JobManager) -> None:
    gate, release = hold_worker(mgr)
    with pytest.raises(TimeoutError):
        mgr.wait(gate.id, 0.01)
    assert mgr.wait_idle(0.01) is False
    release.set()
    assert mgr.wait_idle(TIMEOUT)


def test_live_scheduler_runs_at_once_and_keeps_only_the_newest(mgr: JobManager) -> None:
    live = LiveScheduler(mgr)
    first = live.request("exposure", returning("fast"), "exposure")
    assert mgr.wait(first.id, TIMEOUT).result == "fast"  # nothing running: no debounce delay

    started, release = threading.Event(), threading.Event()

    def slow(progress: ProgressFn, token: CancelToken) -> str:
        started.set()
        release.wait(TIMEOUT)
        return "slow"

    slow_job = live.request("exposure", slow)
    assert started.wait(TIMEOUT)
    reqs = [live.request("exposure", returning(i)) for i in range(4)]
    release.set()
    assert mgr.wait_idle(TIMEOUT)
    assert mgr.get(slow_job.id).result == "slow"  # type: ignore[union-attr]
    assert [mgr.get(r.id).state for r in reqs] == [JobState.CANCELLED] * 3 + [JobState.DONE]  # type: ignore[union-attr]


def test_live_scheduler_min_interval_paces_starts(mgr: JobManager) -> None:
    live = LiveScheduler(mgr, min_interval=0.05)
    starts: list[float] = []

    def stamp(progress: ProgressFn, token: CancelToken) -> None:
        starts.append(time.monotonic())

    a = live.request("k", stamp)
    mgr.wait(a.id, TIMEOUT)
    b = live.request("k", stamp)
    mgr.wait(b.id, TIMEOUT)
    assert starts[1] - starts[0] >= 0.04
    # A request still waiting out the interval gives way to a newer one.
    c = live.request("k", stamp)
    d = live.request("k", stamp)
    assert mgr.wait(d.id, TIMEOUT).state is JobState.DONE
    assert mgr.get(c.id).state is JobState.CANCELLED  # type: ignore[union-attr]
    assert len(starts) == 3

"""Qt-free asynchronous jobs: one worker thread owns the pipeline; the GUI listens through ``on_update``."""

from icportrait_studio.jobs.job import Job, JobState, WorkFn, describe_error
from icportrait_studio.jobs.manager import JobManager, LiveScheduler, SubmitMode, UpdateFn

__all__ = ["Job", "JobManager", "JobState", "LiveScheduler", "SubmitMode", "UpdateFn", "WorkFn", "describe_error"]

"""N consumer-group workers as processes: started, watched, killed one by one, stopped.

Each worker is a process of its own (the spawn start method: a fresh interpreter, no
state inherited), with one OpenCV thread by default (`CAMSTREAM_OPENCV_THREADS`): the
processes are the parallelism. A stop (`WorkerGroup.stop`, or SIGTERM to a worker) lets
each worker finish, deliver and commit its batch, then close its consumer, which leaves the
group: the others get its partitions at once. A worker killed outright (`kill`) is noticed
by the group after the session timeout (`loop.SESSION_TIMEOUT_MS`); its uncommitted batch
is processed again by the partitions' next owner.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from camstream.config import Config, secret_values
from camstream.errors import ENVIRONMENT_FAILURES, CamstreamError, ConfigError, WorkerFailedError
from camstream.workers.loop import Worker, WorkerJob, group_consumer
from camstream.workers.progress import WorkerProgress, WorkerTotals, row_totals, shared_counts

# How long a stop waits for a worker to finish its batch before it is killed.
STOP_TIMEOUT_S = 30.0
PROGRESS_INTERVAL_S = 5.0


def start_workers(
    cfg: Config,
    processes: int,
    *,
    create_topics: bool = True,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
    verbose: bool = False,
    wire_logs: bool = False,
) -> WorkerGroup:
    """Start `processes` consumer-group workers on `cfg`'s topics; the caller stops them
    (`WorkerGroup.stop`, or leaving a `with` block).

    As `camstream analyze` does before it starts: the detector is loaded once here (a
    missing cascade fails now, exit code 5), the topics are created unless
    `create_topics=False`, and their size limits read from Kafka (`record_settings_for_topics`;
    the `processes` share the analysis budget as Spark's task slots do). Raises
    ConfigError, KafkaUnavailableError or DetectorUnavailableError, starting nothing.
    """
    from camstream.core.detection import load_cascade
    from camstream.kafka.topics import ensure_topics, record_settings_for_topics

    if processes < 1:
        raise ConfigError(f"the consumer-group workers need at least 1 process (got {processes})")
    if cfg.starting_offsets not in ("latest", "earliest"):
        group_consumer(cfg)  # raises the ConfigError that says what is taken
    load_cascade(cfg.detection.cascade)
    if create_topics:
        ensure_topics(cfg, cfg.pipeline_topics)
    settings = record_settings_for_topics(cfg, processes)
    jobs = [WorkerJob(cfg, settings, index, progress_interval_s) for index in range(processes)]
    group = WorkerGroup(jobs, verbose=verbose, wire_logs=wire_logs)
    group.start()
    return group


class WorkerGroup:
    """The worker processes of one group, by index (0 to N-1)."""

    def __init__(self, jobs: list[WorkerJob], verbose: bool = False, wire_logs: bool = False):
        self.jobs = jobs
        self._logging = (verbose, wire_logs)
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._counts = shared_counts(self._ctx, len(jobs))
        self._failures = self._ctx.SimpleQueue()
        self._failed: list[tuple[int, int, str]] = []
        self._killed: set[int] = set()
        self.processes: list[Any] = [None] * len(jobs)

    # ---- life -------------------------------------------------------------------------------
    def start(self) -> None:
        for index in range(len(self.jobs)):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        process = self._ctx.Process(
            target=worker_main,
            args=(self.jobs[index], self._stop, self._counts, self._failures, *self._logging),
            name=f"camstream-worker-{index}",
            daemon=True,  # never outlives the group's process
        )
        process.start()
        self.processes[index] = process
        self._killed.discard(index)

    def restart(self, index: int) -> None:
        """A fresh process for worker `index` (after `kill`, or a failure); it joins the group."""
        old = self.processes[index]
        if old is not None and old.is_alive():
            raise ValueError(f"worker {index} is still running (pid {old.pid})")
        self._spawn(index)

    def kill(self, index: int) -> None:
        """SIGKILL worker `index`: no clean stop, no commit, no leaving the group (a crash).
        Its partitions go to the others after the session timeout."""
        process = self.processes[index]
        self._killed.add(index)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=10)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Each worker finishes, delivers and commits its batch, then leaves the group;
        one still running after `timeout_s` is killed. Idempotent."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            if process is not None:
                process.join(timeout=max(0.0, deadline - time.monotonic()))
        for index, process in enumerate(self.processes):
            if process is not None and process.is_alive():
                self.kill(index)

    def __enter__(self) -> WorkerGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what it looks like -----------------------------------------------------------------
    @property
    def pids(self) -> list[int]:
        """Each worker's process id, by index."""
        return [process.pid for process in self.processes]

    def alive(self) -> list[bool]:
        """Whether each worker's process runs, by index."""
        return [process is not None and process.is_alive() for process in self.processes]

    def totals(self, index: int | None = None) -> WorkerTotals:
        """What worker `index` did (None: the whole group, its killed workers' counts too)."""
        if index is not None:
            return row_totals(self._counts, index)
        total = WorkerTotals()
        for each in range(len(self.jobs)):
            total = total + row_totals(self._counts, each)
        return total

    def assigned(self) -> list[int]:
        """How many partitions each worker has now (0 for one that is gone), by index."""
        running = self.alive()
        return [
            row_totals(self._counts, index).partitions if running[index] else 0
            for index in range(len(self.jobs))
        ]

    def failure(self) -> WorkerFailedError | None:
        """The first error a worker stopped with (killed ones and stops asked for do not
        count), as the error the group stops with: its message and exit code."""
        while not self._failures.empty():
            self._failed.append(self._failures.get())
        told = {failed[0] for failed in self._failed}
        for index, process in enumerate(self.processes):
            exited = process is not None and not process.is_alive() and process.exitcode
            if exited and index not in self._killed | told and not self._stop.is_set():
                self._failed.append((index, 1, f"exited with code {process.exitcode}"))
        if not self._failed:
            return None
        index, code, message = self._failed[0]
        return WorkerFailedError(f"worker {index} stopped: {message}", code)


def worker_main(
    job: WorkerJob,
    group_stop: Any,
    counts: Any,
    failures: Any,
    verbose: bool = False,
    wire_logs: bool = False,
) -> None:
    """A worker process: its batches until the group stops or it is sent SIGTERM; an error
    is one line on stderr, told to the group, and the process's exit code."""
    from camstream.redaction import configure_logging

    own_stop = threading.Event()
    # Ctrl-C reaches every process of the terminal's group: the group's process stops the
    # workers, each after its batch, rather than each dying in the middle of one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: own_stop.set())
    configure_logging(verbose, wire_logs, secret_values(job.cfg))

    class Stop:
        @staticmethod
        def is_set() -> bool:
            return own_stop.is_set() or group_stop.is_set()

    name = f"camstream workers[{job.index}]"
    try:
        progress = WorkerProgress(counts, job.index, job.progress_interval_s)
        Worker(job, progress).run(Stop())
    except CamstreamError as exc:
        _fail(failures, job.index, name, exc.exit_code, str(exc))
    except ENVIRONMENT_FAILURES as exc:
        _fail(failures, job.index, name, 5, environment_failure(exc))
    except BaseException as exc:  # a bug: its traceback, and the group told
        traceback.print_exc()
        _fail(failures, job.index, name, 1, f"{type(exc).__name__}: {exc}")


def environment_failure(exc: BaseException) -> str:
    """What a worker stops with when its machine is broken: no record was at fault."""
    from camstream.core.records import reason

    return (
        f"this worker cannot process frames ({reason(exc)}); it stops instead of"
        " dead-lettering every record, which are not at fault (its batch is not committed)"
    )


def _fail(failures: Any, index: int, name: str, code: int, message: str) -> None:
    print(f"{name}: error: {message}", file=sys.stderr, flush=True)
    failures.put((index, code, message))
    sys.exit(code)

"""What a process that runs the per-record path keeps: its OpenCV threads, its frame
pool, and the path itself with a last line of defence.

Shared by the engines that run `camstream.core.batch` (a Spark Python worker,
`camstream.spark.worker`; a consumer-group worker, `camstream.workers`), so that each rule
is stated once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from camstream.core.contract import H_ERROR, H_FAILED_TS_NS, MAX_ERROR_BYTES, dead_letter_headers
from camstream.core.settings import RecordSettings
from camstream.errors import ENVIRONMENT_FAILURES

if TYPE_CHECKING:
    from camstream.core.freshness import FreshnessGuard
    from camstream.core.motion import MotionGate
    from camstream.core.records import ProcessedRecord

_opencv_threads: int | None = None


def configure_opencv_threads(threads: int) -> None:
    """Once per process: the engine already runs a process (or a task) per core, so
    OpenCV's own threads would only contend with the others."""
    global _opencv_threads
    if _opencv_threads != threads:
        import cv2

        cv2.setNumThreads(threads)
        _opencv_threads = threads


_frame_pool: tuple[int, ThreadPoolExecutor] | None = None
DEFAULT_MAX_FRAME_THREADS = 4


def frame_pool(threads: int) -> ThreadPoolExecutor:
    """Threads of this process that analyse a batch's frames in parallel.

    Spark runs one task per Kafka partition, and a micro-batch lasts as long as its biggest
    task: with cameras of unequal cost or uneven hashing, the other cores sat idle while one
    task worked through its partition alone. OpenCV releases the GIL while it decodes,
    detects and encodes, so a batch's frames can share every core; the pool is made once
    per process (Spark reuses its workers), with `threads` threads (0: the machine's cores,
    at most DEFAULT_MAX_FRAME_THREADS: an executor runs a Python worker per running task, so
    on a 64-core executor 64 threads each would hold 4,096 frames in flight at once).
    """
    global _frame_pool
    wanted = threads or min(os.cpu_count() or 1, DEFAULT_MAX_FRAME_THREADS)
    if _frame_pool is None or _frame_pool[0] != wanted:
        pool = ThreadPoolExecutor(max_workers=wanted, thread_name_prefix="camstream-frame")
        _frame_pool = (wanted, pool)
    return _frame_pool[1]


def gate_and_guard(
    settings: RecordSettings, scope: str
) -> tuple[MotionGate | None, FreshnessGuard | None]:
    """This process's motion gate and freshness guard, kept between batches (None when the
    settings turn them off); one per `scope` (the output topic): two jobs whose cameras
    share ids share no state."""
    from camstream.core.freshness import worker_guard
    from camstream.core.motion import worker_gate

    gate = worker_gate(settings.motion, scope) if settings.motion.enabled else None
    interval = settings.min_analysis_interval_ms
    guard = None if interval is None else worker_guard(interval, scope)
    return gate, guard


def camera_ids(keys: Iterable[bytes | None]) -> set[str]:
    """The camera ids of a batch, from its keys (a record whose key is not its camera id is
    rejected anyway): what its guard learns of the other processes before the batch."""
    return {key.decode("utf-8", "replace") for key in keys if key and len(key) <= 1024}


def process_record_parts(
    records: list[tuple[Any, ...]],
    settings: RecordSettings,
    gate: MotionGate | None,
    mapper: Any = map,
    guard: FreshnessGuard | None = None,
) -> Iterator[tuple[list[ProcessedRecord], bool]]:
    """`process_batch_parts` for a batch of records (key, value, headers[, RecordSource]):
    each part's outcomes in the records' order, and whether more follow (after analysis);
    with a last line of defence around it: should it raise, every record not out yet still
    gets its dead letter.

    Raises an environment failure (`ENVIRONMENT_FAILURES`), as `process_batch` does.
    """
    from camstream.core.batch import process_batch_parts

    done: set[int] = set()
    try:
        for part in process_batch_parts(records, settings, gate, mapper, guard=guard):
            done.update(index for index, _ in part)
            yield [result for _, result in part], len(done) < len(records)
    except ENVIRONMENT_FAILURES:
        raise
    except Exception as exc:  # it never raises; should it, every record not out yet goes on
        yield (
            [
                last_resort_dead_letter(record, settings, exc)
                for index, record in enumerate(records)
                if index not in done
            ],
            False,
        )


def last_resort_dead_letter(
    record: tuple[Any, ...], settings: RecordSettings, exc: Exception
) -> ProcessedRecord:
    """A dead letter for a record of a batch that failed as a whole (a bug): the record as
    far as it can be read, bounded like any dead letter."""
    from camstream.core.records import ProcessedRecord, dead_letter, normalise, reason

    key, value, headers, problem = normalise(*record[:3])
    error = reason(exc) + (f"; {problem}" if problem else "")
    source = record[3] if len(record) > 3 else None
    try:
        return dead_letter(key, value, headers, error, settings, source=source)
    except Exception:  # the bug is in dead_letter itself: the reason alone still fits
        try:
            headers = dead_letter_headers([], error, time.time_ns())
        except Exception:  # or in what makes its headers: the reason, cut, and the time
            cut = error.encode("utf-8", "replace")[:MAX_ERROR_BYTES]
            headers = [(H_ERROR, cut), (H_FAILED_TS_NS, str(time.time_ns()).encode())]
        return ProcessedRecord(False, None, None, headers, error=error)

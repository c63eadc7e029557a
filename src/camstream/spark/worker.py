"""The executor side of the job: the function Spark runs over Arrow batches of Kafka records.

It only wraps the per-record stages (`camstream.core.batch.process_batch_parts`): one output
row per input row, to the output or the dead-letter topic, followed by the frame's detection
event when it has faces. An environment failure (`camstream.errors.ENVIRONMENT_FAILURES`)
fails the task instead, saying so. This module and `camstream.core` are all that executors
import.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from camstream.core.contract import H_ERROR, H_FAILED_TS_NS, MAX_ERROR_BYTES, dead_letter_headers
from camstream.core.settings import RecordSettings
from camstream.errors import ENVIRONMENT_FAILURES

if TYPE_CHECKING:
    import pyarrow as pa

    from camstream.core.contract import RecordSource
    from camstream.core.freshness import FreshnessGuard
    from camstream.core.motion import MotionGate
    from camstream.core.records import ProcessedRecord
    from camstream.errors import EnvironmentFailure

# The rows mapInArrow returns: the Kafka sink's columns, plus what the metrics count. An
# event row has null `ok`, so that counts of frames leave it out. Spark takes the DDL form
# (`OUTPUT_SCHEMA`), the worker builds the Arrow one; both come from this list.
OUTPUT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "binary"),
    ("value", "binary"),
    ("headers", "array<struct<key: string, value: binary>>"),
    ("topic", "string"),
    ("ok", "boolean"),
    ("faces", "int"),
    ("error", "string"),
    ("skipped", "boolean"),
    ("carried", "boolean"),
    ("analysed", "boolean"),
)
OUTPUT_SCHEMA = ", ".join(f"{name} {ddl}" for name, ddl in OUTPUT_COLUMNS)


@dataclass(frozen=True)
class WorkerSettings:
    """Where a worker's rows go, and the threads it analyses them with.

    `opencv_threads`: OpenCV's own threads per worker (Spark already runs a task per core);
    `frame_threads`: threads that analyse a task's frames at once (0: the machine's cores,
    at most DEFAULT_MAX_FRAME_THREADS; `frame_pool`). `events_topic`: None writes no
    detection events.
    """

    output_topic: str
    dead_letter_topic: str
    events_topic: str | None = None
    opencv_threads: int = 1
    frame_threads: int = 0


def output_arrow_schema() -> pa.Schema:
    """OUTPUT_COLUMNS as an Arrow schema (the types the DDL above names)."""
    import pyarrow as pa

    header = pa.struct([("key", pa.string()), ("value", pa.binary())])
    types = {
        "binary": pa.binary(),
        "string": pa.string(),
        "boolean": pa.bool_(),
        "int": pa.int32(),
        "array<struct<key: string, value: binary>>": pa.list_(header),
    }
    return pa.schema([(name, types[ddl]) for name, ddl in OUTPUT_COLUMNS])


def sink_row(result: ProcessedRecord, output_topic: str, dead_letter_topic: str) -> dict[str, Any]:
    """A processed record as a row of the Kafka sink: key, value, headers and its topic."""
    return {
        "key": result.key,
        "value": result.value,
        "headers": [{"key": k, "value": v} for k, v in result.headers],
        "topic": output_topic if result.ok else dead_letter_topic,
    }


def output_row(result: ProcessedRecord, worker: WorkerSettings) -> dict[str, Any]:
    """A processed record as a row of `OUTPUT_COLUMNS`: the sink's, and what it counts."""
    return {
        **sink_row(result, worker.output_topic, worker.dead_letter_topic),
        "ok": result.ok,
        "faces": result.faces,
        "error": result.error,
        "skipped": result.skipped,
        "carried": result.carried,
        "analysed": result.analysed,
    }


_worker_opencv_threads: int | None = None


def configure_worker(opencv_threads: int) -> None:
    """Once per Python worker: Spark already runs a task per core, so OpenCV's own
    threads would only contend with the other tasks."""
    global _worker_opencv_threads
    if _worker_opencv_threads != opencv_threads:
        import cv2

        cv2.setNumThreads(opencv_threads)
        _worker_opencv_threads = opencv_threads


_frame_pool: tuple[int, ThreadPoolExecutor] | None = None
DEFAULT_MAX_FRAME_THREADS = 4


def frame_pool(threads: int) -> ThreadPoolExecutor:
    """Threads of this Python worker that analyse a task's frames in parallel.

    Spark runs one task per Kafka partition, and a micro-batch lasts as long as its biggest
    task: with cameras of unequal cost or uneven hashing, the other cores sat idle while one
    task worked through its partition alone. OpenCV releases the GIL while it decodes,
    detects and encodes, so a task's frames can share every core; the pool is made once
    per worker (Spark reuses workers), with `threads` threads (0: the machine's cores, at
    most DEFAULT_MAX_FRAME_THREADS: an executor runs a Python worker per running task, so
    on a 64-core executor 64 threads each would hold 4,096 frames in flight at once).
    """
    global _frame_pool
    wanted = threads or min(os.cpu_count() or 1, DEFAULT_MAX_FRAME_THREADS)
    if _frame_pool is None or _frame_pool[0] != wanted:
        pool = ThreadPoolExecutor(max_workers=wanted, thread_name_prefix="camstream-frame")
        _frame_pool = (wanted, pool)
    return _frame_pool[1]


def make_batch_processor(settings: RecordSettings, worker: WorkerSettings) -> Any:
    """The function that Spark runs in each Python worker over Arrow record batches.

    One output row per input row, always, each camera's in the input's order (past capacity,
    frames that skip detection anyway go out first, in a batch of their own; the rest in
    order after them): a record that fails becomes
    a dead letter; a frame with faces is followed by its event row to `worker.events_topic`
    (when `settings.events_max_bytes` is set). A batch's records are analysed by
    `worker.frame_threads` threads at once (`frame_pool`); the results are taken in order,
    so a camera's frames stay in order, and the motion gate (`settings.motion`), kept per
    worker, decides per camera in that order. A broken environment fails the task
    (`environment_failure`).
    """

    def process_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from camstream.errors import ENVIRONMENT_FAILURES
        from camstream.spark.worker import environment_failure

        try:
            yield from sink_batches(batches)
        except MemoryError:
            raise  # as it is: no message to build while memory is short
        except ENVIRONMENT_FAILURES as exc:
            raise environment_failure(exc) from exc

    def sink_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        from camstream.core.freshness import worker_guard
        from camstream.core.motion import worker_gate
        from camstream.spark.worker import (
            configure_worker,
            flush_batch,
            frame_pool,
            output_arrow_schema,
            process_row_parts,
            sources,
        )

        configure_worker(worker.opencv_threads)
        pool = frame_pool(worker.frame_threads)
        scope = worker.output_topic  # two jobs whose cameras share ids share no state
        gate = worker_gate(settings.motion, scope) if settings.motion.enabled else None
        interval = settings.min_analysis_interval_ms
        guard = None if interval is None else worker_guard(interval, scope)

        out_schema = output_arrow_schema()
        flush = flush_batch(out_schema)
        for batch in batches:
            keys = batch.column("key").to_pylist()
            values = batch.column("value").to_pylist()
            header_lists = batch.column("headers").to_pylist()
            records = list(zip(keys, values, header_lists, sources(batch), strict=True))
            if guard is not None:  # keys are camera ids (a record whose isn't is rejected)
                guard.learn(
                    {key.decode("utf-8", "replace") for key in keys if key and len(key) <= 1024}
                )
            # Past capacity, the frames that skip detection anyway go out first (a part of
            # their own); every part keeps the records' order, and so each camera's.
            for part, more in process_row_parts(records, settings, gate, pool.map, guard):
                rows = [output_row(result, worker) for result in part]
                if worker.events_topic:
                    events_topic = worker.events_topic
                    rows = [
                        row
                        for result, first in zip(part, rows, strict=True)
                        for row in (first, *_event_rows(result, events_topic))
                    ]
                # By column name: a row without one of them fails here, loud (a row with a
                # null topic would be taken for the flush row and dropped).
                columns = {name: [row[name] for row in rows] for name in out_schema.names}
                yield pa.RecordBatch.from_pydict(columns, schema=out_schema)
                if more:  # out now, not after the analysis that comes next
                    yield flush
            if guard is not None:
                guard.share()

    return process_batches


def flush_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A row that pushes the batch before it out to the JVM, to be dropped there (its topic
    is null: `is_flush_row`).

    PySpark writes `mapInArrow`'s batches to the worker's buffered socket without flushing
    them (`spark.buffer.size`, 64 KB), so the end of a part that goes out early would wait
    there until the next part is written, after the analysis: a value as large as that
    buffer makes the writer flush it. Its own end waits instead, and is dropped.
    """
    import pyarrow as pa

    size = int(os.environ.get("SPARK_BUFFER_SIZE", "65536"))
    row: dict[str, list[Any]] = {name: [None] for name in schema.names}
    row["value"], row["headers"] = [bytes(size)], [[]]
    return pa.RecordBatch.from_pydict(row, schema=schema)


def is_flush_row(topic_column: Any) -> Any:
    """The condition that drops `flush_batch`'s row from the job's output (every other row
    names its topic)."""
    return topic_column.isNull()


def event_row(result: ProcessedRecord, events_topic: str) -> dict[str, Any]:
    """The detection event of an output frame, as a sink row keyed by camera id (the
    columns the metrics count are null: it is no frame)."""
    row: dict[str, Any] = dict.fromkeys(name for name, _ in OUTPUT_COLUMNS)
    row.update(key=result.key, value=result.event, headers=[], topic=events_topic)
    return row


def _event_rows(result: ProcessedRecord, events_topic: str) -> tuple[dict[str, Any], ...]:
    return () if result.event is None else (event_row(result, events_topic),)


# The Kafka source's columns that say where a record was read (`timestamp` as ms since the
# epoch); the job hands them in beside key, value and headers, for the dead letters.
SOURCE_COLUMNS = ("topic", "partition", "offset", "timestamp_ms")


def sources(batch: pa.RecordBatch) -> list[RecordSource | None]:
    """Each row's RecordSource, or None for each row when the batch lacks those columns."""
    from camstream.core.contract import RecordSource

    if not all(name in batch.schema.names for name in SOURCE_COLUMNS):
        return [None] * batch.num_rows
    columns = [batch.column(name).to_pylist() for name in SOURCE_COLUMNS]
    return [
        None if None in row else RecordSource(str(row[0]), int(row[1]), int(row[2]), int(row[3]))
        for row in zip(*columns, strict=True)
    ]


def environment_failure(exc: BaseException) -> EnvironmentFailure:
    """What a task fails with when its environment is broken: the cause, saying that no
    record was at fault (Spark retries the task, maybe elsewhere, or stops the query)."""
    from camstream.core.records import reason
    from camstream.errors import EnvironmentFailure

    return EnvironmentFailure(
        f"this executor cannot process frames ({reason(exc)}); the task fails instead of"
        " dead-lettering every record, which are not at fault"
    )


def process_row_parts(
    records: list[tuple[Any, ...]],
    settings: RecordSettings,
    gate: MotionGate | None,
    mapper: Any = map,
    guard: FreshnessGuard | None = None,
) -> Iterator[tuple[list[ProcessedRecord], bool]]:
    """`process_batch_parts` for a batch of Spark rows: each part's outcomes in the
    records' order, and whether more follow (after analysis); with a last line of defence
    around it.

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
    except Exception as exc:  # it never raises; should it, every row not out yet still goes on
        yield (
            [
                _last_resort(record, settings, exc)
                for index, record in enumerate(records)
                if index not in done
            ],
            False,
        )


def _last_resort(
    record: tuple[Any, ...], settings: RecordSettings, exc: Exception
) -> ProcessedRecord:
    """A dead letter for a row of a batch that failed as a whole (a bug): the record as far
    as it can be read, bounded like any dead letter."""
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

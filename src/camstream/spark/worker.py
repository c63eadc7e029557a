"""The executor side of the job: the function Spark runs over Arrow batches of Kafka records.

It only wraps the per-record stages (`camstream.core.batch.process_batch_parts`): one output
row per input row, to the output or the dead-letter topic, followed by the frame's detection
event when it has faces. An environment failure (`camstream.errors.ENVIRONMENT_FAILURES`)
fails the task instead, saying so. This module and `camstream.core` are all that executors
import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from camstream.core.routing import OutgoingRecord, Routes, outgoing_records
from camstream.core.runtime import (
    DEFAULT_MAX_FRAME_THREADS,
    configure_opencv_threads,
    frame_pool,
    process_record_parts,
)
from camstream.core.settings import RecordSettings

if TYPE_CHECKING:
    import pyarrow as pa

    from camstream.core.contract import RecordSource
    from camstream.core.records import ProcessedRecord
    from camstream.errors import EnvironmentFailure

# The per-process parts now live in `camstream.core.runtime`, shared with the consumer-group
# workers; their names here stay for the callers that know them.
configure_worker = configure_opencv_threads
process_row_parts = process_record_parts
__all__ = ["DEFAULT_MAX_FRAME_THREADS", "configure_worker", "frame_pool", "process_row_parts"]

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

    @property
    def routes(self) -> Routes:
        return Routes(self.output_topic, self.dead_letter_topic, self.events_topic)


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


def sink_rows(part: list[ProcessedRecord], routes: Routes) -> list[dict[str, Any]]:
    """A part's rows of `OUTPUT_COLUMNS`, in its order: each record's output or dead letter,
    then its detection event (`camstream.core.routing.outgoing_records`)."""
    return [
        {**sink_row(outgoing), **counted_columns(None if outgoing.is_event else result)}
        for result in part
        for outgoing in outgoing_records(result, routes)
    ]


def sink_row(outgoing: OutgoingRecord) -> dict[str, Any]:
    """A record to write as a row of the Kafka sink: key, value, headers and its topic."""
    return {
        "key": outgoing.key,
        "value": outgoing.value,
        "headers": [{"key": k, "value": v} for k, v in outgoing.headers],
        "topic": outgoing.topic,
    }


def counted_columns(result: ProcessedRecord | None) -> dict[str, Any]:
    """What the metrics count of a frame's row; all null for an event's (it is no frame)."""
    if result is None:
        return dict.fromkeys(("ok", "faces", "error", "skipped", "carried", "analysed"))
    return {
        "ok": result.ok,
        "faces": result.faces,
        "error": result.error,
        "skipped": result.skipped,
        "carried": result.carried,
        "analysed": result.analysed,
    }


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

        from camstream.core.runtime import (
            camera_ids,
            configure_opencv_threads,
            frame_pool,
            gate_and_guard,
            process_record_parts,
        )
        from camstream.spark.worker import flush_batch, output_arrow_schema, sink_rows, sources

        configure_opencv_threads(worker.opencv_threads)
        pool = frame_pool(worker.frame_threads)
        gate, guard = gate_and_guard(settings, worker.output_topic)
        routes = worker.routes

        out_schema = output_arrow_schema()
        flush = flush_batch(out_schema)
        for batch in batches:
            keys = batch.column("key").to_pylist()
            values = batch.column("value").to_pylist()
            header_lists = batch.column("headers").to_pylist()
            records = list(zip(keys, values, header_lists, sources(batch), strict=True))
            if guard is not None:
                guard.learn(camera_ids(keys))
            # Past capacity, the frames that skip detection anyway go out first (a part of
            # their own); every part keeps the records' order, and so each camera's.
            for part, more in process_record_parts(records, settings, gate, pool.map, guard):
                rows = sink_rows(part, routes)
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

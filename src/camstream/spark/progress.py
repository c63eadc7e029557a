"""Following a running query: a line per batch, the job's counts, frames lost, why it died."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from camstream.config import Config
from camstream.spark.job import OBSERVATION_NAME

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


def follow_progress(
    query: StreamingQuery,
    show: Callable[[str], Any] = print,
    seconds: float = 0,
    stop: threading.Event | None = None,
    losses: LossMonitor | None = None,
) -> None:
    """Report each new batch until the query ends, `stop` is set, or `seconds` (> 0) pass.

    With `losses`, frames that retention deleted before the job read them are counted,
    shown in the batch's line and logged at WARN with their partitions and offsets.
    """
    deadline = time.monotonic() + seconds if seconds > 0 else None
    last_batch = -1
    while query.isActive and not (stop is not None and stop.is_set()):
        if deadline is not None and time.monotonic() >= deadline:
            break
        if stop is not None:
            stop.wait(2.0)
        else:
            query.awaitTermination(2)
        for progress in query.recentProgress:
            if progress["batchId"] > last_batch:
                lost = losses.check(progress) if losses is not None else 0
                if progress.get("numInputRows") or lost:
                    show(describe_progress(progress, lost))
            last_batch = max(last_batch, progress["batchId"])


class LossMonitor:
    """Counts frames deleted from Kafka (by retention) before the job could read them.

    With `failOnDataLoss=false` Spark's Kafka source skips offsets that no longer exist
    and goes on, so a job that fell far behind would lose frames silently. A batch that
    read fewer records than its offset range spans is checked against each partition's
    earliest offset now: what lies below it was deleted unread. (The other source of such
    gaps, a transactional producer's commit markers, is not counted: those offsets are
    still in the log.)
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.total = 0
        self._consumer: Any = None

    def check(self, progress: dict[str, Any]) -> int:
        """Frames lost in this batch (0 normally); logs a warning for each partition hit."""
        lost_in_batch = 0
        for source in progress.get("sources") or []:
            start = _offsets(source.get("startOffset"))
            end = _offsets(source.get("endOffset"))
            spans = {tp: end[tp] - start[tp] for tp in end if tp in start and end[tp] > start[tp]}
            unread = sum(spans.values()) - int(source.get("numInputRows") or 0)
            if unread <= 0:
                continue
            earliest = self._earliest(list(spans))
            ranges = []
            for tp in sorted(spans):
                first_kept = min(earliest.get(tp, start[tp]), end[tp])
                if first_kept > start[tp]:
                    ranges.append((tp, start[tp], first_kept))
            lost = min(unread, sum(b - a for _, a, b in ranges))
            for (topic, partition), first, after in ranges:
                log.warning(
                    "%d frames of %s partition %d (offsets %d to %d) were deleted from Kafka"
                    " before the job read them: it fell behind by more than the topic's"
                    " retention",
                    after - first, topic, partition, first, after - 1,
                )  # fmt: skip
            lost_in_batch += lost
        self.total += lost_in_batch
        return lost_in_batch

    def _earliest(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        from kafka import TopicPartition

        from camstream.kafka.clients import make_consumer

        try:
            if self._consumer is None:
                self._consumer = make_consumer(self.cfg)
            found = self._consumer.beginning_offsets([TopicPartition(t, p) for t, p in partitions])
            return {(tp.topic, tp.partition): offset for tp, offset in found.items()}
        except Exception as exc:  # a report must not stop the job; say why it is missing
            log.warning("could not check for frames lost to retention: %s", exc)
            return {}

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _offsets(value: Any) -> dict[tuple[str, int], int]:
    """Spark's Kafka offsets ({"topic": {"0": 12}}, as JSON text or parsed) by partition."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {
        (topic, int(partition)): int(offset)
        for topic, partitions in value.items()
        if isinstance(partitions, dict)
        for partition, offset in partitions.items()
    }


def progress_metrics(progress: Any) -> dict[str, Any]:
    """The job's observed metrics from one progress report (a dict or a progress object)."""
    report = progress if isinstance(progress, dict) else progress.jsonValue()
    metrics = (report.get("observedMetrics") or {}).get(OBSERVATION_NAME) or {}
    return metrics.asDict() if hasattr(metrics, "asDict") else dict(metrics)


def describe_progress(progress: dict[str, Any], lost: int = 0) -> str:
    metrics = progress_metrics(progress)
    duration = (progress.get("durationMs") or {}).get("triggerExecution", 0)
    line = (
        f"batch {progress.get('batchId')}: {progress.get('numInputRows', 0)} frames in"
        f" {duration} ms ({progress.get('processedRowsPerSecond', 0) or 0:.1f} frames/s),"
        f" ok {metrics.get('frames_ok') or 0}, skipped as stale"
        f" {metrics.get('frames_skipped') or 0}, dead-lettered"
        f" {metrics.get('frames_dead_lettered') or 0}, faces {metrics.get('faces') or 0}"
    )
    if metrics.get("frames_gated"):  # the motion gate carried boxes instead of detecting
        line += (
            f", analysed {metrics.get('frames_analysed') or 0}"
            f" gated {metrics.get('frames_gated')} (still scenes)"
        )
    if metrics.get("events"):
        line += f", events {metrics.get('events')}"
    if lost:
        line += f", LOST {lost} (deleted from Kafka before they were read)"
    return line


# Spark 4 says "[PYTHON_EXCEPTION] ...", older ones "PythonException: ..."; the traceback
# ends at a blank line, a Java frame, Spark's SQLSTATE or the query's description.
_PYTHON_ERROR = re.compile(
    r"(?:PythonException:|\[PYTHON_EXCEPTION\]).*?Traceback \(most recent call last\):\n"
    r"(?P<trace>.*?)(?:\n\n|\n\tat |\n SQLSTATE|\n===|\Z)",
    re.S,
)
_KAFKA_ERROR = re.compile(r"org\.apache\.kafka\.common\.errors\.(?P<name>\w+): (?P<message>[^\n]+)")
# What the Java per-record function (Real-time Mode) lets through: an environment failure.
_JAVA_ERROR = re.compile(r"camstream\.realtime\.(?P<name>\w+): (?P<message>[^\n]+)")
_QUERY_PREFIX = re.compile(r"^(?:\[\w+\] )?Query .*? terminated with exception: ", re.S)


def describe_failure(error: BaseException | str) -> str:
    """The root cause of a failed query in one line, instead of Spark's page of plan.

    A Python exception in a worker ('ValueError: ...'), the Java per-record function's,
    or Kafka's own error (its message names the topic-partition where Kafka knows it), else
    the first line Spark gave.
    """
    text = str(error)
    python = _PYTHON_ERROR.search(text)
    if python:
        lines = [line.strip() for line in python.group("trace").splitlines() if line.strip()]
        if lines:
            return f"a Python worker raised {lines[-1]}"
    java = _JAVA_ERROR.search(text)
    if java:
        return f"the Java per-record function raised {java.group('name')}: {java.group('message')}"
    kafka = _KAFKA_ERROR.search(text)
    if kafka:
        return f"Kafka refused: {kafka.group('name')}: {kafka.group('message').strip()}"
    first = _QUERY_PREFIX.sub("", text.strip()).split("\n", 1)[0].strip()
    return first[:500] or type(error).__name__

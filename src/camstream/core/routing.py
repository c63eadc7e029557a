"""Where a processed record goes: the output or the dead-letter topic, then its event.

Stated once for every engine that runs the per-record path (the Spark job's executors,
`camstream.spark.worker`; the consumer-group workers, `camstream.workers`): one record out
per record in, to the output topic when it was processed, else to the dead-letter topic;
an output frame with faces is followed by its detection event when events are written.
"""

from __future__ import annotations

from dataclasses import dataclass

from camstream.core.contract import Headers
from camstream.core.records import ProcessedRecord


@dataclass(frozen=True)
class Routes:
    """The topics a processed record may go to (`events_topic` None: no events)."""

    output_topic: str
    dead_letter_topic: str
    events_topic: str | None = None


@dataclass(frozen=True)
class OutgoingRecord:
    """One record to write: its topic, key, value and headers; `is_event` for a detection
    event (no frame: counts of frames leave it out)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    is_event: bool = False


def destination_topic(result: ProcessedRecord, routes: Routes) -> str:
    """The output topic for a processed record, the dead-letter topic for one that failed."""
    return routes.output_topic if result.ok else routes.dead_letter_topic


def outgoing_records(result: ProcessedRecord, routes: Routes) -> list[OutgoingRecord]:
    """The record's output or dead letter, then its detection event if it has one (and
    `routes` writes events): written in this order, the event names a frame already out."""
    topic = destination_topic(result, routes)
    first = OutgoingRecord(topic, result.key, result.value, result.headers)
    if result.event is None or not routes.events_topic:
        return [first]
    return [first, OutgoingRecord(routes.events_topic, result.key, result.event, [], True)]

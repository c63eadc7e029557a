"""Monitoring station (console): annotated frames with their end-to-end delay and face count."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from camstream.config import Config
from camstream.frames import AnnotatedFrame, FrameError
from camstream.kafka_io import ensure_topics, make_consumer

log = logging.getLogger(__name__)


@dataclass
class MonitorStats:
    frames: int = 0
    duplicates: int = 0
    bad_records: int = 0
    per_camera: dict[str, int] = field(default_factory=dict)


class Deduplicator:
    """Shows each frame once: Kafka delivery is at-least-once, so a retried write can repeat
    a frame. Per camera, only a frame captured after the last one shown passes; ordering by
    (capture time, seq) rather than seq alone lets a restarted camera (seq back at 0) through.
    """

    def __init__(self) -> None:
        self.last_shown: dict[str, tuple[int, int]] = {}

    def forget(self, camera_id: str) -> None:
        self.last_shown.pop(camera_id, None)

    def is_new(self, frame: AnnotatedFrame) -> bool:
        position = (frame.capture_ts_ns, frame.seq)
        last = self.last_shown.get(frame.camera_id)
        if last is not None and position <= last:
            return False
        self.last_shown[frame.camera_id] = position
        return True


def iter_annotated_frames(
    cfg: Config,
    topic: str | None = None,
    camera_id: str | None = None,
    max_frames: int | None = None,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
    stop: threading.Event | None = None,
    stats: MonitorStats | None = None,
) -> Iterator[AnnotatedFrame]:
    """Annotated frames from the output topic, newest first by default, each frame once.

    Ends after `max_frames`, after `idle_timeout_s` without a frame, or when `stop` is set.
    Records that break the contract are counted in `stats.bad_records` and skipped.
    """
    topic = topic or cfg.output_topic
    stats = stats if stats is not None else MonitorStats()
    ensure_topics(cfg, [topic])
    consumer = make_consumer(cfg, topic, from_beginning=from_beginning)
    dedup = Deduplicator()
    last_frame_at = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            batches = consumer.poll(timeout_ms=200)
            if not batches:
                if idle_timeout_s is not None and time.monotonic() - last_frame_at > idle_timeout_s:
                    return
                continue
            for records in batches.values():
                for record in records:
                    try:
                        frame = AnnotatedFrame.from_record(record.value, record.headers)
                    except FrameError as exc:
                        stats.bad_records += 1
                        log.warning("skipping record %s@%s: %s", topic, record.offset, exc)
                        continue
                    if camera_id is not None and frame.camera_id != camera_id:
                        continue
                    if not dedup.is_new(frame):
                        stats.duplicates += 1
                        continue
                    last_frame_at = time.monotonic()
                    stats.frames += 1
                    stats.per_camera[frame.camera_id] = stats.per_camera.get(frame.camera_id, 0) + 1
                    yield frame
                    if max_frames is not None and stats.frames >= max_frames:
                        return
    finally:
        consumer.close()


def printable(text: str) -> str:
    """`text` safe for a terminal: control, format and separator characters escaped.

    Camera ids come from the cameras: an escape sequence in one could rewrite the screen
    (or, on some terminals, worse); a bidi override could disguise it.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def format_frame(frame: AnnotatedFrame, now_ns: int | None = None) -> str:
    result = f"skipped ({printable(frame.skipped)})" if frame.skipped else f"faces {frame.faces}"
    camera = printable(frame.camera_id)
    return (
        f"{camera:>10}  seq {frame.seq:>7}  delay {frame.delay_ms(now_ns):8.1f} ms"
        f"  {result}  {frame.width}x{frame.height}"
    )


def run_console_monitor(
    cfg: Config,
    topic: str | None = None,
    camera_id: str | None = None,
    max_frames: int | None = None,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
    stop: threading.Event | None = None,
    out: TextIO = sys.stdout,
) -> MonitorStats:
    """Print one line per annotated frame as it arrives: camera, seq, delay, faces."""
    stats = MonitorStats()
    print(
        f"monitoring {topic or cfg.output_topic} at {cfg.bootstrap_servers}"
        f" ({'camera ' + printable(camera_id) if camera_id else 'all cameras'}); Ctrl-C to stop",
        file=out,
        flush=True,
    )
    for frame in iter_annotated_frames(
        cfg, topic, camera_id, max_frames, from_beginning, idle_timeout_s, stop, stats
    ):
        print(format_frame(frame), file=out, flush=True)
    print(
        f"monitor: {stats.frames} frames from {len(stats.per_camera)} cameras,"
        f" {stats.duplicates} duplicates hidden, {stats.bad_records} bad records skipped",
        file=out,
        flush=True,
    )
    return stats

"""Monitoring station (console): annotated frames with their end-to-end delay and face count,
and detection events."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from typing import TextIO

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame, DetectionEvent
from camstream.kafka.consume import (
    LIVE_READ,
    MonitorStats,
    ReadOptions,
    RecentCameras,
    iter_annotated_frames,
    iter_detection_events,
)


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
    if frame.carried_from_seq is not None:
        result += f" (carried from seq {frame.carried_from_seq})"
    camera = printable(frame.camera_id)
    return (
        f"{camera:>10}  seq {frame.seq:>7}  delay {frame.delay_ms(now_ns):8.1f} ms"
        f"  {result}  {frame.width}x{frame.height}"
    )


def run_console_monitor(
    cfg: Config,
    options: ReadOptions = LIVE_READ,
    stop: threading.Event | None = None,
    out: TextIO = sys.stdout,
) -> MonitorStats:
    """Print one line per annotated frame as it arrives: camera, seq, delay, faces."""
    stats = MonitorStats(cameras=RecentCameras(cfg.station_max_cameras))
    camera_id = options.camera_id
    print(
        f"monitoring {options.topic or cfg.output_topic} at {cfg.kafka_bootstrap}"
        f" ({'camera ' + printable(camera_id) if camera_id else 'all cameras'}); Ctrl-C to stop",
        file=out,
        flush=True,
    )
    for frame in iter_annotated_frames(cfg, options, stop, stats):
        print(format_frame(frame), file=out, flush=True)
    print(
        f"monitor: {stats.frames} frames from {len(stats.per_camera)} cameras,"
        f" {stats.duplicates} duplicates hidden, {stats.bad_records} bad records skipped",
        file=out,
        flush=True,
    )
    return stats


def format_event(event: DetectionEvent, now_ns: int | None = None) -> str:
    delay_ms = ((now_ns if now_ns is not None else time.time_ns()) - event.capture_ts_ns) / 1e6
    how = f"carried from seq {event.carried_from_seq}" if event.carried else "detected"
    boxes = "left out" if event.boxes_xyxy is None else json.dumps(event.boxes_xyxy)
    return (
        f"{printable(event.camera_id):>10}  seq {event.seq:>7}  delay {delay_ms:8.1f} ms"
        f"  faces {event.faces} {how}  boxes {boxes}  -> {printable(event.topic)}"
    )


def run_event_printer(
    cfg: Config,
    options: ReadOptions = LIVE_READ,
    as_json: bool = False,
    stop: threading.Event | None = None,
    out: TextIO = sys.stdout,
) -> MonitorStats:
    """Print one line per detection event: camera, seq, delay, faces, boxes, carried."""
    stats = MonitorStats(cameras=RecentCameras(cfg.station_max_cameras))
    print(
        f"events of {cfg.events_topic} at {cfg.kafka_bootstrap}; Ctrl-C to stop",
        file=sys.stderr if as_json else out,
        flush=True,
    )
    for event in iter_detection_events(cfg, options, stop, stats):
        if as_json:
            line = json.dumps(dataclasses.asdict(event), separators=(",", ":"))
        else:
            line = format_event(event)
        print(line, file=out, flush=True)
    print(
        f"events: {stats.frames} from {len(stats.per_camera)} cameras,"
        f" {stats.duplicates} duplicates hidden, {stats.bad_records} bad records skipped",
        file=sys.stderr if as_json else out,
        flush=True,
    )
    return stats

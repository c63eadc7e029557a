"""Monitoring station (console): annotated frames with their end-to-end delay and face count."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame
from camstream.kafka.consume import MonitorStats, iter_annotated_frames


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
        f"monitoring {topic or cfg.output_topic} at {cfg.kafka_bootstrap}"
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

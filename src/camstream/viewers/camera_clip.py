"""A camera's clip cut from the recording: the one path of `camstream clip` and of the
station's Download clip.

The frames captured in the span are read back from the output topic (Kafka's retention is
the recorder) and written by `write_clip`. The rules, stated here once: a span with no
frames kept is a NotRecordedError naming the oldest time kept; a span of more than
clip_max_s of kept frames (counted from the first frame kept in it: a span reaching back
past retention costs no more) is refused. Blocking Kafka reads and encoding: call it from a
thread that may block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame
from camstream.errors import ConfigError, NotRecordedError
from camstream.kafka.recorder import Seek, frame_recording
from camstream.viewers.clips import ClipSummary, write_clip
from camstream.viewers.timespec import format_time

Frames = Iterator[AnnotatedFrame]


class ClipTooLongError(ConfigError):
    """More than clip_max_s of kept frames asked for."""


def cut_clip(
    cfg: Config,
    camera_id: str,
    from_ns: int,
    to_ns: int,
    path: Path,
    stop: threading.Event | None = None,
    watch: Callable[[Frames], Frames] | None = None,
) -> tuple[Seek[AnnotatedFrame], ClipSummary]:
    """The camera's frames captured from `from_ns` to `to_ns` into a video file at `path`:
    where the read landed (`before_retention` when the span began before anything kept),
    and what was written. `watch` sees the frames on their way (progress)."""
    with frame_recording(cfg, camera_id) as recording:
        landed, frames = recording.between(from_ns, to_ns, stop)
        first = landed.first
        if first is None or first.capture_ts_ns > to_ns:
            # The camera's oldest frame if the read found it, else its partition's oldest.
            oldest_ns = landed.oldest_ns
            if oldest_ns is None:
                kept = recording.kept()
                oldest_ns = None if kept.oldest_ms is None else kept.oldest_ms * 1_000_000
            oldest = "nothing kept" if oldest_ns is None else format_time(oldest_ns)
            raise NotRecordedError(
                f"{recording.topic} keeps no frame of {camera_id} captured between"
                f" {format_time(from_ns)} and {format_time(to_ns)}; the oldest available:"
                f" {oldest}"
            )
        span_s = (to_ns - max(from_ns, first.capture_ts_ns)) / 1e9
        if span_s > cfg.clip_max_s:
            raise ClipTooLongError(
                f"the clip spans {span_s:.0f} s of kept frames, more than clip_max_s"
                f" ({cfg.clip_max_s:.0f} s): shorten it, or raise CAMSTREAM_CLIP_MAX_S"
            )
        return landed, write_clip(path, frames if watch is None else watch(frames))

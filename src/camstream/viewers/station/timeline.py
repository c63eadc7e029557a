"""A camera's timeline for the station's focus view: how far back its frames are kept, and
where its detections were.

The span is the output topic's: the Kafka timestamps of the oldest and newest records of the
camera's partition (its retention), read with `CameraRecording.kept`. The marks are the
camera's detection events from the events topic over that span, at most MAX_MARKS of them
and read for at most SCAN_BUDGET_S (their partition holds other cameras' events too): past
either, the answer says `truncated`. Blocking Kafka calls: run it in a worker thread.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from camstream.config import Config
from camstream.kafka.recorder import detection_recording, frame_recording

MAX_MARKS = 2000
SCAN_BUDGET_S = 5.0
# The span starts at the oldest record's Kafka timestamp: when it was written, which is after
# its capture by the job's latency. Detections captured up to this much earlier are marked
# too, as their frames may be among the oldest kept.
MARKS_BEFORE_OLDEST_S = 60


def camera_timeline(cfg: Config, camera_id: str, now_ns: int | None = None) -> dict[str, Any]:
    """{"camera_id", "oldest_ns", "newest_ns", "now_ns", "detections": [{"capture_ns",
    "seq", "faces"}], "truncated"}; `oldest_ns` None when nothing is kept."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    with frame_recording(cfg, camera_id) as frames:
        kept = frames.kept()
    oldest_ns = None if kept.oldest_ms is None else kept.oldest_ms * 1_000_000
    newest_ns = None if kept.newest_ms is None else kept.newest_ms * 1_000_000
    marks: list[dict[str, int]] = []
    truncated = False
    if oldest_ns is not None:
        since_ns = oldest_ns - MARKS_BEFORE_OLDEST_S * 1_000_000_000
        marks, truncated = _detection_marks(cfg, camera_id, since_ns)
    return {
        "camera_id": camera_id,
        "oldest_ns": oldest_ns,
        "newest_ns": newest_ns,
        "now_ns": now_ns,
        "detections": marks,
        "truncated": truncated,
    }


def _detection_marks(
    cfg: Config, camera_id: str, from_ns: int
) -> tuple[list[dict[str, int]], bool]:
    """The camera's detections captured from `from_ns` to the events partition's end as it
    is now, and whether there were more (or the budget ran out)."""
    out_of_time = threading.Event()
    timer = threading.Timer(SCAN_BUDGET_S, out_of_time.set)
    timer.daemon = True
    timer.start()
    marks: list[dict[str, int]] = []
    try:
        with detection_recording(cfg, camera_id) as events:
            landed = events.seek(from_ns, out_of_time)
            if landed.first is None:
                return marks, out_of_time.is_set()
            following = events.follow(out_of_time, end_offset=events.end_offset())
            for detection in itertools.chain([landed.first], following):
                if len(marks) == MAX_MARKS:
                    return marks, True
                marks.append(
                    {
                        "capture_ns": detection.capture_ts_ns,
                        "seq": detection.seq,
                        "faces": detection.faces,
                    }
                )
    finally:
        timer.cancel()
    return marks, out_of_time.is_set()

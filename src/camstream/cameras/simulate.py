"""Simulated cameras: many cameras from one process, each playing the bundled sample video,
or (`scene="still"`) one of the labelled still scenes, as security cameras mostly see.

The frames are decoded and JPEG-encoded once and shared by every camera, so a camera
costs only a Kafka send per frame; each camera starts at its own phase in its clip and
keeps its own `seq`.

A simulated camera captures on its schedule: `capture_ts_ns` is the scheduled time, so a
producer that falls behind shows in every delay measured from capture, as it would with a
real camera. The time it was sent is the input record's Kafka timestamp (set at send).
"""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from camstream.cameras.encoding import encode_frame
from camstream.config import Config
from camstream.core.contract import FrameMeta
from camstream.core.jpeg import resize_to_width
from camstream.errors import ConfigError
from camstream.kafka.publish import DeliveryStats, FramePublisher, ProgressPrinter
from camstream.kafka.topics import ensure_topics


def sample_video_path() -> Path:
    return Path(str(resources.files("camstream.cameras").joinpath("data", "sample.avi")))


def sample_labels() -> dict:
    """Ground truth of the sample video: per frame index, the true face boxes (xyxy)."""
    path = resources.files("camstream.cameras").joinpath("data", "sample_labels.json")
    return json.loads(path.read_text())


@lru_cache(maxsize=4)
def load_sample_frames(path: str | None = None) -> tuple[np.ndarray, ...]:
    """All frames of the sample video (BGR), read once per process."""
    video = path or str(sample_video_path())
    capture = cv2.VideoCapture(video)
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open sample video {video}")
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok or frame is None:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise ValueError(f"sample video {video} has no frames")
    return tuple(frames)


SCENES = ("sample", "still")


def camera_ids(count: int, prefix: str = "cam") -> list[str]:
    digits = max(2, len(str(count)))
    return [f"{prefix}-{i:0{digits}d}" for i in range(1, count + 1)]


@dataclass(frozen=True)
class SimulatedCamera:
    camera_id: str
    phase: int  # index of the frame of its clip this camera starts on
    clip_start: int = 0  # where its clip starts among the simulator's frames

    def frame_index(self, seq: int, frame_count: int) -> int:
        """The index of the camera's frame `seq` within its clip of `frame_count` frames."""
        return (self.phase + seq) % frame_count


class CameraSimulator:
    """Publishes `cameras` cameras at `fps` each, on one schedule, from one producer."""

    def __init__(
        self,
        cfg: Config,
        cameras: int,
        fps: float = 5.0,
        topic: str | None = None,
        resize_width: int | None = None,
        prefix: str = "cam",
        phases: list[int] | None = None,
        scene: str = "sample",
    ) -> None:
        # ConfigError is a ValueError: the command line shows it as one line (exit 2).
        if cameras < 1:
            raise ConfigError(f"cameras must be 1 or more (got {cameras})")
        if not 0 < fps < float("inf"):
            raise ConfigError(f"fps must be a positive number (got {fps})")
        if resize_width is not None and resize_width < 1:
            raise ConfigError(f"resize_width must be 1 or more (got {resize_width})")
        self.cfg = cfg
        self.fps = fps
        self.topic = topic or cfg.input_topic
        if scene not in SCENES:
            raise ConfigError(f"scene must be one of {', '.join(SCENES)} (got {scene!r})")
        # Encoded once, shared by all cameras: the expensive part of a camera is done once.
        # Clip c is frames [c * clip_length, (c + 1) * clip_length) of `fitted`.
        clips: list[Sequence[np.ndarray]]
        if scene == "sample":
            clips = [load_sample_frames()]
        else:
            from camstream.cameras import still_scenes

            clips = [
                [
                    still_scenes.render(still_scenes.clip_named(name), i)
                    for i in range(still_scenes.FRAMES)
                ]
                for name in still_scenes.CAMERA_MIX
            ]
        self.clip_length = len(clips[0])
        self.fitted = [
            encode_frame(resize_to_width(frame, resize_width), cfg)
            for clip in clips
            for frame in clip
        ]
        self.jpegs = [f.jpeg for f in self.fitted]
        count = self.clip_length
        ids = camera_ids(cameras, prefix)
        if phases is None:
            phases = [(i * count) // cameras for i in range(cameras)]
        # Camera i plays clip i mod (number of clips): cameras of every scene alike.
        self.cameras = [
            SimulatedCamera(cid, p % count, (i % len(clips)) * count)
            for i, (cid, p) in enumerate(zip(ids, phases, strict=True))
        ]
        # How far behind its schedule the simulator fell at worst: >> 1/fps means overloaded.
        self.max_lag_s = 0.0

    @property
    def frame_count(self) -> int:
        """Frames per clip (the sample video's, or a still scene's)."""
        return self.clip_length

    def run(
        self,
        max_frames: int | None = None,
        duration_s: float | None = None,
        stop: threading.Event | None = None,
        progress: Callable[[DeliveryStats, bool], None] | None = None,
    ) -> DeliveryStats:
        """Publish until every camera sent `max_frames`, `duration_s` passed, or `stop` is set."""
        stop = stop or threading.Event()
        ensure_topics(self.cfg, [self.topic])
        publisher = FramePublisher(self.cfg, self.topic)
        progress = progress or ProgressPrinter(f"simulate {len(self.cameras)} cameras")
        period = 1.0 / self.fps
        start = time.monotonic()
        start_wall_ns = time.time_ns()  # the schedule in Unix time: capture times
        end = start + duration_s if duration_s else None
        # Cameras are spread over one period so that sends are even, not in bursts.
        schedule = [
            (start + period * i / len(self.cameras), i, 0) for i in range(len(self.cameras))
        ]
        heapq.heapify(schedule)
        try:
            while schedule and not stop.is_set():
                due, index, seq = heapq.heappop(schedule)
                if end is not None and due >= end:
                    break
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                self.max_lag_s = max(self.max_lag_s, -delay)
                camera = self.cameras[index]
                frame = self.fitted[camera.clip_start + camera.frame_index(seq, self.frame_count)]
                captured_ns = start_wall_ns + round((due - start) * 1e9)
                meta = FrameMeta(camera.camera_id, seq, captured_ns, frame.width, frame.height)
                publisher.publish(meta, frame.jpeg)
                progress(publisher.stats, False)
                if max_frames is None or seq + 1 < max_frames:
                    heapq.heappush(schedule, (due + period, index, seq + 1))
        finally:
            stats = publisher.close()
            progress(stats, True)
        publisher.check_delivered()
        return stats

"""What the station holds: the latest frame per camera, bounded statistics, recent detections.

Memory follows the cameras that are live, not the frame rate: one frame per camera (and
its last few frames with faces, for the detections' pictures), fixed windows of delays and
capture times, a fixed number of detections; cameras silent for long are forgotten. Nor
does it follow every camera id ever seen (an id is the sender's choice): past
`max_cameras` the least recently seen camera is forgotten, and past `max_frame_memory`
bytes of JPEG the least recently updated ones, from every table at once (`RecentCameras`,
shared with the station's Kafka readers). The detections list is fed by the job's events
topic (`add_detection`), not by the frames.

A frame the job passed on without detection (`skipped`: stale, or shed past capacity) is
shown like any other, but counted apart: per camera the rate of analysed frames and the gaps
between them, and over all cameras the share of frames skipped lately (`shedding`). A frame
whose boxes the motion gate carried counts as analysed.
"""

from __future__ import annotations

import base64
import statistics
import time
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame, DetectionEvent
from camstream.core.jpeg import thumbnail_jpeg
from camstream.kafka.consume import DEFAULT_MAX_CAMERAS, Deduplicator, RecentCameras

DELAY_WINDOW = 256  # delays kept per camera for p50/p95
FPS_WINDOW_S = 5.0
EVENT_HISTORY = 50
EVENT_REPEAT_S = 3.0  # a camera that keeps seeing faces raises an event at most this often
THUMBNAIL_WIDTH = 160
PICTURE_WAIT_S = 2.0  # how long a detection waits for its frame before it shows without it
FACE_FRAMES_KEPT = 4  # per camera: the frames an event arriving before or after can show
CAPTURES_KEPT = 256  # per camera: capture times kept for the rates (all, and analysed)
# Per camera, the longest gap between analysed frames is over the last GAP_WINDOW_S of its
# capture time, counted in whole seconds: gaps ending (at an analysed frame) in the second
# of its latest frame or the GAP_WINDOW_S seconds before, kept as one maximum per second.
GAP_WINDOW_S = 30
GAP_SLOTS = GAP_WINDOW_S + 1
# Over all cameras, the share of frames skipped (not analysed) is over the frames that
# arrived at the station in the current second or the SHED_WINDOW_S seconds before (by the
# station's clock), kept as counts per second.
SHED_WINDOW_S = 10
DEFAULT_MAX_FRAME_MEMORY: int = Config.station_max_frame_memory  # the setting's default


@dataclass
class CameraState:
    camera_id: str
    frame: AnnotatedFrame
    version: int = 0
    frames: int = 0
    last_seen: float = 0.0  # wall-clock seconds
    # Capture times (ns) of the latest frames: the camera's own rate, whatever the bursts in
    # which micro-batches deliver them.
    captures: deque[int] = field(default_factory=lambda: deque(maxlen=CAPTURES_KEPT))
    # The same for the frames that were analysed (not `skipped`), and how many were not.
    analysed: deque[int] = field(default_factory=lambda: deque(maxlen=CAPTURES_KEPT))
    frames_skipped: int = 0
    # The longest gap (ns of capture time) between analysed frames ending in each of the last
    # GAP_WINDOW_S + 1 seconds of capture time: a ring indexed by second, allocated once.
    gap_seconds: array[int] = field(default_factory=lambda: array("q", [-1] * GAP_SLOTS))
    gap_ns: array[int] = field(default_factory=lambda: array("q", [0] * GAP_SLOTS))
    delays_ms: deque[float] = field(default_factory=lambda: deque(maxlen=DELAY_WINDOW))
    # The latest frames with faces, by seq: the picture of a detection event.
    face_frames: deque[AnnotatedFrame] = field(
        default_factory=lambda: deque(maxlen=FACE_FRAMES_KEPT)
    )
    frame_bytes: int = 0  # of JPEG held: `frame` and `face_frames`

    def held_frame_bytes(self) -> int:
        return len(self.frame.jpeg) + sum(
            len(f.jpeg) for f in self.face_frames if f is not self.frame
        )


# Where the station serves a clip as a video file (app.py's route); a detection's clip is
# linked from its event.
CLIP_PATH = "/api/clip/"


def event_clip_span(capture_ns: int, before_s: float, after_s: float) -> tuple[int, int]:
    """The span (ns of capture time) of a detection's clip: `before_s` before its frame's
    capture to `after_s` after it (the settings clip_before_s and clip_after_s)."""
    return capture_ns - round(before_s * 1e9), capture_ns + round(after_s * 1e9)


def clip_download_path(camera_id: str, from_ns: int, to_ns: int) -> str:
    return f"{CLIP_PATH}{quote(camera_id, safe='')}?from_ns={from_ns}&to_ns={to_ns}"


@dataclass
class Event:
    event_id: int
    ts: float
    camera_id: str
    seq: int
    faces: int
    thumbnail_jpeg: bytes  # empty until the event's frame has arrived
    carried: bool = False
    capture_ts_ns: int = 0  # of the detection's frame
    clip: tuple[int, int] = (0, 0)  # its clip's span (`event_clip_span`), in ns

    def to_json(self) -> dict[str, Any]:
        from_ns, to_ns = self.clip
        return {
            "id": self.event_id,
            # When its frame was captured (the station may hear of it later: a recorded past).
            "time": time.strftime("%H:%M:%S", time.localtime(self.capture_ts_ns / 1e9 or self.ts)),
            "ts": self.ts,
            "camera_id": self.camera_id,
            "seq": self.seq,
            "faces": self.faces,
            "carried": self.carried,
            "capture_ts_ns": self.capture_ts_ns,
            # Exact ns in the link: a page's JSON numbers (doubles) are not exact at ns.
            "clip": {
                "from_ns": from_ns,
                "to_ns": to_ns,
                "download": clip_download_path(self.camera_id, from_ns, to_ns),
            },
            "thumbnail": (
                "data:image/jpeg;base64," + base64.b64encode(self.thumbnail_jpeg).decode()
                if self.thumbnail_jpeg
                else ""
            ),
        }


class FrameStore:
    """Latest frame and bounded statistics per camera; safe to use from several threads."""

    def __init__(
        self,
        stale_after_s: float = 5.0,
        forget_after_s: float = 1800.0,
        max_cameras: int = DEFAULT_MAX_CAMERAS,
        max_frame_memory: int = DEFAULT_MAX_FRAME_MEMORY,
        clip_before_s: float = Config.clip_before_s,
        clip_after_s: float = Config.clip_after_s,
    ) -> None:
        self.stale_after_s = stale_after_s
        self.clip_before_s = clip_before_s
        self.clip_after_s = clip_after_s
        self.forget_after_s = forget_after_s
        self.max_frame_memory = max_frame_memory
        self._next_sweep = 0.0
        self.cameras_forgotten = 0
        # The station's cameras, for every table that holds one (here and in the station's
        # Kafka readers); its lock is this store's, so that a camera goes from all at once.
        self.cameras = RecentCameras(max_cameras)
        self._lock = self.cameras.lock
        # Least recently updated first: the first to go past max_frame_memory.
        self._cameras: OrderedDict[str, CameraState] = OrderedDict()
        self._frame_bytes = 0
        self._events: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self._next_event_id = 1
        self._dedup = Deduplicator(self.cameras)
        self._event_dedup = Deduplicator(self.cameras)
        self._event_times: dict[str, float] = {}  # camera id -> its last detection shown
        self.frames_total = 0
        # [second of arrival time, frames, frames skipped] over all cameras (`shedding`).
        self._arrivals: deque[list[int]] = deque(maxlen=SHED_WINDOW_S + 1)
        # At-least-once delivery repeats frames after a retry or a job restart: shown once.
        self.duplicates_hidden = 0
        self.cameras.on_forget(self._forget)

    def update(self, frame: AnnotatedFrame, now: float | None = None) -> bool:
        """Show `frame` unless it repeats (or predates) one shown already; False if hidden."""
        now = time.time() if now is None else now
        delay_ms = (now * 1e9 - frame.capture_ts_ns) / 1e6
        with self._lock:
            self._sweep(now)
            if not self._dedup.is_new(frame):
                self.duplicates_hidden += 1
                return False
            state = self._cameras.get(frame.camera_id)
            if state is None:
                state = self._cameras[frame.camera_id] = CameraState(frame.camera_id, frame)
            else:
                self._cameras.move_to_end(frame.camera_id)
            state.frame = frame  # the previous frame is dropped here: only the latest is kept
            state.version += 1
            state.frames += 1
            state.last_seen = now
            state.captures.append(frame.capture_ts_ns)
            state.delays_ms.append(delay_ms)
            self.frames_total += 1
            skipped = frame.skipped is not None  # the reason's text is not read
            if skipped:
                state.frames_skipped += 1
            else:
                _add_analysed(state, frame.capture_ts_ns)
            _count_arrival(self._arrivals, int(now), skipped)
            if frame.faces > 0:
                state.face_frames.append(frame)
            held = state.held_frame_bytes()
            self._frame_bytes += held - state.frame_bytes
            state.frame_bytes = held
            # The least recently updated cameras go; never this one (the most recent).
            while self._frame_bytes > self.max_frame_memory and len(self._cameras) > 1:
                self.cameras.forget(next(iter(self._cameras)))
            waiting = [
                e
                for e in self._events
                if e.camera_id == frame.camera_id and e.seq == frame.seq and not e.thumbnail_jpeg
            ]
        if waiting:  # the event came first: its picture now
            thumbnail = thumbnail_jpeg(frame.jpeg, THUMBNAIL_WIDTH, 70) or b""
            with self._lock:
                for event in waiting:
                    event.thumbnail_jpeg = thumbnail
        return True

    def add_detection(self, detection: DetectionEvent, now: float | None = None) -> bool:
        """A detection event from the events topic; False if it repeats one, or if its camera
        raised one less than EVENT_REPEAT_S ago (a camera that keeps seeing faces)."""
        now = time.time() if now is None else now
        with self._lock:
            if not self._event_dedup.is_new(detection):
                return False
            # Per camera, whether or not its frames have arrived yet (the two topics are
            # read by two consumers, in no fixed order).
            last = self._event_times.get(detection.camera_id)
            if last is not None and now - last < EVENT_REPEAT_S:
                return False
            self._event_times[detection.camera_id] = now
            state = self._cameras.get(detection.camera_id)
            frames = (
                [] if state is None else [f for f in (*state.face_frames, state.frame) if f.faces]
            )
            # Its own frame; if the station no longer holds it (the frames' consumer ran
            # ahead), the camera's nearest frame with faces; if none arrived yet, `update`
            # gives it its picture when its frame comes.
            frame = min(frames, key=lambda f: abs(f.seq - detection.seq), default=None)
            event = Event(
                self._next_event_id,
                now,
                detection.camera_id,
                detection.seq,
                detection.faces,
                b"",
                detection.carried,
                detection.capture_ts_ns,
                event_clip_span(detection.capture_ts_ns, self.clip_before_s, self.clip_after_s),
            )
            self._next_event_id += 1
            # Listed under the same lock as the frame lookup: a frame stored after it finds
            # the event waiting for its picture (`update`), one stored before is found here.
            self._events.append(event)
        if frame is not None:  # the thumbnail is made outside the lock
            thumbnail = thumbnail_jpeg(frame.jpeg, THUMBNAIL_WIDTH, 70) or b""
            with self._lock:
                event.thumbnail_jpeg = thumbnail
        return True

    def _forget(self, camera_id: str) -> None:
        """Drop a camera's frames and statistics (`self.cameras` calls it, under the lock)."""
        state = self._cameras.pop(camera_id, None)
        if state is not None:
            self._frame_bytes -= state.frame_bytes
            self.cameras_forgotten += 1
        self._event_times.pop(camera_id, None)

    def _sweep(self, now: float) -> None:
        """Drop cameras silent for `forget_after_s` (at most every few seconds; under lock).

        Memory then follows the cameras that are live, not the cap on cameras alone.
        """
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(5.0, self.forget_after_s / 10)
        silent = [c for c, s in self._cameras.items() if now - s.last_seen > self.forget_after_s]
        for camera_id in silent:
            self.cameras.forget(camera_id)
        quiet = [c for c, t in self._event_times.items() if now - t > self.forget_after_s]
        for camera_id in quiet:
            del self._event_times[camera_id]
            self._event_dedup.forget(camera_id)
            if camera_id not in self._cameras:  # nothing of it is left to show
                self.cameras.forget(camera_id)

    def versions(self, camera_ids: set[str] | None = None) -> dict[str, int]:
        """Each camera's frame version (of `camera_ids` only, if given)."""
        with self._lock:
            if camera_ids is None:
                return {cid: state.version for cid, state in self._cameras.items()}
            return {cid: self._cameras[cid].version for cid in camera_ids if cid in self._cameras}

    def stat_marks(self, now: float | None = None) -> dict[str, tuple[int, bool, bool]]:
        """Per camera what its statistics change with: its frame version, whether it is live
        (its rates count) and whether it is stale. A client sends those whose mark changed."""
        now = time.time() if now is None else now
        with self._lock:
            self._sweep(now)
            return {
                cid: (
                    s.version,
                    now - s.last_seen <= FPS_WINDOW_S,
                    now - s.last_seen > self.stale_after_s,
                )
                for cid, s in self._cameras.items()
            }

    def latest(self, camera_id: str) -> tuple[int, AnnotatedFrame] | None:
        with self._lock:
            state = self._cameras.get(camera_id)
            return None if state is None else (state.version, state.frame)

    def events(self, after_id: int = 0, now: float | None = None) -> list[Event]:
        """Detections after `after_id`, in order. One whose frame has not arrived yet is held
        back (with those after it) for up to PICTURE_WAIT_S, so that it shows its picture."""
        now = time.time() if now is None else now
        ready = []
        with self._lock:
            for event in self._events:
                if event.event_id <= after_id:
                    continue
                if not event.thumbnail_jpeg and now - event.ts < PICTURE_WAIT_S:
                    break
                ready.append(event)
        return ready

    def camera_stats(
        self, now: float | None = None, camera_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Each camera's statistics (of `camera_ids` only, if given), by camera id."""
        now = time.time() if now is None else now
        with self._lock:
            self._sweep(now)
            chosen = (
                self._cameras.values()
                if camera_ids is None
                else [self._cameras[c] for c in camera_ids if c in self._cameras]
            )
            states = [
                (
                    s.camera_id,
                    s.frame,
                    s.frames,
                    s.last_seen,
                    list(s.captures),
                    list(s.delays_ms),
                    list(s.analysed),
                    s.frames_skipped,
                    list(zip(s.gap_seconds, s.gap_ns, strict=True)),
                )
                for s in chosen
            ]
        stats = []
        for (
            camera_id,
            frame,
            frames,
            last_seen,
            captures,
            delays,
            analysed,
            frames_skipped,
            gaps,
        ) in sorted(states, key=lambda s: s[0]):
            live = now - last_seen <= FPS_WINDOW_S
            fps = capture_rate(captures) if live else 0.0
            # Over the same window, ending at the camera's latest frame (not at its latest
            # analysed one): a camera whose recent frames were all skipped shows 0.
            newest = captures[-1]
            recent = [t for t in analysed if newest - t <= FPS_WINDOW_S * 1e9]
            analysed_fps = min(fps, capture_rate(recent)) if live else 0.0
            gap_s, gap_max_s = _analysed_gaps(analysed, gaps, newest)
            stats.append(
                {
                    "camera_id": camera_id,
                    "frames": frames,
                    "seq": frame.seq,
                    "faces": frame.faces,
                    "fps": round(fps, 2),
                    "delay_ms_last": round(delays[-1], 1),
                    "delay_ms_p50": round(statistics.median(delays), 1),
                    "delay_ms_p95": round(_percentile(delays, 95), 1),
                    "last_seen_s_ago": round(now - last_seen, 2),
                    "stale": now - last_seen > self.stale_after_s,
                    "analysed_fps": round(analysed_fps, 2),
                    "frames_skipped": frames_skipped,
                    "analysed_gap_s": gap_s,
                    "analysed_gap_max_s": gap_max_s,
                }
            )
        return stats

    def shedding(self, now: float | None = None) -> dict[str, Any]:
        """Whether the job is shedding load: of the frames of all cameras that arrived in
        the last SHED_WINDOW_S (10 to 11 s: whole seconds), how many came without detection."""
        now = time.time() if now is None else now
        first = int(now) - SHED_WINDOW_S
        with self._lock:
            counted = [(n, k) for second, n, k in self._arrivals if second >= first]
        frames = sum(n for n, _ in counted)
        skipped = sum(k for _, k in counted)
        share = skipped / frames if frames else 0.0
        return {
            "active": skipped > 0,
            "share": round(share, 4),
            "frames_skipped": skipped,
            "frames": frames,
            "window_s": SHED_WINDOW_S,
        }

    def memory_bytes(self) -> int:
        """Bytes of frame data held: the latest JPEG per camera, its last few with faces and
        the event thumbnails."""
        with self._lock:
            return self._frame_bytes + sum(len(e.thumbnail_jpeg) for e in self._events)

    def camera_count(self) -> int:
        with self._lock:
            return len(self._cameras)


def capture_rate(captures_ns: list[int], window_s: float = FPS_WINDOW_S) -> float:
    """Frames per second the camera sent: its capture times over the last `window_s`."""
    if len(captures_ns) < 2:
        return 0.0
    newest = captures_ns[-1]
    recent = [t for t in captures_ns if newest - t <= window_s * 1e9]
    span_s = (newest - recent[0]) / 1e9
    return (len(recent) - 1) / span_s if span_s > 0 else 0.0


def _add_analysed(state: CameraState, capture_ns: int) -> None:
    """Record an analysed frame: its capture time, and the gap since the previous one."""
    if state.analysed and capture_ns > state.analysed[-1]:
        gap = capture_ns - state.analysed[-1]
        second = capture_ns // 1_000_000_000
        slot = second % GAP_SLOTS
        if state.gap_seconds[slot] < second:  # a slot left from GAP_SLOTS seconds ago (or more)
            state.gap_seconds[slot] = second
            state.gap_ns[slot] = gap
        elif state.gap_seconds[slot] == second:
            state.gap_ns[slot] = max(state.gap_ns[slot], gap)
    state.analysed.append(capture_ns)


def _analysed_gaps(
    analysed: list[int], gaps: list[tuple[int, int]], newest_ns: int
) -> tuple[float | None, float | None]:
    """(seconds of capture time from the camera's last analysed frame to its latest frame,
    the longest stretch without an analysed frame over its last GAP_WINDOW_S): None, None
    until one of its frames is analysed."""
    if not analysed:
        return None, None
    open_gap = max(0, newest_ns - analysed[-1])
    last = newest_ns // 1_000_000_000
    longest = max([gap for second, gap in gaps if last - GAP_WINDOW_S <= second <= last], default=0)
    return round(open_gap / 1e9, 3), round(max(open_gap, longest) / 1e9, 3)


def _count_arrival(arrivals: deque[list[int]], second: int, skipped: bool) -> None:
    """Count a frame in its second of arrival (a clock step back counts in the latest)."""
    if not arrivals or arrivals[-1][0] < second:
        arrivals.append([second, 0, 0])
    arrivals[-1][1] += 1
    arrivals[-1][2] += skipped


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]

"""One browser's replay: a camera's recorded frames read back from Kafka by capture time and
sent over the client's own WebSocket at the camera's pace, while the wall stays live.

Two halves per replaying client:
- a reader thread (`ReplayReader`) owns one `CameraRecording` (its own group-less consumer,
  blocking kafka-python calls, not thread-safe) and fills a `ReplayBuffer`, bounded in
  frames and in bytes: the thread blocks while the buffer is full, so a replay holds at
  most MAX_BUFFERED_BYTES of JPEG however far back it reads and whatever its speed;
- a pacer (`ReplaySession.play`), a task in the client's event loop, sends each frame when
  it is due: (capture - anchor capture) / speed after the anchor's wall time. A change of
  speed re-anchors at the last frame sent; paused, one frame goes per step.

A new replay request replaces the session before it (its thread stopped, its consumer
closed); so does the socket closing. Kafka being down or a topic missing is an error message
to the page, never the end of its connection. A replay at 1x stays as far behind as it
began (time-shifted); faster, it catches up, and once its frames are within LIVE_WITHIN_NS
of now, or it has sent all there was when the reader reached the partition's end, the page
is told it is live and the session ends.

The page's commands (JSON text on the WebSocket):
    {"replay": {"camera_id", "at_ns", "speed", "until_ns"?, "id"}}  (`ReplayRequest`)
    {"replay_speed": n}  (0: paused)      {"replay_step": n}  (pause, n frames on)
    {"live": true}  (end the replay)
What it is sent: each replayed frame as a binary message in `pack_frame`'s format with
"replay": true, "replay_id" and "speed" in its metadata (and its "capture_ts_ns"), and JSON
text {"type": "replay", "state", "replay_id", "camera_id", ...} of the states:
    started  requested_ns, first_capture_ns, first_seq, before_retention, oldest_ns,
             until_ns, speed
    gap      from_ns, to_ns, gap_s (the frame after it follows GAP_SHOW_S later at most)
    live     reason (caught up: the page shows live frames again; the session is over)
    ended    frames, last_capture_ns (past until_ns: a clip played to its end)
    error    reason ("no_frames", "failed": Kafka; "bad_request": a command refused, which
             ends nothing), error (what to tell the user)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocketDisconnect

from camstream.config import Config
from camstream.core.contract import AnnotatedFrame
from camstream.errors import CamstreamError
from camstream.kafka.recorder import SEEK_SLACK_MS, CameraRecording, Seek, frame_recording
from camstream.viewers.gaps import GapFinder
from camstream.viewers.timespec import format_time

log = logging.getLogger(__name__)

MAX_BUFFERED_FRAMES = 64
MAX_BUFFERED_BYTES = 8 * 1024 * 1024
MAX_SPEED = 16.0  # the page offers 1x, 2x and 4x; 0 is paused
MAX_PENDING_STEPS = 100
# A replay whose frames come within this of now has caught up: the page goes live.
LIVE_WITHIN_NS = 2_000_000_000
# How long the page is shown a gap (the frame after it waits as long): a long gap is not
# waited out in full, since nothing would be shown meanwhile but the notice.
GAP_SHOW_S = 1.0
END_POLL_S = 0.2  # at the partition's end, how often the reader looks for new records
PUT_WAIT_S = 0.1  # a reader blocked on a full buffer looks at its stop event this often
# A new request waits this long for the previous reader to stop (its blocking Kafka call
# to return), so that a client never has more than one reader at once.
READER_STOP_WAIT_S = 10.0
MAX_CAMERA_ID = 255

Send = Callable[[bytes | str], Awaitable[None]]
PackFrame = Callable[[AnnotatedFrame, dict[str, Any]], bytes]
OpenRecording = Callable[[str], CameraRecording[AnnotatedFrame]]


def failure_text(exc: BaseException) -> str:
    """What the page is told when the recording cannot be read."""
    if isinstance(exc, CamstreamError):  # camstream's own errors say what to do
        return str(exc)
    return f"cannot read the recording from Kafka: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class ReplayRequest:
    """{"replay": {"camera_id", "at_ns", "speed", "until_ns", "id"}} from the page.

    `speed` 0 is paused (frame by frame); `until_ns` (optional) ends the replay at that
    capture time, as a clip; `id` is the page's own number for the request, echoed in every
    message of it, so that the page can drop what an earlier request still had in flight.
    """

    camera_id: str
    at_ns: int
    speed: float
    until_ns: int | None
    replay_id: int

    @classmethod
    def parse(cls, body: Any) -> ReplayRequest:
        """ValueError, saying what is wrong, for anything but a well-formed request."""
        if not isinstance(body, dict):
            raise ValueError("replay: expected an object")
        camera_id = body.get("camera_id")
        if not isinstance(camera_id, str) or not 1 <= len(camera_id) <= MAX_CAMERA_ID:
            raise ValueError(f"replay: camera_id must be a string of 1-{MAX_CAMERA_ID} characters")
        at_ns = _nanoseconds(body.get("at_ns"), "at_ns")
        until = body.get("until_ns")
        until_ns = None if until is None else _nanoseconds(until, "until_ns")
        if until_ns is not None and until_ns < at_ns:
            raise ValueError("replay: until_ns is before at_ns")
        replay_id = body.get("id", 0)
        if not isinstance(replay_id, int) or isinstance(replay_id, bool):
            raise ValueError("replay: id must be an integer")
        return cls(camera_id, at_ns, parse_speed(body.get("speed", 1)), until_ns, replay_id)


def _nanoseconds(value: Any, name: str) -> int:
    """A time in ns since the epoch: a JSON number (a page's doubles are not exact at ns) or
    a string of digits (exact)."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError(f"replay: {name} must be a time in ns since the epoch")
    return value


def parse_speed(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("replay: speed must be a number")
    if not 0 <= value <= MAX_SPEED:
        raise ValueError(f"replay: speed must be from 0 (paused) to {MAX_SPEED:g}")
    return float(value)


# What the reader hands the pacer, in order, besides frames.
@dataclass(frozen=True)
class Landed:
    """Where the seek landed (`seek.first` None: no frame of the camera from then on)."""

    seek: Seek[AnnotatedFrame]


@dataclass(frozen=True)
class AtEnd:
    """The reader reached the partition's end: every frame recorded so far came before."""


@dataclass(frozen=True)
class Finished:
    """The replay's `until_ns` has passed: no more frames in its span."""


@dataclass(frozen=True)
class Failed:
    error: str


ReaderItem = AnnotatedFrame | Landed | AtEnd | Finished | Failed


class ReplayBuffer:
    """From the reader thread to the pacer: bounded in frames and in bytes of JPEG.

    `put` (the thread) blocks while full, looking at its stop event; `get` (the event loop)
    awaits the next item. One frame larger than the whole byte bound still goes through,
    alone.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        max_frames: int = MAX_BUFFERED_FRAMES,
        max_bytes: int = MAX_BUFFERED_BYTES,
    ) -> None:
        self._loop = loop
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._items: deque[ReaderItem] = deque()
        self._bytes = 0
        self._frames = 0
        self._space = threading.Condition()
        self._ready = asyncio.Event()  # only touched in the event loop
        self.peak_bytes = 0
        self.peak_frames = 0

    @staticmethod
    def _size(item: ReaderItem) -> int:
        return len(item.jpeg) if isinstance(item, AnnotatedFrame) else 0

    def put(self, item: ReaderItem, stop: threading.Event) -> bool:
        """Add `item` once there is room; False (not added) once `stop` is set."""
        size = self._size(item)
        frame = isinstance(item, AnnotatedFrame)
        with self._space:
            while (
                frame
                and self._items
                and (self._frames >= self.max_frames or self._bytes + size > self.max_bytes)
            ):
                if stop.is_set():
                    return False
                self._space.wait(PUT_WAIT_S)
            if stop.is_set():
                return False
            self._items.append(item)
            self._bytes += size
            self._frames += frame
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self.peak_frames = max(self.peak_frames, self._frames)
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the event loop is closed: nobody will read it
            return False
        return True

    def empty(self) -> bool:
        with self._space:
            return not self._items

    async def get(self) -> ReaderItem:
        while True:
            self._ready.clear()  # before looking: a put after this sets it again
            with self._space:
                if self._items:
                    item = self._items.popleft()
                    size = self._size(item)
                    self._bytes -= size
                    self._frames -= isinstance(item, AnnotatedFrame)
                    self._space.notify()
                    return item
            await self._ready.wait()


class ReplayReader(threading.Thread):
    """Reads one camera's frames from `at_ns` on into the buffer, on into live (or to
    `until_ns`), with one CameraRecording that it opens and always closes."""

    def __init__(
        self,
        open_recording: OpenRecording,
        request: ReplayRequest,
        buffer: ReplayBuffer,
    ) -> None:
        super().__init__(name=f"station-replay-{request.replay_id}", daemon=True)
        self._open = open_recording
        self.request = request
        self.buffer = buffer
        self.stop_event = threading.Event()

    def _put(self, item: ReaderItem) -> bool:
        return self.buffer.put(item, self.stop_event)

    def run(self) -> None:
        stop = self.stop_event
        try:
            recording = self._open(self.request.camera_id)
        except Exception as exc:  # Kafka down, the topic missing: the page is told
            self._put(Failed(failure_text(exc)))
            return
        try:
            landed = recording.seek(self.request.at_ns, stop)
            if stop.is_set() or not self._put(Landed(landed)) or landed.first is None:
                return
            self._follow(recording, landed.first)
        except Exception as exc:  # the broker went away meanwhile
            log.warning("replay of %r: %s", self.request.camera_id, exc)
            self._put(Failed(failure_text(exc)))
        finally:
            recording.close()

    def _offer(self, frame: AnnotatedFrame) -> bool:
        """Hand `frame` on; False once the replay is over (past `until_ns`, or stopped)."""
        until_ns = self.request.until_ns
        if until_ns is not None and frame.capture_ts_ns > until_ns:
            self._put(Finished())
            return False
        return self._put(frame)

    def _follow(self, recording: CameraRecording[AnnotatedFrame], first: AnnotatedFrame) -> None:
        """The frames from `first` on, and AtEnd each time the partition's end is reached
        after new frames; Finished past `until_ns`."""
        stop = self.stop_event
        until_ns = self.request.until_ns
        if not self._offer(first):
            return
        unreported = True  # frames handed on since the last AtEnd
        while not stop.is_set():
            read_any = False
            for frame in recording.follow(stop, end_offset=recording.end_offset()):
                read_any = True
                if not self._offer(frame):
                    return
            if stop.is_set():
                return
            unreported = unreported or read_any
            # At the partition's end as it was a moment ago.
            if until_ns is not None:
                # A span still to come ends once the clock has passed it (with the slack
                # cameras' clocks are given), as `CameraRecording.between` does.
                if time.time_ns() > until_ns + SEEK_SLACK_MS * 1_000_000:
                    self._put(Finished())
                    return
            elif unreported:
                if not self._put(AtEnd()):
                    return
                unreported = False
            if not read_any:
                stop.wait(END_POLL_S)


def _replay_message(request: ReplayRequest, state: str, **fields: Any) -> str:
    return json.dumps(
        {
            "type": "replay",
            "state": state,
            "replay_id": request.replay_id,
            "camera_id": request.camera_id,
            **fields,
        }
    )


class ReplaySession:
    """One replay request: its reader thread and buffer, and the pacer sending its frames."""

    def __init__(
        self,
        request: ReplayRequest,
        open_recording: OpenRecording,
        send: Send,
        pack: PackFrame,
    ) -> None:
        self.request = request
        self.speed = request.speed
        self._send = send
        self._pack = pack
        self._steps = 0
        self._control = asyncio.Event()  # set on a change of speed or a step
        # (loop time, capture ns): the capture time that was due then; None: re-anchor.
        self._anchor: tuple[float, int] | None = None
        self.buffer = ReplayBuffer(asyncio.get_running_loop())
        self.reader = ReplayReader(open_recording, request, self.buffer)
        self.frames_sent = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader.start()
        self.task = asyncio.create_task(self.play(), name=self.reader.name)

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        self._anchor = None  # re-anchored at the last frame sent, from now
        self._control.set()

    def step(self, count: int) -> None:
        """Pause (if playing) and let `count` more frames go."""
        self.speed = 0.0
        self._steps = min(MAX_PENDING_STEPS, self._steps + count)
        self._control.set()

    async def stop(self) -> None:
        """Stop the pacer and tell the reader to stop (it closes its consumer itself)."""
        self.reader.stop_event.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def reader_stopped(self, timeout_s: float) -> bool:
        """Whether the reader thread has ended within `timeout_s` (without blocking the loop)."""
        deadline = time.monotonic() + timeout_s
        while self.reader.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return not self.reader.is_alive()

    async def _say(self, state: str, **fields: Any) -> None:
        await self._send(_replay_message(self.request, state, **fields))

    async def play(self) -> None:
        try:
            await self._play()
        except (WebSocketDisconnect, RuntimeError, TimeoutError, ConnectionError):
            pass  # the client went away: the connection's own loop ends too
        finally:
            self.reader.stop_event.set()

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        gaps = GapFinder()
        last_ns: int | None = None  # the capture time of the last frame sent
        while True:
            item = await self.buffer.get()
            if isinstance(item, Landed):
                if not await self._started(item.seek):
                    return
                continue
            if isinstance(item, Failed):
                await self._say("error", reason="failed", error=item.error)
                return
            if isinstance(item, Finished):
                await self._say("ended", frames=self.frames_sent, last_capture_ns=last_ns)
                return
            if isinstance(item, AtEnd):
                if self.buffer.empty():  # everything recorded until a moment ago was sent
                    await self._say("live", reason="end of the recording")
                    return
                continue
            frame = item
            live = self.request.until_ns is None
            if live and frame.capture_ts_ns >= time.time_ns() - LIVE_WITHIN_NS:
                await self._say("live", reason="caught up with live")
                return
            gap_ns = gaps.gap_before(frame.capture_ts_ns)
            if gap_ns is not None and last_ns is not None:
                await self._say(
                    "gap", from_ns=last_ns, to_ns=frame.capture_ts_ns, gap_s=gap_ns / 1e9
                )
                if self.speed > 0:
                    await asyncio.sleep(min(GAP_SHOW_S, gap_ns / 1e9 / self.speed))
                    self._anchor = (loop.time(), frame.capture_ts_ns)
            if last_ns is not None:  # the first frame shows the moment at once
                await self._due(frame.capture_ts_ns, last_ns)
            extra = {
                "replay": True,
                "replay_id": self.request.replay_id,
                "speed": self.speed,
            }
            await self._send(self._pack(frame, extra))
            self.frames_sent += 1
            last_ns = frame.capture_ts_ns

    async def _started(self, landed: Seek[AnnotatedFrame]) -> bool:
        request = self.request
        if landed.first is None:
            await self._say(
                "error",
                reason="no_frames",
                error=f"no frames of camera {request.camera_id!r} recorded at or after"
                f" {format_time(request.at_ns)}",
            )
            return False
        await self._say(
            "started",
            requested_ns=request.at_ns,
            first_capture_ns=landed.first.capture_ts_ns,
            first_seq=landed.first.seq,
            before_retention=landed.before_retention,
            oldest_ns=landed.oldest_ns,
            until_ns=request.until_ns,
            speed=self.speed,
        )
        return True

    async def _due(self, capture_ns: int, previous_ns: int) -> None:
        """Wait until the frame captured at `capture_ns` is due (paused: until a step)."""
        loop = asyncio.get_running_loop()
        while True:
            self._control.clear()  # before looking: a change after this wakes the wait
            if self.speed <= 0:
                if self._steps > 0:
                    self._steps -= 1
                    return
                await self._control.wait()
                continue
            if self._anchor is None:
                self._anchor = (loop.time(), previous_ns)
            anchor_time, anchor_ns = self._anchor
            remaining = anchor_time + (capture_ns - anchor_ns) / 1e9 / self.speed - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._control.wait(), remaining)


class ClientReplay:
    """The replay commands of one client's connection; at most one session at a time.

    Commands (JSON text from the page): {"replay": {...}} (`ReplayRequest`),
    {"replay_speed": n} (0: pause), {"replay_step": n} (pause, and n frames on), and
    {"live": true} (end the replay).
    """

    COMMANDS = ("replay", "replay_speed", "replay_step", "live")

    def __init__(self, cfg: Config | None, send: Send, pack: PackFrame) -> None:
        self._cfg = cfg
        self._send = send
        self._pack = pack
        self.session: ReplaySession | None = None

    def _open(self, camera_id: str) -> CameraRecording[AnnotatedFrame]:
        assert self._cfg is not None  # checked before a session starts
        return frame_recording(self._cfg, camera_id)

    async def _error(self, error: str, replay_id: int | None = None) -> None:
        message = {"type": "replay", "state": "error", "reason": "bad_request", "error": error}
        await self._send(json.dumps({**message, "replay_id": replay_id}))

    async def command(self, message: dict[str, Any]) -> bool:
        """Act on `message` if it is a replay command; False if it is none."""
        name = next((c for c in self.COMMANDS if c in message), None)
        if name is None:
            return False
        body = message[name]
        try:
            if name == "replay":
                await self.start(ReplayRequest.parse(body))
            elif name == "live":
                await self.stop()
            elif self.session is None:
                pass  # nothing replaying: the page went live meanwhile
            elif name == "replay_speed":
                self.session.set_speed(parse_speed(body))
            else:
                if isinstance(body, bool) or not isinstance(body, int) or body < 1:
                    raise ValueError("replay_step must be a positive integer")
                self.session.step(body)
        except ValueError as exc:
            # Said to the request it answers: a new one's own id if it has one, else the
            # session's (which plays on: a bad command ends nothing).
            replay_id = None if self.session is None else self.session.request.replay_id
            if name == "replay" and isinstance(body, dict) and type(body.get("id")) is int:
                replay_id = body["id"]
            await self._error(str(exc), replay_id)
        return True

    async def start(self, request: ReplayRequest) -> None:
        previous = await self.stop()
        if previous is not None and not await previous.reader_stopped(READER_STOP_WAIT_S):
            await self._error("the previous replay is still stopping: try again", request.replay_id)
            return
        if self._cfg is None:
            await self._error("replay needs the station's Kafka settings", request.replay_id)
            return
        session = ReplaySession(request, self._open, self._send, self._pack)
        self.session = session
        session.start()

    async def stop(self) -> ReplaySession | None:
        """End the current session, if any (its reader stops and closes its consumer)."""
        session, self.session = self.session, None
        if session is not None:
            await session.stop()
        return session

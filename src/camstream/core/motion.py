"""The motion gate: run the detector on a camera's frame only when its scene changed.

Security cameras mostly watch scenes where nothing moves. As Frigate does, a small grey copy
of each frame (the thumbnail) is compared with a background model; here the model is the
thumbnail of the camera's last *analysed* frame, so that the boxes carried forward always
come from a frame that looks like the one they are drawn on, and slow changes add up
instead of drifting away unnoticed. A frame is analysed in full when:

- the gate holds no model of its camera (a new worker, a camera it has not seen, or one it
  forgot), or the model's frame size differs;
- more than `keyframe_s` of capture time passed since the camera's last detection on the
  whole frame (a frame analysed on its moving regions only does not count: a camera with
  something always moving in one corner still gets a full look every interval), or the
  capture clock went backwards (a camera restarted, or frames replayed). The first interval
  after a camera appears is a fixed share of the interval per camera, spread evenly over
  it: cameras that appear together (a new worker, a restarted job) then keep their
  keyframes spread evenly, instead of analysing in bursts every interval;
- the scene moved: more than `min_changed` of the thumbnail's pixels differ from the model
  by more than `pixel_threshold` grey levels.

Otherwise the boxes of the last analysed frame carry forward. The gate only ever saves work:
any doubt means a full detection. Plain Python over numpy: it knows nothing of Kafka or Spark.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from camstream.core.boxes import Box, boxes_overlap, widen
from camstream.core.jpeg import JpegInfo, decode_grey_at_least, resize_area
from camstream.core.settings import MotionSettings


def thumbnail_size(width: int, height: int, thumb_width: int) -> tuple[int, int]:
    """(width, height) of a frame's thumbnail: the frame's shape, in at most the pixels of
    a 4:3 frame's thumbnail `thumb_width` wide (80x60). Fixed in bytes whatever the aspect
    ratio (sized by its width alone, an 80x65,000 strip would take 5.2 MB). A frame that small
    already keeps its size."""
    budget = thumb_width * (thumb_width * 3 // 4)
    if width * height <= budget:
        return width, height
    # w*w <= budget*width/height and h <= w*height/width, so w*h <= budget; the last
    # bounds hold it there when a side is 1 pixel.
    thumb_w = max(1, min(width, budget, math.isqrt(budget * width // height)))
    return thumb_w, max(1, min(height, thumb_w * height // width, budget // thumb_w))


def motion_thumbnail(jpeg: bytes, info: JpegInfo, thumb_width: int) -> np.ndarray:
    """A small, blurred grey copy of a checked JPEG (`thumbnail_size`): what the gate compares.

    Decoded straight at reduced size (1/8 of 640x480 is 80x60: about 0.15 ms); the blur
    keeps sensor and JPEG noise below the pixel threshold.
    """
    size = thumbnail_size(info.width, info.height, thumb_width)
    grey = decode_grey_at_least(jpeg, info, *size)
    if (grey.shape[1], grey.shape[0]) != size:
        grey = resize_area(grey, size)
    return cv2.GaussianBlur(grey, (5, 5), 0)


def moved_mask(thumb: np.ndarray, model: np.ndarray, pixel_threshold: int) -> np.ndarray:
    """255 where a pixel differs from the model by more than `pixel_threshold` grey levels."""
    _, moved = cv2.threshold(cv2.absdiff(thumb, model), pixel_threshold, 255, cv2.THRESH_BINARY)
    return moved


def changed_share(thumb: np.ndarray, model: np.ndarray, pixel_threshold: int) -> float:
    """The share of pixels that differ by more than `pixel_threshold` grey levels."""
    moved = moved_mask(thumb, model, pixel_threshold)
    return cv2.countNonZero(moved) / moved.size


_DILATE = np.ones((3, 3), np.uint8)


def moving_regions(
    thumb: np.ndarray, model: np.ndarray, settings: MotionSettings, frame_size: tuple[int, int]
) -> tuple[Box, ...]:
    """Boxes (full-frame pixels) around what moved, widened by the margin, overlaps merged;
    none when together they cover more than `max_region_share` of the frame (then the whole
    frame is cheaper to analyse at once)."""
    moved = cv2.dilate(moved_mask(thumb, model, settings.pixel_threshold), _DILATE, iterations=1)
    contours, _ = cv2.findContours(moved, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    width, height = frame_size
    sx, sy = width / thumb.shape[1], height / thumb.shape[0]
    margin = round(settings.region_margin * width)
    boxes: list[list[int]] = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        scaled = (int(x * sx), int(y * sy), int((x + w) * sx), int((y + h) * sy))
        boxes.append(list(widen(scaled, margin, width, height)))
    merged = True
    while merged:  # widened boxes that overlap become one
        merged = False
        for i, a in enumerate(boxes):
            for j in range(i + 1, len(boxes)):
                b = boxes[j]
                if boxes_overlap(a, b):
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
    if not boxes or area > settings.max_region_share * width * height:
        return ()
    return tuple((b[0], b[1], b[2], b[3]) for b in boxes)


def overlaps(box: Box | list[int], regions: tuple[Box, ...]) -> bool:
    """Whether `box` shares a pixel with any of `regions`."""
    return any(boxes_overlap(box, region) for region in regions)


class Reference:
    """A camera's last analysed frame: the model the gate compares with, and its boxes.

    `boxes_xyxy` stays None until that frame's detection is done, and forever if it failed:
    frames gated against it are then analysed after all. `nbytes` is what the gate holding
    it counts it for.
    """

    __slots__ = (
        "_boxes",
        "_gate",
        "capture_ts_ns",
        "first",
        "frame_size",
        "full_ts_ns",
        "nbytes",
        "seq",
        "thumb",
    )

    def __init__(
        self, seq: int, capture_ts_ns: int, frame_size: tuple[int, int], thumb: np.ndarray
    ) -> None:
        self.seq = seq
        self.capture_ts_ns = capture_ts_ns
        self.frame_size = frame_size
        self.thumb = thumb
        self._boxes: np.ndarray | None = None
        self._gate: MotionGate | None = None
        self.nbytes = 0
        # Capture time of the camera's last detection on the whole frame: this one's, unless
        # it was analysed on its moving regions only. Keyframes count from it.
        self.full_ts_ns = capture_ts_ns
        self.first = False  # no keyframe yet since the camera's first model in this gate

    @property
    def boxes_xyxy(self) -> np.ndarray | None:
        return self._boxes

    @boxes_xyxy.setter
    def boxes_xyxy(self, boxes: np.ndarray | None) -> None:
        # The boxes come after the gate took the model in: the gate holding it counts them.
        gate = self._gate
        if gate is None:
            self._boxes = boxes
        else:
            gate._set_boxes(self, boxes)


@dataclass(frozen=True)
class GateDecision:
    """Analyse the frame (why), or carry `reference`'s boxes forward.

    For a frame analysed because it moved, `regions` (full-frame pixels) may say where, and
    `previous` is the model it moved from: the detector then runs on the regions only, and
    the previous boxes outside them carry (`camstream.core.batch`).
    """

    analyse: bool
    reason: str  # new, size, keyframe, clock, motion; or still (carried)
    reference: Reference
    changed: float = 0.0
    regions: tuple[Box, ...] = ()
    previous: Reference | None = None


# What a camera's model costs besides its thumbnail's and boxes' pixels and its id: the
# gate's entry, the Reference, its numbers and the arrays' headers (about 600 bytes by
# tracemalloc; test_motion holds the gate's count to what it really holds).
MODEL_OVERHEAD_BYTES = 768


def _array_bytes(array: np.ndarray | None) -> int:
    return 0 if array is None else array.nbytes


class MotionGate:
    """Per-camera models of one worker, bounded in count, in bytes and in age."""

    def __init__(self, settings: MotionSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        # camera id -> (its reference, when it was last seen); least recently seen first.
        self._cameras: OrderedDict[str, tuple[Reference, float]] = OrderedDict()
        # Boxes are set from the batch's detection threads while the gate may evict.
        self._lock = threading.Lock()
        self.nbytes = 0  # what the models held count for (`Reference.nbytes`)
        self.forgotten = 0

    def __len__(self) -> int:
        return len(self._cameras)

    def __contains__(self, camera_id: str) -> bool:
        return camera_id in self._cameras

    def decide(
        self,
        camera_id: str,
        seq: int,
        capture_ts_ns: int,
        frame_size: tuple[int, int],
        thumb: np.ndarray,
    ) -> GateDecision:
        """The decision for a camera's next frame, in the camera's order; a frame to analyse
        becomes the camera's new reference."""
        now = self._clock()
        with self._lock:  # boxes are set from detection threads meanwhile
            self._forget_silent(now)
            known = self._cameras.get(camera_id)
            reason, changed = "new", 0.0
            if known is not None:
                reference = known[0]
                elapsed_ns = capture_ts_ns - reference.capture_ts_ns
                if reference.frame_size != frame_size or reference.thumb.shape != thumb.shape:
                    reason = "size"
                elif elapsed_ns < 0:
                    reason = "clock"
                elif capture_ts_ns - reference.full_ts_ns >= self._keyframe_ns(
                    camera_id, reference
                ):
                    reason = "keyframe"
                else:
                    changed = changed_share(thumb, reference.thumb, self.settings.pixel_threshold)
                    if changed <= self.settings.min_changed:
                        self._cameras[camera_id] = (reference, now)
                        self._cameras.move_to_end(camera_id)
                        return GateDecision(False, "still", reference, changed)
                    reason = "motion"
            model = known[0] if known is not None else None  # the camera's model it moved from
            regions: tuple[Box, ...] = ()
            if reason == "motion" and self.settings.regions and model is not None:
                regions = moving_regions(thumb, model.thumb, self.settings, frame_size)
            reference = Reference(seq, capture_ts_ns, frame_size, thumb)
            previous = model if regions else None
            if previous is not None:  # not a look at the whole frame: the keyframe stays due
                reference.full_ts_ns, reference.first = previous.full_ts_ns, previous.first
            else:
                reference.first = known is None
            self._hold(camera_id, reference, now)
            self._evict()
            return GateDecision(True, reason, reference, changed, regions, previous)

    def _keyframe_ns(self, camera_id: str, reference: Reference) -> float:
        """The keyframe interval; the first after a camera's first model is a fixed share of
        it per camera, spread evenly over (0, 1]: cameras that appear together (a new worker)
        then keep their keyframes spread evenly over the interval, so that the detector's
        load from keyframes is even (cameras/interval per second), not a burst each time."""
        interval = self.settings.keyframe_s * 1e9
        if reference.first:
            return interval * ((zlib.crc32(camera_id.encode()) % 1000) + 1) / 1000
        return interval

    def drop(self, camera_id: str, reference: Reference) -> None:
        """Forget a camera's model if it is still `reference` (its detection failed)."""
        with self._lock:
            known = self._cameras.get(camera_id)
            if known is not None and known[0] is reference:
                del self._cameras[camera_id]
                self._let_go(reference)

    def _hold(self, camera_id: str, reference: Reference, now: float) -> None:
        """Make `reference` the camera's model (the most recently seen), counting its bytes."""
        known = self._cameras.pop(camera_id, None)
        if known is not None:
            self._let_go(known[0])
        reference._gate = self
        reference.nbytes = (
            MODEL_OVERHEAD_BYTES
            + len(camera_id)
            + reference.thumb.nbytes
            + _array_bytes(reference.boxes_xyxy)
        )
        self.nbytes += reference.nbytes
        self._cameras[camera_id] = (reference, now)

    def _let_go(self, reference: Reference) -> None:
        reference._gate = None
        self.nbytes -= reference.nbytes

    def _set_boxes(self, reference: Reference, boxes: np.ndarray | None) -> None:
        """`Reference.boxes_xyxy` set on a model this gate took in: count them."""
        with self._lock:
            grown = _array_bytes(boxes) - _array_bytes(reference._boxes)
            reference._boxes = boxes
            if reference._gate is self:  # still held (not evicted meanwhile)
                reference.nbytes += grown
                self.nbytes += grown
                self._evict()

    def _evict(self) -> None:
        """Forget the least recently seen cameras beyond the count and the bytes allowed."""
        while self._cameras and (
            len(self._cameras) > self.settings.max_cameras or self.nbytes > self.settings.max_bytes
        ):
            _, (reference, _) = self._cameras.popitem(last=False)
            self._let_go(reference)
            self.forgotten += 1

    def _forget_silent(self, now: float) -> None:
        while self._cameras:
            camera_id, (reference, seen) = next(iter(self._cameras.items()))
            if now - seen <= self.settings.forget_s:
                return
            del self._cameras[camera_id]
            self._let_go(reference)
            self.forgotten += 1


_gates: dict[tuple[MotionSettings, str], MotionGate] = {}


def worker_gate(settings: MotionSettings, scope: str = "") -> MotionGate:
    """The gate of this process (a Spark Python worker), kept between batches; one per
    `scope` (the job's output topic), so that two jobs whose cameras share ids do not
    share models."""
    gate = _gates.get((settings, scope))
    if gate is None:
        gate = _gates[(settings, scope)] = MotionGate(settings)
    return gate

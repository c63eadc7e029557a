"""Event clips: one camera's annotated frames, in capture order, as a video file.

`write_clip` streams the frames into the file as they come (it keeps the previous frame, not
the clip; the encoder and the muxer keep a few seconds, encoded), with PyAV. `.webm` is VP8,
the default and what the station serves (a royalty-free, BSD-licensed encoder; plays in
Chromium, Firefox and VLC); `.mp4` is H.264 (plays in VLC, Chromium and Safari/QuickTime).
Motion-JPEG AVI and MPEG-4 part 2 are not offered: Chromium plays neither.

The clip keeps the camera's own timing: each frame is shown from its capture time (relative
to the first frame's) until the next one, so the file lasts as long as the frames did
however irregular the camera's rate. Where the camera sent nothing for a while, one "gap
slate" (the last frame, darkened, saying how long the gap was) stands in for the missing
time, so that the gap does not look like frozen video.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import cv2
import numpy as np

from camstream.core.contract import AnnotatedFrame
from camstream.core.jpeg import decode_jpeg, resize_area
from camstream.errors import ClipError, DependencyError, FrameError
from camstream.viewers.gaps import GapFinder

if TYPE_CHECKING:  # PyAV is optional (the station extra) and imported when a clip is written
    from av.container import OutputContainer
    from av.video.stream import VideoStream


@dataclass(frozen=True)
class ClipFormat:
    """A video file type: its container, its encoder and the encoder's settings."""

    name: str  # the container (FFmpeg's muxer name)
    extension: str
    media_type: str
    video: str  # the kind of video, for messages
    codec: str  # FFmpeg's encoder
    codec_options: tuple[tuple[str, str], ...]  # (name, value): FFmpeg's encoder options
    container_options: tuple[tuple[str, str], ...] = ()  # FFmpeg's muxer options
    # Target bit rate per pixel of the frame, in bit/s (0: the encoder's quality setting rules).
    bit_rate_per_pixel: float = 0.0


# The single source of the clip file types, by extension.
CLIP_FORMATS: Mapping[str, ClipFormat] = MappingProxyType(
    {
        ".webm": ClipFormat(
            name="webm",
            extension=".webm",
            media_type="video/webm",
            video="VP8",
            codec="libvpx",
            # Realtime at its fastest: an 80-frame 640x480 clip in about a third of a second.
            codec_options=(("deadline", "realtime"), ("cpu-used", "8")),
            # 2 Mb/s at 640x480: boxes and labels stay sharp at the cameras' few frames/s.
            bit_rate_per_pixel=2_000_000 / (640 * 480),
        ),
        ".mp4": ClipFormat(
            name="mp4",
            extension=".mp4",
            media_type="video/mp4",
            video="H.264",
            codec="libx264",
            codec_options=(("preset", "veryfast"), ("crf", "23")),
            # The index first, so that a browser can start playing before the whole file is in.
            container_options=(("movflags", "+faststart"),),
        ),
    }
)
DEFAULT_CLIP_EXTENSION = ".webm"

# Timestamps in milliseconds (WebM's own unit): ample for cameras' capture times.
TIME_BASE = Fraction(1, 1000)
_NS_PER_TICK = 1_000_000

# The station shares two cores with the Spark job: one encoding thread is fast enough.
ENCODE_THREADS = 1

SLATE_BRIGHTNESS = 0.3  # the gap slate is the last frame at this share of its brightness
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def clip_format(path_or_format: str | os.PathLike[str]) -> ClipFormat:
    """The ClipFormat of a file name ("clip.webm"), an extension (".webm") or a format name
    ("webm"); ClipError for any other."""
    text = os.fspath(path_or_format).lower()
    found = CLIP_FORMATS.get(Path(text).suffix or "." + text.lstrip("."))
    if found is None:
        raise ClipError(f"{text!r} is no clip format: {_FORMATS_OFFERED}")
    return found


def _file_format(path: Path) -> ClipFormat:
    """The format of a clip to write, from its file's extension alone."""
    found = CLIP_FORMATS.get(path.suffix.lower())
    if found is None:
        raise ClipError(f"cannot write a clip to {str(path)!r}: {_FORMATS_OFFERED}")
    return found


_FORMATS_OFFERED = "a clip's name ends in " + " or ".join(
    f"{extension} ({clip.video})" for extension, clip in CLIP_FORMATS.items()
)


def clip_media_type(path_or_format: str | os.PathLike[str]) -> str:
    """The HTTP Content-Type of a clip ("video/webm", "video/mp4"); see `clip_format`."""
    return clip_format(path_or_format).media_type


@dataclass(frozen=True)
class ClipSummary:
    """What `write_clip` wrote.

    `frames_written` counts the camera's frames in the file; `slates` the gap slates added
    to them (the file holds frames_written + slates video frames); `gaps` each gap's
    (capture time before it, capture time after it) in ns. The capture times are those of
    the first and last frame written; width and height are the video's.
    """

    path: Path
    format: str
    frames_written: int
    frames_unreadable: int
    slates: int
    gaps: tuple[tuple[int, int], ...]
    first_capture_ns: int
    last_capture_ns: int
    width: int
    height: int
    bytes: int


def write_clip(
    path: str | os.PathLike[str],
    frames: Iterable[AnnotatedFrame],
) -> ClipSummary:
    """Write one camera's frames, in capture order, to a video file at `path`.

    The extension picks the format (CLIP_FORMATS: `.webm` VP8, `.mp4` H.264). Every frame
    given becomes one video frame, in the order given, shown from its capture time relative
    to the first frame's (a frame captured no later than the one before it follows it by
    one millisecond). A frame whose JPEG does not decode is left out and counted
    (`frames_unreadable`); frames of another size are scaled to the first frame's, and an
    odd width or height loses its last column or row (H.264 and VP8 store colour at half
    resolution).

    Where the next frame follows a gap (`viewers.gaps`: the rule replay uses too), one gap
    slate is added between them: an extra video frame, beyond the camera's, shown from one
    usual interval after the previous frame until the next.

    Raises ClipError for an unknown extension, frames of more than one camera, or when no
    frame decodes (then no file is left); DependencyError without PyAV. A file left half
    written by an error is removed.
    """
    target = Path(path)
    file_format = _file_format(target)
    _require_av()
    writer = _ClipWriter(target, file_format)
    try:
        for frame in frames:
            writer.add(frame)
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


def _require_av() -> None:
    """A clear error instead of an ImportError when PyAV (the station extra) is missing."""
    try:
        import av  # noqa: F401  # only whether it imports; used where the clip is written
    except ImportError as exc:
        raise DependencyError(
            f"writing a clip needs PyAV ({exc}): pip install 'camstream[station]'"
        ) from None


class _Timeline:
    """Where each frame goes in the clip (its pts, in TIME_BASE ticks from the first frame)
    and where the gaps are, from the capture times (the gap rule: `viewers.gaps`)."""

    def __init__(self, first_capture_ns: int) -> None:
        self.first_capture_ns = first_capture_ns
        self.previous_capture_ns = first_capture_ns
        self.previous_pts = 0
        self.gaps: list[tuple[int, int]] = []
        self._finder = GapFinder()
        self._finder.gap_before(first_capture_ns)

    def place(self, capture_ns: int) -> tuple[int | None, int]:
        """(the pts of a gap slate before this frame or None, this frame's pts)."""
        usual = self._finder.usual_interval_ns()
        slate_pts = None
        earliest = self.previous_pts + 1  # never before (or with) the previous frame
        if self._finder.gap_before(capture_ns) is not None:
            self.gaps.append((self.previous_capture_ns, capture_ns))
            # The previous frame keeps its usual time on screen; the slate takes the rest.
            slate_pts = self.previous_pts + max(1, round((usual or 0) / _NS_PER_TICK))
            earliest = slate_pts + 1
        pts = max(earliest, (capture_ns - self.first_capture_ns) // _NS_PER_TICK)
        self.previous_capture_ns = capture_ns
        self.previous_pts = pts
        return slate_pts, pts


def even_size(width: int, height: int) -> tuple[int, int]:
    """The video's size for frames of `width` x `height`: each side even (yuv420p stores
    colour per 2x2 pixels), an odd one cropped by a pixel (not padded: no invented border);
    a side of one pixel becomes two."""
    return max(2, width - width % 2), max(2, height - height % 2)


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at `size` (width, height): cropped by the odd pixel `even_size` drops,
    otherwise scaled (averaged when shrinking, interpolated when enlarging)."""
    height, width = image.shape[:2]
    target_width, target_height = size
    if (width, height) == size:
        return image
    if 0 <= width - target_width <= 1 and 0 <= height - target_height <= 1:
        return image[:target_height, :target_width]
    if width * height > target_width * target_height:
        return resize_area(image, size)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def describe_duration(seconds: float) -> str:
    """A gap's length for its slate: "12.3 s", "4 min 05 s", "2 h 07 min"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def gap_slate(image: np.ndarray, gap_s: float) -> np.ndarray:
    """The gap slate after `image`: darkened, with "no frames for <gap>" across its middle."""
    slate = cv2.convertScaleAbs(image, alpha=SLATE_BRIGHTNESS)
    height, width = slate.shape[:2]
    text = f"no frames for {describe_duration(gap_s)}"
    (unit_width, unit_height), _ = cv2.getTextSize(text, _FONT, 1.0, 2)
    # Most of the width, at most an eighth of the height: legible on any frame size.
    scale = min(0.8 * width / unit_width, height / 8 / unit_height)
    thickness = max(1, round(2 * scale))
    (text_width, text_height), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    origin = ((width - text_width) // 2, (height + text_height) // 2)
    cv2.putText(slate, text, origin, _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return slate


class _ClipWriter:
    """The state of one clip being written: opened on the first frame that decodes (it
    gives the size), so that a clip with none leaves no file."""

    def __init__(self, path: Path, file_format: ClipFormat) -> None:
        self.path = path
        self.format = file_format
        self.container: OutputContainer | None = None
        self.stream: VideoStream | None = None
        self.timeline: _Timeline | None = None
        self.camera_id: str | None = None
        self.size = (0, 0)
        self.previous_image: np.ndarray | None = None
        self.last_capture_ns = 0
        self.frames_written = 0
        self.frames_unreadable = 0
        self.slates = 0

    def add(self, frame: AnnotatedFrame) -> None:
        if self.camera_id is None:
            self.camera_id = frame.camera_id
        elif frame.camera_id != self.camera_id:
            raise ClipError(
                f"a clip shows one camera: frame {frame.seq} is {frame.camera_id!r}'s,"
                f" the clip {self.camera_id!r}'s"
            )
        try:
            image = decode_jpeg(frame.jpeg)
        except FrameError:
            self.frames_unreadable += 1
            return
        if self.timeline is None:
            self.size = even_size(image.shape[1], image.shape[0])
            self._open()
            self.timeline = _Timeline(frame.capture_ts_ns)
            slate_pts, pts = None, 0
        else:
            previous_capture_ns = self.timeline.previous_capture_ns
            slate_pts, pts = self.timeline.place(frame.capture_ts_ns)
            if slate_pts is not None:
                assert self.previous_image is not None  # written with the first frame
                gap_s = (frame.capture_ts_ns - previous_capture_ns) / 1e9
                self._encode(gap_slate(self.previous_image, gap_s), slate_pts)
                self.slates += 1
        image = fit_frame(image, self.size)
        self._encode(image, pts)
        self.previous_image = image
        self.last_capture_ns = frame.capture_ts_ns
        self.frames_written += 1

    def _open(self) -> None:
        import av  # imported here: PyAV is optional (write_clip checked it is there)

        container = av.open(
            str(self.path),
            mode="w",
            format=self.format.name,
            options=dict(self.format.container_options),
        )
        self.container = container
        stream = container.add_stream(self.format.codec, options=dict(self.format.codec_options))
        assert isinstance(stream, av.VideoStream)  # CLIP_FORMATS names video encoders
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.codec_context.thread_count = ENCODE_THREADS
        if self.format.bit_rate_per_pixel:
            stream.bit_rate = round(self.format.bit_rate_per_pixel * self.size[0] * self.size[1])
        self.stream = stream

    def _encode(self, image: np.ndarray, pts: int) -> None:
        import av

        assert self.container is not None and self.stream is not None  # opened by add
        # from_ndarray needs rows without gaps: a cropped view has them.
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts = pts
        frame.time_base = TIME_BASE
        self.container.mux(self.stream.encode(frame))

    def finish(self) -> ClipSummary:
        if self.container is None or self.stream is None or self.timeline is None:
            raise ClipError(
                f"no clip written to {self.path}: none of the {self.frames_unreadable}"
                " frames given could be decoded"
                if self.frames_unreadable
                else f"no clip written to {self.path}: no frames given"
            )
        self.container.mux(self.stream.encode(None))  # what the encoder still holds
        self.container.close()
        self.container = None
        return ClipSummary(
            path=self.path,
            format=self.format.name,
            frames_written=self.frames_written,
            frames_unreadable=self.frames_unreadable,
            slates=self.slates,
            gaps=tuple(self.timeline.gaps),
            first_capture_ns=self.timeline.first_capture_ns,
            last_capture_ns=self.last_capture_ns,
            width=self.size[0],
            height=self.size[1],
            bytes=self.path.stat().st_size,
        )

    def discard(self) -> None:
        """Close and remove a file left half written (nothing if none was opened)."""
        if self.container is None:
            return
        with contextlib.suppress(Exception):  # a broken container: its file goes anyway
            self.container.close()
        self.container = None
        self.path.unlink(missing_ok=True)

"""A camera's clip as a video file to download: /api/clip/{camera_id}?from_ns=..&to_ns=..

The frames are read back from the output topic (Kafka's retention is the recorder) and
encoded by `write_clip`, both in a worker thread, never in the event loop, into a temporary
file that is streamed back and deleted (unlinked as soon as it is open: nothing is left
behind, whether or not the browser takes it all). The span is bounded as `camstream clip`
bounds it: at most clip_max_s of kept frames; and it ends no later than clip_after_s from
now, so that a request never waits long for frames still to come.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from camstream.config import Config
from camstream.errors import CamstreamError, ClipError, NotRecordedError
from camstream.kafka.recorder import frame_recording
from camstream.viewers.clips import DEFAULT_CLIP_EXTENSION, ClipSummary, clip_media_type, write_clip
from camstream.viewers.timespec import format_time

CHUNK_BYTES = 256 * 1024
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 80


class ClipTooLongError(CamstreamError, ValueError):
    """More than clip_max_s of kept frames asked for."""


def clip_file_name(camera_id: str, first_capture_ns: int) -> str:
    """The clip's file name, <camera>_<YYYYmmddTHHMMSS>.webm: the camera id made safe for a
    file name (letters, digits, '.', '_' and '-'; no leading dot), then the first frame's
    local capture time."""
    safe = _UNSAFE_IN_NAME.sub("_", camera_id).lstrip(".")[:MAX_NAME_CHARS] or "camera"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(first_capture_ns // 1_000_000_000))
    return f"{safe}_{stamp}{DEFAULT_CLIP_EXTENSION}"


def _span(query: Any) -> tuple[int, int]:
    """from_ns and to_ns of the query; ValueError saying what is wrong."""
    values = []
    for name in ("from_ns", "to_ns"):
        text = query.get(name, "")
        if not text.isdigit() or len(text) > 19:
            raise ValueError(f"{name} must be a time in ns since the epoch")
        values.append(int(text))
    from_ns, to_ns = values
    if to_ns <= from_ns:
        raise ValueError("to_ns must be after from_ns")
    return from_ns, to_ns


def write_camera_clip(
    cfg: Config,
    camera_id: str,
    from_ns: int,
    to_ns: int,
    path: Path,
    stop: threading.Event | None = None,
) -> ClipSummary:
    """The camera's frames captured from `from_ns` to `to_ns` into a video file at `path`.

    NotRecordedError (naming the oldest available time) when none is kept; ClipTooLongError
    past clip_max_s of kept frames. Blocking Kafka reads and encoding: a worker thread's.
    """
    with frame_recording(cfg, camera_id) as recording:
        landed, frames = recording.between(from_ns, to_ns, stop)
        first = landed.first
        if first is None or first.capture_ts_ns > to_ns:
            oldest_ns = landed.oldest_ns
            if oldest_ns is None:
                kept = recording.kept()
                oldest_ns = None if kept.oldest_ms is None else kept.oldest_ms * 1_000_000
            oldest = "nothing kept" if oldest_ns is None else format_time(oldest_ns)
            raise NotRecordedError(
                f"no frames of camera {camera_id!r} captured between {format_time(from_ns)}"
                f" and {format_time(to_ns)}; the oldest available: {oldest}",
            )
        # What is kept of the span, as `camstream clip` counts it.
        span_s = (to_ns - max(from_ns, first.capture_ts_ns)) / 1e9
        if span_s > cfg.clip_max_s:
            raise ClipTooLongError(
                f"the clip would span {span_s:.0f} s of kept frames, more than clip_max_s"
                f" ({cfg.clip_max_s:.0f} s): ask for a shorter span"
            )
        return write_clip(path, frames)


async def clip_download(cfg: Config, camera_id: str, query: Any) -> Response:
    """The /api/clip response: the video file, or a JSON error with its status (400: a bad or
    too long span; 404: nothing kept in it, with the oldest available time; 503: Kafka)."""
    try:
        from_ns, to_ns = _span(query)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    # A detection's clip may end a little in the future; no clip waits longer than that.
    to_ns = min(to_ns, time.time_ns() + round(cfg.clip_after_s * 1e9))
    if to_ns <= from_ns:
        return JSONResponse({"error": "the span has not begun yet"}, status_code=400)
    folder = Path(tempfile.mkdtemp(prefix="camstream-clip-"))
    path = folder / f"clip{DEFAULT_CLIP_EXTENSION}"
    try:
        summary = await run_in_threadpool(write_camera_clip, cfg, camera_id, from_ns, to_ns, path)
        handle = path.open("rb")
    except NotRecordedError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    except (ClipTooLongError, ClipError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except Exception as exc:  # Kafka down, a topic missing: said, not a 500
        return JSONResponse({"error": f"cannot write the clip: {exc}"}, status_code=503)
    finally:
        # Open (or never written): the name goes now, the data with the last handle.
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
    name = clip_file_name(camera_id, summary.first_capture_ns)
    return StreamingResponse(
        _chunks(handle),
        media_type=clip_media_type(path),
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(os.fstat(handle.fileno()).st_size),
        },
    )


async def _chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := await run_in_threadpool(handle.read, CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()

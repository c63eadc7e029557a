"""A camera's clip as a video file to download: /api/clip/{camera_id}?from_ns=..&to_ns=..

The frames are read back from the output topic (Kafka's retention is the recorder) and
encoded by `cut_clip` (under the rules `camstream clip` follows too) in a worker thread,
never in the event loop, into a temporary file that is streamed back and deleted (unlinked
as soon as it is open: nothing is left behind, whether or not the browser takes it all).
The span ends no later than clip_after_s from now, so that a request never waits long for
frames still to come.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from camstream.config import Config
from camstream.errors import ClipError, NotRecordedError
from camstream.viewers.camera_clip import ClipTooLongError, cut_clip
from camstream.viewers.clips import DEFAULT_CLIP_EXTENSION, clip_media_type

CHUNK_BYTES = 256 * 1024
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 80


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
        _, summary = await run_in_threadpool(cut_clip, cfg, camera_id, from_ns, to_ns, path)
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

"""The job against its own per-record path outside Spark: the same work on the same frames.

The baseline runs `camstream.core.batch.process_batch`, the job's path (contract check,
decode, detect, draw when there are faces, encode, headers), over the very records the job
drains, with the very settings the job derives from its topics: one process per core,
OpenCV on one thread each, every process taking the next few records when it is free
(perfectly balanced: the best this machine does with that path). It is timed as the job
is, wall clock from the first record handed in to the last one done, nothing trimmed; so
the ratio job / baseline is what Spark and Kafka cost, or save, on that load.

The plain OpenCV loop (decode in colour, detect, draw, encode every frame, as the 2018
demo's function) stays as a second, labelled row: it is not the job's work.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import cv2
from frame_functions import detect_faces

from camstream.config import DETECTION_PRESETS
from camstream.core.annotation import annotate
from camstream.core.batch import process_batch
from camstream.core.contract import FrameMeta
from camstream.core.jpeg import decode_jpeg, encode_jpeg
from camstream.core.settings import RecordSettings

CHUNK = 8  # records a baseline process takes at a time


def naive_frame(jpeg: bytes, preset: str) -> bytes:
    """The plain loop's body: decode in colour, detect, draw, encode, for every frame."""
    settings = DETECTION_PRESETS[preset]
    image = decode_jpeg(jpeg)
    boxes = detect_faces(image, settings)
    return encode_jpeg(annotate(image, boxes), 80)


def _records(frames: list[tuple[str, int, bytes]]) -> list[tuple[bytes, bytes, Any]]:
    """The frames as the Kafka records the job reads (captured now: nothing is stale)."""
    now = time.time_ns()
    return [
        (camera_id.encode(), jpeg, FrameMeta(camera_id, seq, now, 640, 480).to_headers())
        for camera_id, seq, jpeg in frames
    ]


def _worker(
    frames: list[tuple[str, int, bytes]],
    settings: RecordSettings | None,
    preset: str,
    claimed: Any,
    results: Any,
) -> None:
    """One process: the next CHUNK records when free, until none is left."""
    cv2.setNumThreads(1)
    records = _records(frames)
    if settings is not None:
        process_batch(records[:2], settings)  # warm-up: the classifier loads
    else:
        naive_frame(frames[0][2], preset)
    results.put(("ready", 0, 0.0))
    while claimed.value < 0:  # the start signal
        time.sleep(0.001)
    done = 0
    while True:
        with claimed.get_lock():
            first = claimed.value
            claimed.value += CHUNK
        if first >= len(records):
            break
        chunk = records[first : first + CHUNK]
        if settings is not None:
            outcomes = process_batch(chunk, settings)
            if not all(outcome.ok for outcome in outcomes):  # the same work, or none
                raise RuntimeError(next(o.error for o in outcomes if not o.ok))
        else:
            for _, jpeg, _ in chunk:
                naive_frame(jpeg, preset)
        done += len(chunk)
    results.put(("done", done, time.time()))


def outside_fps(
    frames: list[tuple[str, int, bytes]],
    processes: int,
    settings: RecordSettings | None,
    preset: str,
) -> dict[str, Any]:
    """Frames/s of `processes` processes working through `frames` once: the job's path
    (`settings` given) or the plain loop (None), first record to last, wall clock."""
    context = multiprocessing.get_context("spawn")
    claimed = context.Value("q", -1)
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(frames, settings, preset, claimed, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        results.get(timeout=180)  # ready
    started = time.time()
    claimed.value = 0
    finished = [results.get(timeout=1800) for _ in workers]
    for worker in workers:
        worker.join()
    done = sum(count for _, count, _ in finished)
    seconds = max(t for _, _, t in finished) - started
    return {"frames": done, "seconds": round(seconds, 3), "fps": round(done / seconds, 2)}

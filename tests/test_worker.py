"""The executor side of the job: a task's frames analysed by several threads, in order; a
broken environment fails the task, a bad record makes a dead letter."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn

import cv2
import pyarrow as pa
import pytest

from camstream.cameras.simulate import load_sample_frames, sample_labels
from camstream.config import DETECTION_PRESETS, RecordSettings
from camstream.core import batch
from camstream.core.batch import process_record
from camstream.core.contract import FrameMeta
from camstream.core.jpeg import encode_jpeg
from camstream.core.settings import DetectionSettings
from camstream.errors import DetectorUnavailableError, EnvironmentFailure
from camstream.spark.progress import describe_failure
from camstream.spark.worker import WorkerSettings, make_batch_processor

SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))),
    ]
)


def sample_batch(cameras: int = 3, step: int = 1) -> pa.RecordBatch:
    """The sample video's frames (every `step`-th), round-robin over `cameras` cameras."""
    frames = [encode_jpeg(frame, 80) for frame in load_sample_frames()[::step]]
    keys, values, headers = [], [], []
    for index, jpeg in enumerate(frames):
        camera = f"cam-{index % cameras}"
        meta = FrameMeta(camera, index // cameras, time.time_ns(), 640, 480)
        keys.append(camera.encode())
        values.append(jpeg)
        headers.append([{"key": k, "value": v} for k, v in meta.to_headers()])
    return pa.RecordBatch.from_pydict({"key": keys, "value": values, "headers": headers}, SCHEMA)


def run(threads: int, preset: str, batch: pa.RecordBatch) -> list[dict]:
    settings = RecordSettings(detection=DETECTION_PRESETS[preset])
    process = make_batch_processor(settings, WorkerSettings("out", "dlq", frame_threads=threads))
    return [row for out in process(iter([batch])) for row in out.to_pylist()]


def test_threads_give_the_same_frames_in_the_same_order() -> None:
    """Each thread has its own classifier: shared, detectMultiScale missed faces.

    Every other frame of the sample video (40, faces and empty stretches alike): four
    threads on two cores keep detecting at once all through either way."""
    batch = sample_batch(step=2)
    labels = [len(label["faces"]) for label in sample_labels()["frames"][::2]]
    # equalized differs from faithful only in what it detects, not in how threads share work.
    for preset in ("faithful", "fast"):
        alone = run(1, preset, batch)
        together = run(4, preset, batch)
        assert [r["key"] for r in together] == batch.column("key").to_pylist()
        assert [(r["faces"], r["headers"]) for r in together] != []
        for one, many in zip(alone, together, strict=True):
            boxes = {h["key"]: h["value"] for h in one["headers"]}["boxes_xyxy"]
            assert {h["key"]: h["value"] for h in many["headers"]}["boxes_xyxy"] == boxes
            assert many["faces"] == one["faces"] and many["value"] == one["value"]
        # And they are right: a face exactly where the sample video has one.
        assert [min(r["faces"], 1) for r in together] == [min(n, 1) for n in labels]


def test_frame_threads_default_to_the_cores_at_most_four(monkeypatch: pytest.MonkeyPatch) -> None:
    """An executor runs a Python worker per running task: on a big executor, a pool of every
    core per worker would hold cores x cores frames in flight."""
    from camstream.core import runtime as worker

    monkeypatch.setattr(worker, "_frame_pool", None)
    monkeypatch.setattr(worker.os, "cpu_count", lambda: 64)
    assert worker.frame_pool(0) is worker.frame_pool(0)  # made once per worker
    assert worker._frame_pool is not None and worker._frame_pool[0] == 4
    monkeypatch.setattr(worker.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(worker, "_frame_pool", None)
    worker.frame_pool(0)
    assert worker._frame_pool is not None and worker._frame_pool[0] == 2
    worker.frame_pool(6)  # an explicit setting wins
    assert worker._frame_pool[0] == 6


def dead_letter_reasons(settings: RecordSettings, batch: pa.RecordBatch) -> list[str | None]:
    process = make_batch_processor(settings, WorkerSettings("out", "dlq", frame_threads=2))
    return [row["error"] for out in process(iter([batch])) for row in out.to_pylist()]


def test_a_missing_cascade_fails_the_task_instead_of_dead_lettering_every_frame() -> None:
    """A broken environment is no record's fault: it used to make every frame a dead letter
    while the job looked healthy. Now the task fails, saying why."""
    settings = RecordSettings(detection=DetectionSettings(cascade="/nowhere/cascade.xml"))
    with pytest.raises(EnvironmentFailure, match=r"cannot process frames \(DetectorUnavailable"):
        dead_letter_reasons(settings, sample_batch())
    meta = FrameMeta("cam-0", 0, time.time_ns(), 640, 480).to_headers()
    jpeg = encode_jpeg(load_sample_frames()[0], 80)
    with pytest.raises(DetectorUnavailableError, match=r"/nowhere/cascade\.xml"):
        process_record(b"cam-0", jpeg, meta, settings)


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        (MemoryError(), MemoryError),  # as it is: no message to build while memory is short
        (ImportError("libGL.so.1: cannot open shared object file"), EnvironmentFailure),
        (OSError(24, "Too many open files"), EnvironmentFailure),
    ],
    ids=["out of memory", "native library", "OS error"],
)
def test_environment_failures_fail_the_task_with_their_cause(
    monkeypatch: pytest.MonkeyPatch, failure: BaseException, raised: type[BaseException]
) -> None:
    monkeypatch.setattr(batch, "detect_in_jpeg", _raising(failure))
    with pytest.raises(raised) as info:
        dead_letter_reasons(RecordSettings(), sample_batch())
    if raised is EnvironmentFailure:
        assert f"{type(failure).__name__}: {failure}" in str(info.value)
        assert "not at fault" in str(info.value)


@pytest.mark.parametrize(
    "failure",
    [RecursionError("maximum recursion depth exceeded"), ValueError("odd"), cv2.error("bad")],
    ids=["recursion", "value", "OpenCV"],
)
def test_a_records_own_failure_still_makes_a_dead_letter(
    monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    monkeypatch.setattr(batch, "detect_in_jpeg", _raising(failure))
    reasons = dead_letter_reasons(RecordSettings(), sample_batch())
    assert reasons and all(r == f"{type(failure).__name__}: {failure}" for r in reasons)


def _raising(failure: BaseException) -> Callable[..., NoReturn]:
    def detect(*_args: object) -> NoReturn:
        raise failure

    return detect


# What Spark 4 says when a Python worker fails a micro-batch (shortened).
SPARK_4_PYTHON_FAILURE = """[STREAM_FAILED] Query [id = d9b8, runId = ec37] terminated with \
exception: [PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback (most \
recent call last):
  File "/app/src/camstream/spark/worker.py", line 138, in process_batches
    raise environment_failure(exc) from exc
camstream.errors.EnvironmentFailure: this executor cannot process frames \
(DetectorUnavailableError: cannot load Haar cascade '/x.xml'); the task fails instead of \
dead-lettering every record, which are not at fault
 SQLSTATE: 38000 SQLSTATE: XXKST
=== Streaming Query ===
Identifier: camstream-in-to-out [id = d9b8, runId = ec37]
Current Committed Offsets: {}
"""


def test_the_root_cause_of_a_failed_task_is_one_line_that_names_it() -> None:
    assert describe_failure(SPARK_4_PYTHON_FAILURE) == (
        "a Python worker raised camstream.errors.EnvironmentFailure: this executor cannot"
        " process frames (DetectorUnavailableError: cannot load Haar cascade '/x.xml'); the"
        " task fails instead of dead-lettering every record, which are not at fault"
    )


def test_an_early_part_is_pushed_out_by_a_row_the_job_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past capacity, the frames that skip detection anyway are a part of their own, before
    the analysis. PySpark does not flush a worker's output after each batch, so a row as
    large as its buffer follows that part (and only a part that more follow): its null
    topic is what the job drops (`is_flush_row`)."""
    from camstream.core.freshness import FreshnessGuard
    from camstream.spark.worker import flush_batch, output_arrow_schema, process_row_parts

    jpeg = encode_jpeg(load_sample_frames()[0], 80)
    now = time.time_ns()
    batch = [
        (camera.encode(), jpeg, FrameMeta(camera, seq, now - (3 - seq) * 800_000_000, 640, 480)
         .to_headers())
        for seq in range(4) for camera in ("cam-0", "cam-1")
    ]  # fmt: skip
    live = RecordSettings(detection=DETECTION_PRESETS["fast"], max_age_ms=1000)
    guard = FreshnessGuard(1500)  # no meter: past capacity
    parts = list(process_row_parts(batch, live, None, map, guard))
    assert [more for _, more in parts] == [True, False]
    assert all(result.skipped for result in parts[0][0]) and len(parts[0][0]) == 4  # 2.4, 1.6 s
    assert len(parts[1][0]) == 4 and all(r.analysed for r in parts[1][0])  # 0.8 s, 0 s old
    monkeypatch.setenv("SPARK_BUFFER_SIZE", "1000")
    (row,) = flush_batch(output_arrow_schema()).to_pylist()
    assert row["topic"] is None and len(row["value"]) == 1000
    # Under `all`, one part and no such row.
    every = RecordSettings(detection=DETECTION_PRESETS["fast"])
    assert [more for _, more in process_row_parts(batch, every, None, map, None)] == [False]

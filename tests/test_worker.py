"""The executor side of the job: a task's frames analysed by several threads, in order."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from camstream.cameras.simulate import load_sample_frames, sample_labels
from camstream.config import DETECTION_PRESETS, RecordSettings
from camstream.core.contract import FrameMeta
from camstream.core.jpeg import encode_jpeg
from camstream.spark.worker import make_batch_processor

SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))),
    ]
)


def sample_batch(cameras: int = 3) -> pa.RecordBatch:
    frames = [encode_jpeg(frame, 80) for frame in load_sample_frames()]
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
    process = make_batch_processor(settings, "out", "dlq", frame_threads=threads)
    return [row for out in process(iter([batch])) for row in out.to_pylist()]


def test_threads_give_the_same_frames_in_the_same_order() -> None:
    """Each thread has its own classifier: shared, detectMultiScale missed faces."""
    batch = sample_batch()
    labels = [len(label["faces"]) for label in sample_labels()["frames"]]
    for preset in DETECTION_PRESETS:
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
    from camstream.spark import worker

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

"""The reference demo's three notebooks as one pipeline, against the real broker: camera ->
Kafka -> Spark -> Kafka -> monitor.

The producer notebook sends the sample video's frames (a real kernel, papermill); the
Databricks notebook analyses them, through the stand-in (tests/databricks_shim.py) on the
suite's Spark session; the consumer notebook shows what came out (a real kernel again).
"""

from __future__ import annotations

import base64
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from camstream.cameras.simulate import sample_labels
from camstream.config import Config
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.settings import DETECTION_PRESETS
from helpers import (
    PRODUCER_NB,
    analyse_jpeg,
    boxes_of,
    consume,
    databricks_notebook_running,
    databricks_widgets,
    end_offsets,
    execute,
    outputs,
    replay_in_consumer_notebook,
    shown_text,
)

# The sample's first frames each hold one labelled face; the producer sends 10 a second.
FRAMES = 8
CAMERA_ID = "pipeline-cam"
PRESET = "faithful"


@pytest.mark.spark
def test_the_three_notebooks_run_as_one_pipeline(spark, cfg: Config, tmp_path: Path) -> None:
    widgets = databricks_widgets(cfg, tmp_path / "checkpoints") | {"preset": PRESET}
    # All three at once, as deployed: the job and the monitor wait for frames, then the
    # camera sends them.
    with (
        databricks_notebook_running(spark, widgets),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="consumer-notebook") as pool,
    ):
        # From the topic's beginning: its kernel may be up after the first frames came out.
        # The idle timeout is a bound only: the frames come while the job runs.
        consumer = pool.submit(replay_in_consumer_notebook, cfg, tmp_path, FRAMES, 90)
        execute(
            PRODUCER_NB,
            tmp_path / "VideoCaptureToKafka.out.ipynb",
            kafkabrokers=cfg.kafka_bootstrap,
            topic=cfg.input_topic,
            camera_id=CAMERA_ID,
            max_frames=FRAMES,
        )
        shown = consumer.result(timeout=300)

    # What went through the pipeline: every frame sent, analysed once, none dead-lettered.
    sent = {FrameMeta.from_headers(r.headers).seq: r for r in consume(cfg, cfg.input_topic, FRAMES)}
    analysed = consume(cfg, cfg.output_topic, FRAMES)
    assert sorted(sent) == list(range(FRAMES))
    assert {r.key for r in analysed} == {CAMERA_ID.encode()}
    by_seq = {FrameMeta.from_headers(r.headers).seq: r for r in analysed}
    assert len(analysed) == len(by_seq) == FRAMES and sorted(by_seq) == list(range(FRAMES))
    dead_letters = end_offsets(cfg, cfg.dead_letter_topic)
    assert dead_letters and sum(dead_letters.values()) == 0, dead_letters
    labels = sample_labels()["frames"]
    for seq, record in by_seq.items():
        found = headers_to_dict(record.headers)
        assert (
            int(found["capture_ts_ns"]) == FrameMeta.from_headers(sent[seq].headers).capture_ts_ns
        )
        # The faces the per-frame function finds on the frame the producer sent.
        expected = boxes_of(analyse_jpeg(sent[seq].value, DETECTION_PRESETS[PRESET]))
        assert json.loads(found["boxes_xyxy"]) == expected, seq
        assert int(found["faces"]) == len(expected) == len(labels[seq]["faces"]), seq

    # What the consumer showed: every frame counted; the camera's latest frame, annotated,
    # with its delay and its faces.
    text = shown_text(shown)
    assert f"{FRAMES} frames from 1 cameras, 0 duplicates hidden, 0 bad records skipped" in text
    images = [
        out["data"]["image/jpeg"] for out in outputs(shown) if "image/jpeg" in out.get("data", {})
    ]
    assert len(images) == 1  # one per camera, updated in place
    last = by_seq[FRAMES - 1]
    assert base64.b64decode("".join(images)) == last.value
    captions = ["".join(out["data"]["text/html"]) for out in outputs(shown)
                if " seq " in "".join(out.get("data", {}).get("text/html", ""))]  # fmt: skip
    faces = headers_to_dict(last.headers)["faces"]
    assert len(captions) == 1, captions
    assert re.fullmatch(
        rf"<b>{CAMERA_ID}</b> seq {FRAMES - 1}: delay \d+ ms, faces {faces}", captions[0]
    ), captions

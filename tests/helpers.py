"""What the tests share besides fixtures: unique topics, bounded waits, reading a topic,
a test image and box overlap. Test modules import these from here, never from conftest."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest

from camstream.config import Config
from camstream.kafka.clients import make_consumer
from camstream.kafka.topics import ensure_topics
from camstream.local.supervisor import group_alive


def _bench_module(name: str) -> Any:
    """A module of bench/ (not a package), loaded by its path."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


iou = _bench_module("boxes").iou  # one definition for the bench and the tests

__all__ = [
    "ARTIFACTS",
    "astronaut_bgr",
    "config_with_topics",
    "consume",
    "group_alive",
    "iou",
    "unique_topics",
    "wait_until",
]

T = TypeVar("T")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def unique_topics(bootstrap: str, tmp_path: Path, **settings: Any) -> Config:
    """A config with topic names of its own (not created yet) and state under tmp_path.

    Tests fill a topic first and start the job on it after: a backlog, which the default
    `live` policy would catch up on by skipping detection. These tests check what the job
    does to every frame, so they analyse every frame (`all`) unless they say otherwise.
    """
    suffix = uuid.uuid4().hex[:10]
    settings.setdefault("freshness", "all")
    return Config(
        kafka_bootstrap=bootstrap,
        input_topic=f"camera-stream-{suffix}",
        output_topic=f"camera-analytics-stream-{suffix}",
        dead_letter_topic=f"camera-stream-dlq-{suffix}",
        events_topic=f"camera-detections-{suffix}",
        starting_offsets="earliest",
        home=str(tmp_path / "home"),
        **settings,
    )


def config_with_topics(bootstrap: str, tmp_path: Path, **settings: Any) -> Config:
    config = unique_topics(bootstrap, tmp_path, **settings)
    ensure_topics(config, config.pipeline_topics)
    return config


def wait_until(
    check: Callable[[], T], timeout_s: float, interval_s: float = 0.2, what: str = "condition"
) -> T:
    """Poll `check` until it returns a truthy value; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def consume(config: Config, topic: str, count: int, timeout_s: float = 60.0) -> list[Any]:
    """Read `count` records of `topic` from its beginning, within a bounded time."""
    consumer = make_consumer(config, topic, from_beginning=True)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {timeout_s:.0f}s:"
                    f" {len(records)} of {count} records on {topic}"
                )
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # Anything beyond `count` that is already there would be a duplicate: collect it too.
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


def astronaut_bgr() -> np.ndarray:
    """The public-domain NASA astronaut portrait shipped with scikit-image."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)

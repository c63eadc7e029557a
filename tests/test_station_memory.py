"""The station's memory follows its caps, not the camera ids senders make up.

No Kafka here: records go through the station's own per-record path
(`StationConsumer.ingest`, what its poll loop calls for each record), so that 100,000 of
them take seconds.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from kafka.consumer.fetcher import ConsumerRecord

from camstream.config import Config
from camstream.core.contract import (
    H_CAMERA_ID,
    AnnotatedFrame,
    FrameMeta,
    analytics_headers,
    detection_event,
)
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.consume import Deduplicator, MonitorStats, RecentCameras
from camstream.viewers.station.server import StationConsumer
from camstream.viewers.station.status import STATUS_MAX_CAMERAS, ClientStatus
from camstream.viewers.station.store import FrameStore

TINY_JPEG = encode_jpeg(np.zeros((8, 8, 3), np.uint8), 50)  # a valid frame of 631 bytes


def _frame(camera_id: str, seq: int = 0, jpeg: bytes = TINY_JPEG) -> AnnotatedFrame:
    headers = analytics_headers(
        FrameMeta(camera_id, seq, time.time_ns(), 8, 8).to_headers(), [], time.time_ns()
    )
    return AnnotatedFrame.from_record(jpeg, headers)


def _record(topic: str, offset: int, value: bytes, headers: list) -> ConsumerRecord:
    """A record as the Kafka client hands it to the poll loop."""
    return ConsumerRecord(
        topic, 0, None, offset, 0, 0, None, value, headers, None, 0, len(value), 0
    )


def test_the_camera_cap_forgets_the_least_recently_seen_from_every_table() -> None:
    store = FrameStore(max_cameras=3)
    frames = StationConsumer(Config(), store)  # its deduplicator and counts share the cap
    for offset, camera_id in enumerate(["cam-1", "cam-2", "cam-3", "cam-1", "cam-4"]):
        headers = analytics_headers(
            FrameMeta(camera_id, offset, time.time_ns(), 8, 8).to_headers(), [], time.time_ns()
        )
        frames.ingest(_record("out", offset, TINY_JPEG, headers))
    # cam-2 was the least recently seen when cam-4 came (cam-1 had come again).
    held = {"cam-1", "cam-3", "cam-4"}
    assert {c["camera_id"] for c in store.camera_stats()} == held
    assert set(frames.reader.dedup.last_shown) == held == set(frames.stats.per_camera)
    assert store.latest("cam-2") is None and store.cameras_forgotten == 1
    # Forgotten everywhere: its old frame passes again, as a camera seen for the first time.
    assert store.update(_frame("cam-2"))
    assert "cam-3" not in store.cameras  # and the least recent went in its turn


def test_a_deduplicator_alone_keeps_at_most_its_cap() -> None:
    dedup, stats = Deduplicator(RecentCameras(10)), MonitorStats(cameras=RecentCameras(10))
    for i in range(1000):
        assert dedup.is_new(_frame(f"cam-{i}"))
        stats.count(f"cam-{i}")
    assert len(dedup.last_shown) == 10 and len(stats.per_camera) == 10
    assert set(dedup.last_shown) == {f"cam-{i}" for i in range(990, 1000)}


def test_frame_memory_is_capped_in_bytes_least_recently_updated_first() -> None:
    big = bytes(bytearray(TINY_JPEG) + bytearray(100_000))  # about 100 KB a frame
    store = FrameStore(max_frame_memory=350_000)  # three such frames, not four
    for camera_id in ["cam-1", "cam-2", "cam-3"]:
        store.update(_frame(camera_id, jpeg=big))
    store.update(_frame("cam-1", 1, jpeg=big))  # cam-1 updated: now cam-2 is the oldest
    store.update(_frame("cam-4", jpeg=big))
    assert [c["camera_id"] for c in store.camera_stats()] == ["cam-1", "cam-3", "cam-4"]
    assert store.memory_bytes() == 3 * len(big) and "cam-2" not in store.cameras
    # One camera alone over the cap is still shown: the newest frame is never dropped.
    huge = bytes(bytearray(400_000))
    store.update(_frame("cam-5", jpeg=huge))
    assert store.camera_count() == 1 and store.memory_bytes() == len(huge)


def test_status_messages_carry_only_changes_and_removals_each_bounded() -> None:
    store = FrameStore(stale_after_s=5, forget_after_s=60)
    now = time.time()
    count = STATUS_MAX_CAMERAS + 100
    for i in range(count):
        store.update(_frame(f"cam-{i:04d}"), now=now)
    status = ClientStatus(store)
    shown = {"cam-0300", "cam-0301"}
    first = status.next_message(shown, now=now)
    ids = [c["camera_id"] for c in first["cameras"]]
    assert len(ids) == STATUS_MAX_CAMERAS and shown <= set(ids)  # the cameras shown first
    assert first["camera_count"] == count and first["removed"] == []
    second = status.next_message(shown, now=now)  # the rest, then nothing new
    assert len(second["cameras"]) == 100 and not set(ids) & {
        c["camera_id"] for c in second["cameras"]
    }
    assert status.next_message(shown, now=now + 0.5)["cameras"] == []
    # A new frame, and a camera going stale, are changes; a second passing is not.
    store.update(_frame("cam-0007", 1), now=now + 1)
    assert [c["camera_id"] for c in status.next_message(shown, now=now + 1)["cameras"]] == [
        "cam-0007"
    ]
    stale = status.next_message(shown, now=now + 5.5)["cameras"]  # all but cam-0007: stale
    assert len(stale) == STATUS_MAX_CAMERAS and all(c["stale"] for c in stale)
    # Forgotten cameras are named, and so leave the page.
    gone = status.next_message(shown, now=now + 61)
    assert gone["camera_count"] == 1 and len(gone["removed"]) == STATUS_MAX_CAMERAS
    assert [c["camera_id"] for c in gone["cameras"]] == ["cam-0007"]  # stale in its turn
    rest = status.next_message(shown, now=now + 61)
    assert len(gone["removed"]) + len(rest["removed"]) == count - 1


def _random_camera_records(count: int, seed: int) -> Iterator[ConsumerRecord]:
    """`count` tiny valid annotated frames, each under a camera id never seen before."""
    rng = random.Random(seed)
    now = time.time_ns()
    template = analytics_headers(FrameMeta("x", 0, now, 8, 8).to_headers(), [], now)
    for offset in range(count):
        camera_id = b"%016x" % rng.getrandbits(64)
        headers = [(n, camera_id if n == H_CAMERA_ID else v) for n, v in template]
        yield _record("out", offset, TINY_JPEG, headers)


def _random_camera_events(count: int, seed: int) -> Iterator[ConsumerRecord]:
    rng = random.Random(seed)
    now = time.time_ns()
    for offset in range(count):
        camera_id = f"{rng.getrandbits(64):016x}"
        headers = analytics_headers(
            FrameMeta(camera_id, 0, now, 8, 8).to_headers(), [[1, 1, 4, 4]], now
        )
        yield _record("events", offset, detection_event(headers, "out", 1 << 20), [])


def _rss_bytes() -> int:
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * 4096


def test_100k_frames_under_random_camera_ids_leave_memory_flat() -> None:
    """Tiny valid frames (and a detection for one in ten) under fresh random ids: what the
    station holds stays at its cap of cameras, and its memory flat."""
    cap = 1024
    store = FrameStore(max_cameras=cap)
    frames = StationConsumer(Config(), store)
    detections = StationConsumer(Config(), store, events=True)
    events = _random_camera_events(10_000, seed=2)
    measured = {}
    start = time.monotonic()
    for offset, record in enumerate(_random_camera_records(100_000, seed=1), start=1):
        frames.ingest(record)
        if offset % 10 == 0:
            detections.ingest(next(events))
        if offset in (20_000, 100_000):
            measured[offset] = (sys.getallocatedblocks(), _rss_bytes())
    elapsed = time.monotonic() - start
    (blocks_20k, rss_20k), (blocks_100k, rss_100k) = measured[20_000], measured[100_000]
    print(
        f"100,000 frames under random ids in {elapsed:.1f} s: allocated blocks"
        f" {blocks_20k} -> {blocks_100k}, RSS {rss_20k / 1e6:.1f} -> {rss_100k / 1e6:.1f} MB,"
        f" {len(store.cameras)} cameras held, {store.cameras.forgotten} forgotten"
    )
    assert store.camera_count() <= cap and len(store.cameras) == cap
    assert frames.stats.frames + detections.stats.frames == 110_000
    for reader in (frames, detections):  # the readers' tables follow the same cap
        assert len(reader.reader.dedup.last_shown) <= cap >= len(reader.stats.per_camera)
    assert store.memory_bytes() <= cap * len(TINY_JPEG) + 50 * 1000
    # 80,000 more cameras came and went: what the process holds did not grow with them (a
    # camera held costs about 30 objects: 80,000 of them would be millions).
    assert blocks_100k - blocks_20k < 5_000, (blocks_20k, blocks_100k)
    assert rss_100k - rss_20k < 8_000_000, (rss_20k, rss_100k)


def test_a_detection_event_only_camera_is_held_under_the_cap_too() -> None:
    store = FrameStore(max_cameras=5)
    detections = StationConsumer(Config(), store, events=True)
    for record in _random_camera_events(50, seed=3):
        detections.ingest(record)
    assert len(store.cameras) == 5 and len(detections.stats.per_camera) == 5
    assert json.loads(record.value)["camera_id"] in store.cameras
